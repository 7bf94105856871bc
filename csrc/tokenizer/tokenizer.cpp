// load_tokenizer: finds tokenizer.json, loads it, and sets BOS/EOS (which tokenizer.json does not hold).
#include "tokenizer/tokenizer.h"

#include "core/json_parse.h"
#include "tokenizer/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mft {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// GPT-2 and GPT-NeoX use one token as BOS, EOS and unknown.
constexpr const char* kConventionalEos = "<|endoftext|>";

// tokenizer_config.json's "bos_token"/"eos_token": a string or {"content": string}; absent or null: none.
std::optional<std::string> config_token(const json& config, const char* key, const std::string& file) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw std::runtime_error(file + ": " + key + " must be a string or {\"content\": string}; got " + json_excerpt(v));
}

// Ids of the BOS/EOS named by tokenizer_config.json in `dir`, else the conventional <|endoftext|>.
void set_bos_eos(BpeTokenizer& t, const fs::path& dir) {
  std::optional<std::string> bos, eos;
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    std::ifstream in(config_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    json config;
    try {
      config = parse_json(text.str());
    } catch (const JsonError& e) {
      throw std::runtime_error(config_path.string() + ": " + e.what());
    }
    bos = config_token(config, "bos_token", config_path.string());
    eos = config_token(config, "eos_token", config_path.string());
    for (const auto& name : {bos, eos}) {
      if (name && !t.token_to_id(*name)) {
        throw std::runtime_error(config_path.string() + ": special token \"" + *name + "\" is not in the vocabulary");
      }
    }
  }
  const auto id = [&](const std::optional<std::string>& name) {
    return t.token_to_id(name ? *name : std::string(kConventionalEos));
  };
  t.set_bos_eos(id(bos), id(eos));
}
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  if (!fs::exists(file, ec)) {
    throw std::runtime_error(file.string() + ": no such file (expected a tokenizer.json file or a folder holding one)");
  }
  auto tokenizer = BpeTokenizer::from_file(file.string());
  set_bos_eos(*tokenizer, file.has_parent_path() ? file.parent_path() : fs::path("."));
  return tokenizer;
}

}  // namespace mft
