// `mamba-ft merge --model MODEL --adapter DIR --output DIR [--dtype fp32|bf16|fp16]`: folds a LoRA
// adapter folder (HF peft's format, e.g. written by `mamba-ft train`) into the model and writes the
// merged model in HF layout (config.json + model.safetensors, plus MODEL/tokenizer.json when present),
// loadable by transformers' from_pretrained and by every mamba-ft command. The folder appears whole; an
// existing one is replaced only with --overwrite.
#include "commands.h"

#include "models/checkpoint.h"
#include "models/registry.h"
#include "peft/lora.h"

#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <string>

namespace mft::app {
namespace {
namespace fs = std::filesystem;

struct MergeArgs {
  std::string model, adapter, output;
  std::string dtype = "fp32";
  bool overwrite = false;
};

int run_merge(const MergeArgs& a) {
  const at::ScalarType dtype = models::parse_dtype(a.dtype);
  std::error_code ec;
  TORCH_CHECK(
      !fs::exists(a.output, ec) || (fs::is_directory(a.output, ec) && fs::is_empty(a.output, ec)) || a.overwrite,
      "merge: --output ", a.output, " already exists; pass --overwrite to replace it whole");
  auto model = models::load_model(a.model);
  const peft::LoraConfig c = peft::load_peft_adapter(*model, a.adapter);
  const size_t adapted = peft::adapted_modules(*model).size();
  peft::merge_lora(*model);  // in fp32, before any cast: the update is rounded once
  models::cast_model(*model, dtype);
  const fs::path tokenizer = fs::path(a.model) / "tokenizer.json";
  const bool has_tokenizer = fs::is_regular_file(tokenizer);
  models::save_hf_model(*model, a.output, has_tokenizer ? tokenizer.string() : "");
  fmt::print("merged {} LoRA adapters (r={}, alpha={}) into {} -> {} ({}{})\n", adapted, c.rank, c.alpha, a.model,
             a.output, a.dtype, has_tokenizer ? ", with tokenizer.json" : "");
  return 0;
}
}  // namespace

Runner add_merge(CLI::App& app) {
  auto a = std::make_shared<MergeArgs>();
  auto* cmd =
      app.add_subcommand("merge", "Merge a LoRA adapter (HF peft folder) into a model and save it in HF layout");
  cmd->add_option("--model", a->model, "base model: HF folder or preset:NAME")->required();
  cmd->add_option("--adapter", a->adapter, "adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required();
  cmd->add_option("--output", a->output, "folder to write the merged model to")->required();
  cmd->add_option("--dtype", a->dtype, "dtype of the saved weights: fp32, bf16 or fp16")->capture_default_str();
  cmd->add_flag("--overwrite", a->overwrite, "replace an existing --output folder (as a whole)");
  return [a] { return run_merge(*a); };
}

}  // namespace mft::app
