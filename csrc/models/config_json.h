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

class ConfigJson {
 public:
  // Parses `path`; `model_type` (e.g. "mamba"), when not empty and the file names one, must match.
  // `family` prefixes error messages (default: model_type).
  ConfigJson(const std::string& path, const std::string& model_type, const std::string& family = "");
  // An already parsed object; `path` is only used in messages.
  ConfigJson(nlohmann::json j, const std::string& path, const std::string& family);

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  const nlohmann::json& json() const { return j_; }
  bool get_positive_int(const char* key, int64_t& out) const;  // false when absent
  bool get_number(const char* key, double& out) const;         // false when absent
  bool get_number_in(const nlohmann::json& obj, const char* key, double& out) const;
  void get_bool(const char* key, bool& out) const;
  // Throws "<family>: <path>: <message>" unless `ok`.
  void require(bool ok, const std::string& message) const;

 private:
  std::string path_, family_;
  nlohmann::json j_;
};

}  // namespace mft::models
