#include "export/torchscript_export.h"

#include "core/file_io.h"
#include "export/script_builder.h"
#include "peft/lora.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/serialization/export.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mft::exporting {
namespace fs = std::filesystem;

namespace {
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "export: cannot read ", path, ": ", std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The dtype of the model's activations (its embedding matrix), as HF writes it in config.json.
std::string hf_dtype(models::CausalLM& model) {
  for (const auto& [name, t] : model.hf_state_dict()) {
    if (name.find("embed") == std::string::npos) continue;
    switch (t.scalar_type()) {
      case at::kBFloat16:
        return "bfloat16";
      case at::kHalf:
        return "float16";
      default:
        return "float32";
    }
  }
  return "float32";
}

torch::jit::Module script_module(models::CausalLM& model, bool with_ops) {
  const std::string family = model.family();
  if (family == "mamba") return build_mamba_module(model, with_ops);
  if (family == "mamba2") return build_mamba2_module(model, with_ops);
  TORCH_CHECK(family == "gpt_neox", "export: model family \"", family,
              "\" is not supported (expected mamba, mamba2 or gpt_neox)");
  return build_gpt_neox_module(model);
}
}  // namespace

void check_output_writable(const std::string& path) {
  TORCH_CHECK(!path.empty(), "export: --output is empty");
  TORCH_CHECK(!fs::is_directory(path), "export: cannot write ", path,
              ": it is a folder (expected a file name, e.g. model.pt)");
  const fs::path parent = fs::path(path).parent_path();
  TORCH_CHECK(parent.empty() || fs::is_directory(parent), "export: cannot write ", path, ": folder ", parent.string(),
              " does not exist");
  remove_stale_temporaries(parent.empty() ? "." : parent.string());
  AtomicFile probe(path, "export");  // removed again: only whether it can be created is checked
}

bool needs_ops_library(const models::CausalLM& model, const ExportOptions& options) {
  return options.with_ops && model.family() != "gpt_neox";
}

std::unordered_map<std::string, std::string> archive_files(models::CausalLM& model, const ExportOptions& options) {
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(model.hf_config_json());
  config["dtype"] = hf_dtype(model);
  const bool ops = needs_ops_library(model, options);
  config["mft_export"] = {{"format", 1},
                          {"with_ops", ops},
                          {"requires", ops ? kOpsLibrary : ""},
                          {"methods", {"forward", "init_state", "prefill", "step"}},
                          {"tokenizer", options.tokenizer_json.empty() ? "none" : "tokenizer.json"}};
  std::unordered_map<std::string, std::string> files;
  files["config.json"] = config.dump(2) + "\n";
  files["mft_requires"] = ops ? kOpsLibrary : "";
  if (!options.tokenizer_json.empty()) files["tokenizer.json"] = read_file(options.tokenizer_json);
  return files;
}

void export_torchscript(models::CausalLM& model, const std::string& path, const ExportOptions& options) {
  check_output_writable(path);
  if (!peft::adapted_modules(model).empty()) peft::merge_lora(model);
  at::NoGradGuard no_grad;
  model.eval();
  torch::jit::Module module = script_module(model, needs_ops_library(model, options));
  module.eval();
  const auto files = archive_files(model, options);
  // LibTorch's archive writer must not see an exception (it would terminate in its destructor): the
  // file keeps the first error and commit() throws it; until then `path` is untouched.
  AtomicFile out(path, "export");
  torch::jit::ExportModule(
      module, [&](const void* data, size_t n) { return out.write_deferred(data, n); }, files);
  out.commit();
}

}  // namespace mft::exporting
