#include "export/torchscript_export.h"

#include "export/script_builder.h"
#include "peft/lora.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
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
std::string temporary_path(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

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
  const std::string tmp = temporary_path(path);
  {
    std::ofstream probe(tmp, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(probe.is_open(), "export: cannot write ", path, ": ", std::strerror(errno));
  }
  std::error_code ignored;
  fs::remove(tmp, ignored);
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
  const std::string tmp = temporary_path(path);
  try {
    module.save(tmp, files);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    TORCH_CHECK(false, "export: cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
}

}  // namespace mft::exporting
