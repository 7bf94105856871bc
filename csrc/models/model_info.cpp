#include "models/model_info.h"

#include "io/safetensors.h"
#include "models/checkpoint.h"
#include "models/registry.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

namespace mft::models {
namespace {
int64_t count_parameters(const torch::nn::Module& m) {
  std::set<const void*> seen;  // a tied weight is one parameter
  int64_t n = 0;
  for (const auto& p : m.parameters()) {
    if (seen.insert(p.data_ptr()).second) n += p.numel();
  }
  return n;
}

// safetensors-style dtype names for a tensor read from any checkpoint format.
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    default:
      return c10::toString(t);
  }
}
}  // namespace

ModelInfo describe_model(const std::string& spec) {
  namespace fs = std::filesystem;
  ModelInfo info;
  info.dir = spec;
  const bool preset = spec.rfind("preset:", 0) == 0;
  if (!preset) {
    TORCH_CHECK(fs::is_directory(spec), "info: ", spec, " is not a model folder (or preset:NAME)");
    TORCH_CHECK(fs::exists(fs::path(spec) / "config.json"), "info: ", spec, " has no config.json");
    info.files.push_back((fs::path(spec) / "config.json").string());
  }
  const auto model = load_model(spec);
  info.family = model->family();
  // Integer geometry fields of the config, as HF names them.
  const nlohmann::json config = nlohmann::json::parse(model->hf_config_json());  // outlives the loop
  for (const auto& [key, value] : config.items()) {
    if (value.is_number_integer() && key.find("token_id") == std::string::npos) info.sizes[key] = value.get<int64_t>();
  }
  info.parameters = count_parameters(*model);
  if (!preset) {
    const auto files = checkpoint_files(spec);
    info.files.insert(info.files.end(), files.begin(), files.end());
    const bool safetensors = !files.empty() && files.front().find(".safetensors") != std::string::npos;
    if (safetensors) {
      for (const auto& f : files) {
        if (f.size() < 12 || f.substr(f.size() - 12) != ".safetensors") continue;
        const auto st = io::SafetensorsFile::open(f);
        for (const auto& name : st.names()) ++info.checkpoint_dtypes[st.entry(name).dtype];
      }
    } else {
      for (const auto& [name, t] : read_checkpoint(spec)) ++info.checkpoint_dtypes[dtype_name(t.scalar_type())];
    }
    info.has_tokenizer = fs::exists(fs::path(spec) / "tokenizer.json");
  }
  return info;
}

}  // namespace mft::models
