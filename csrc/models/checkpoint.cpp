#include "models/checkpoint.h"

#include "core/file_io.h"
#include "core/json_parse.h"

#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "models/config_json.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace mft::models {
namespace fs = std::filesystem;

namespace {
std::string renamed(const std::string& name, const RenameTable& renames) {
  for (const auto& [from, to] : renames) {
    if (name.rfind(from, 0) == 0) return to + name.substr(from.size());
  }
  return name;
}

// pytorch_model.bin, or the shards named by pytorch_model.bin.index.json.
std::vector<std::string> bin_files(const std::string& dir) {
  const fs::path single = fs::path(dir) / "pytorch_model.bin";
  if (fs::exists(single)) return {single.string()};
  const fs::path index = fs::path(dir) / "pytorch_model.bin.index.json";
  if (!fs::exists(index)) return {};
  const nlohmann::json j = read_json_file(index.string(), "checkpoint");
  TORCH_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), "checkpoint: ", index.string(),
              " needs an object \"weight_map\" (tensor name -> shard file)");
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    TORCH_CHECK(file.is_string() && file.get<std::string>().find('/') == std::string::npos,
                "checkpoint: ", index.string(), ": weight_map[\"", name, "\"] must be a plain file name");
    shards.insert((fs::path(dir) / file.get<std::string>()).string());
  }
  return {shards.begin(), shards.end()};
}

bool has_safetensors(const std::string& dir) {
  return fs::exists(fs::path(dir) / "model.safetensors") || fs::exists(fs::path(dir) / "model.safetensors.index.json");
}

}  // namespace

std::vector<std::string> checkpoint_files(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "model.safetensors")) return {(fs::path(dir) / "model.safetensors").string()};
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    std::vector<std::string> files{index.string()};
    const nlohmann::json j = read_json_file(index.string(), "checkpoint");
    std::set<std::string> shards;
    if (j.contains("weight_map") && j["weight_map"].is_object()) {
      for (const auto& [name, file] : j["weight_map"].items()) {
        if (file.is_string()) shards.insert((fs::path(dir) / file.get<std::string>()).string());
      }
    }
    files.insert(files.end(), shards.begin(), shards.end());
    return files;
  }
  return bin_files(dir);
}

std::map<std::string, at::Tensor> read_checkpoint(const std::string& dir, const RenameTable& renames,
                                                  const std::function<bool(const std::string&)>& skip) {
  std::map<std::string, at::Tensor> out;
  auto add = [&](const std::string& raw, const at::Tensor& t, const std::string& file) {
    const std::string name = renamed(raw, renames);
    if (skip && skip(name)) return;
    TORCH_CHECK(out.emplace(name, t).second, "checkpoint: ", file, " holds '", name, "' twice (after renaming '", raw,
                "')");
  };
  if (has_safetensors(dir)) {
    for (const auto& [name, t] : io::load_safetensors_checkpoint(dir)) add(name, t, dir);
    return out;
  }
  const auto bins = bin_files(dir);
  TORCH_CHECK(!bins.empty(), "checkpoint: ", dir,
              " has no weights (model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
              "pytorch_model.bin.index.json)");
  for (const auto& file : bins) {
    for (const auto& [name, t] : io::load_torch_pickle_state_dict(file)) add(name, t, file);
  }
  return out;
}

void save_hf_model(CausalLM& model, const std::string& dir, const std::string& tokenizer_json) {
  std::string tokenizer_text;
  if (!tokenizer_json.empty()) {
    std::ifstream in(tokenizer_json, std::ios::binary);
    TORCH_CHECK(in, "save: cannot read tokenizer ", tokenizer_json);
    std::stringstream buf;
    buf << in.rdbuf();
    tokenizer_text = buf.str();
  }
  AtomicDir folder(dir, "save");
  const fs::path tmp = folder.path_to_fill();
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, t] : model.hf_state_dict()) tensors[name] = t.detach().contiguous().cpu();
  io::save_safetensors((tmp / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomically((tmp / "config.json").string(), model.hf_config_json(), "save");
  if (!tokenizer_json.empty()) write_file_atomically((tmp / "tokenizer.json").string(), tokenizer_text, "save");
  folder.commit();
}

}  // namespace mft::models
