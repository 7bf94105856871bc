// `mamba-ft export --model MODEL [--adapter DIR] --output model.pt [--dtype fp32|bf16|fp16] [--with-ops]`:
// the model (LoRA adapter merged in fp32 first, then cast) as a TorchScript archive that plain
// torch.jit.load / torch::jit::load run (csrc/export/torchscript_export.h: forward, init_state, prefill,
// step; config.json, tokenizer.json, mft_requires inside). --with-ops calls the mft:: ops instead
// (faster; the loader must load libmft_ops.so first, as mft_requires says).
#include "commands.h"

#include "export/torchscript_export.h"
#include "models/registry.h"
#include "peft/lora.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace mft::app {
namespace {
namespace fs = std::filesystem;

struct ExportArgs {
  std::string model, adapter, output, tokenizer;
  std::string dtype = "fp32";
  bool with_ops = false;
  uint64_t seed = 0;
};

int run_export(const ExportArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  const at::ScalarType dtype = models::parse_dtype(a.dtype);
  exporting::check_output_writable(a.output);
  auto model = models::load_model(a.model, a.seed);
  std::string merged;
  if (!a.adapter.empty()) {
    const peft::LoraConfig c = peft::load_peft_adapter(*model, a.adapter);
    merged = fmt::format(", {} LoRA adapters (r={}, alpha={}) merged", peft::adapted_modules(*model).size(), c.rank,
                         c.alpha);
    peft::merge_lora(*model);  // in fp32, before any cast: the update is rounded once
  }
  models::cast_model(*model, dtype);
  exporting::ExportOptions options;
  options.with_ops = a.with_ops;
  if (!a.tokenizer.empty()) {
    options.tokenizer_json =
        fs::is_directory(a.tokenizer) ? (fs::path(a.tokenizer) / "tokenizer.json").string() : a.tokenizer;
  } else if (a.model.rfind("preset:", 0) != 0 && fs::is_regular_file(fs::path(a.model) / "tokenizer.json")) {
    options.tokenizer_json = (fs::path(a.model) / "tokenizer.json").string();
  }
  exporting::export_torchscript(*model, a.output, options);
  const bool ops = exporting::needs_ops_library(*model, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("exported {} ({}, {}{}) -> {} ({:.1f} MB, {:.1f} s); methods forward, init_state, prefill, step; {}{}\n",
             a.model, model->family(), a.dtype, merged, a.output, double(fs::file_size(a.output)) / 1e6, seconds,
             ops ? fmt::format("needs {} (torch.ops.load_library before torch.jit.load)", exporting::kOpsLibrary)
                 : "plain torch.jit.load, no extra library",
             options.tokenizer_json.empty() ? "" : "; with tokenizer.json");
  if (a.with_ops && !ops) {
    fmt::print("note: {} has no mft:: op on its inference path; the archive is the portable one\n", model->family());
  }
  return 0;
}
}  // namespace

Runner add_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand(
      "export", "Export a model (LoRA merged) to TorchScript for torch.jit.load: forward, init_state, prefill, step");
  cmd->add_option("--model", a->model, "HF model folder (Mamba, Mamba-2, GPT-NeoX) or preset:NAME")->required();
  cmd->add_option("--adapter", a->adapter, "LoRA adapter folder (adapter_config.json + adapter_model.safetensors)");
  cmd->add_option("--output", a->output, "archive to write, e.g. model.pt")->required();
  cmd->add_option("--dtype", a->dtype, "weights and activations: fp32, bf16 or fp16 (A_log, D, dt biases stay fp32)")
      ->capture_default_str();
  cmd->add_flag("--with-ops", a->with_ops, "call the mft:: ops (faster; the loader must load libmft_ops.so first)");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (or a folder) to store (default: MODEL/tokenizer.json)");
  cmd->add_option("--seed", a->seed, "preset initialisation seed")->capture_default_str();
  return [a] { return run_export(*a); };
}

}  // namespace mft::app
