#include "models/config_json.h"

#include <c10/util/Exception.h>

#include <fstream>

namespace mft::models {

ConfigJson::ConfigJson(const std::string& path, const std::string& model_type, const std::string& family)
    : path_(path), family_(family.empty() ? model_type : family) {
  std::ifstream in(path);
  TORCH_CHECK(in, family_, ": cannot read ", path);
  try {
    j_ = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, family_, ": ", path, " is not valid JSON (", e.what(), ")");
  }
  require(j_.is_object(), "must hold a JSON object");
  if (!model_type.empty() && j_.contains("model_type")) {
    require(j_["model_type"] == model_type,
            "model_type is " + j_["model_type"].dump() + "; expected \"" + model_type + "\"");
  }
}

void ConfigJson::require(bool ok, const std::string& message) const {
  TORCH_CHECK(ok, family_, ": ", path_, ": ", message);
}

bool ConfigJson::get_positive_int(const char* key, int64_t& out) const {
  if (!has(key)) return false;
  require(j_[key].is_number_integer() && j_[key].get<int64_t>() > 0,
          std::string("\"") + key + "\" must be a positive integer; got " + j_[key].dump());
  out = j_[key].get<int64_t>();
  return true;
}

bool ConfigJson::get_number_in(const nlohmann::json& obj, const char* key, double& out) const {
  if (!obj.contains(key) || obj[key].is_null()) return false;
  require(obj[key].is_number(), std::string("\"") + key + "\" must be a number; got " + obj[key].dump());
  out = obj[key].get<double>();
  return true;
}

bool ConfigJson::get_number(const char* key, double& out) const {
  return get_number_in(j_, key, out);
}

void ConfigJson::get_bool(const char* key, bool& out) const {
  if (!has(key)) return;
  require(j_[key].is_boolean(), std::string("\"") + key + "\" must be true or false; got " + j_[key].dump());
  out = j_[key].get<bool>();
}

}  // namespace mft::models
