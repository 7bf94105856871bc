#pragma once
// Reading an HF config.json into a config struct: typed getters that leave the default when a key is
// absent and throw naming the file, the key and the value when it has the wrong type.
#include <nlohmann/json.hpp>

#include <string>

namespace mft::models {

// Parses JSON as Python's json module writes it: bare Infinity, -Infinity and NaN are accepted, and so
// is transformers 5's {"__float__": "Infinity"} form; both become doubles. Throws nlohmann errors.
nlohmann::json parse_lenient_json(const std::string& text);

// Reads and parses a JSON file leniently; errors name `family` and the path.
nlohmann::json read_json_file(const std::string& path, const std::string& family);

// The largest value a config may give an integer size `key` (hidden_size 65536, num_hidden_layers 1024,
// vocab_size 4M, ...): far above any published model, low enough that a typo fails here with the key's
// name instead of as an allocation of terabytes. Total size is checked by the memory estimate.
int64_t max_config_int(const std::string& key);

class ConfigJson {
 public:
  // Parses `path`; `model_type` (e.g. "mamba"), when not empty and the file names one, must match.
  // `family` prefixes error messages (default: model_type).
  ConfigJson(const std::string& path, const std::string& model_type, const std::string& family = "");
  // An already parsed object; `path` is only used in messages.
  ConfigJson(nlohmann::json j, const std::string& path, const std::string& family);

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  const nlohmann::json& json() const { return j_; }
  // A positive integer no larger than the key's sane bound (max_config_int); false when absent.
  bool get_positive_int(const char* key, int64_t& out) const;
  // A finite number in (lo, hi] when lo_open, else [lo, hi]; false when absent.
  bool get_number_between(const nlohmann::json& obj, const char* key, double& out, double lo, double hi,
                          bool lo_open) const;
  bool get_number_between(const char* key, double& out, double lo, double hi, bool lo_open) const {
    return get_number_between(j_, key, out, lo, hi, lo_open);
  }
  bool get_number(const char* key, double& out) const;  // false when absent
  bool get_number_in(const nlohmann::json& obj, const char* key, double& out) const;
  void get_bool(const char* key, bool& out) const;
  // Throws "<family>: <path>: <message>" unless `ok`.
  void require(bool ok, const std::string& message) const;

 private:
  std::string path_, family_;
  nlohmann::json j_;
};

}  // namespace mft::models
