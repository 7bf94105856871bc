#include "models/model_info.h"

#include "io/safetensors.h"
#include "models/config_json.h"
#include "models/gpt_neox.h"
#include "models/mamba.h"

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
}  // namespace

ModelInfo describe_model(const std::string& dir) {
  namespace fs = std::filesystem;
  ModelInfo info;
  info.dir = dir;
  const fs::path config_path = fs::path(dir) / "config.json";
  TORCH_CHECK(fs::is_directory(dir), "info: ", dir, " is not a model folder");
  TORCH_CHECK(fs::exists(config_path), "info: ", dir, " has no config.json");
  const ConfigJson j(config_path.string(), "", "info");
  j.require(j.has("model_type") && j.json()["model_type"].is_string(), "needs a \"model_type\"");
  info.family = j.json()["model_type"].get<std::string>();
  info.files.push_back(config_path.string());
  if (info.family == "mamba") {
    auto m = load_mamba(dir);
    const auto& c = m->config;
    info.sizes = {
        {"hidden_size", c.hidden_size},      {"num_hidden_layers", c.num_hidden_layers}, {"vocab_size", c.vocab_size},
        {"state_size", c.state_size},        {"intermediate_size", c.intermediate_size}, {"conv_kernel", c.conv_kernel},
        {"time_step_rank", c.time_step_rank}};
    info.parameters = count_parameters(*m);
  } else if (info.family == "gpt_neox") {
    auto m = load_gpt_neox(dir);
    const auto& c = m->config;
    info.sizes = {{"hidden_size", c.hidden_size},
                  {"num_hidden_layers", c.num_hidden_layers},
                  {"vocab_size", c.vocab_size},
                  {"num_attention_heads", c.num_attention_heads},
                  {"intermediate_size", c.intermediate_size},
                  {"rotary_ndims", c.rotary_ndims()}};
    info.parameters = count_parameters(*m);
  } else {
    j.require(false, "model_type \"" + info.family + "\" is not supported (mamba, gpt_neox)");
  }
  // The weight files, as the loader read them.
  std::vector<std::string> weight_files;
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single)) {
    weight_files.push_back(single.string());
  } else {
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    info.files.push_back(index.string());
    std::set<std::string> shards;
    const ConfigJson idx(index.string(), "", "info");
    for (const auto& [name, file] : idx.json()["weight_map"].items()) shards.insert(file.get<std::string>());
    for (const auto& s : shards) weight_files.push_back((fs::path(dir) / s).string());
  }
  for (const auto& f : weight_files) {
    const auto st = io::SafetensorsFile::open(f);
    for (const auto& name : st.names()) ++info.checkpoint_dtypes[st.entry(name).dtype];
    info.files.push_back(f);
  }
  info.has_tokenizer = fs::exists(fs::path(dir) / "tokenizer.json");
  return info;
}

}  // namespace mft::models
