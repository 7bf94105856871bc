#include "models/config_json.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace mft::models {
namespace {
// Replaces the bare tokens outside strings by {"__float__": "<token>"}.
std::string quote_special_floats(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') in_string = true;
    bool replaced = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::char_traits<char>::length(token);
      if (text.compare(i, n, token) == 0) {
        out += std::string("{\"__float__\": \"") + token + "\"}";
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += ch;
  }
  return out;
}

void resolve_special_floats(nlohmann::json& j) {
  if (j.is_object() && j.size() == 1 && j.contains("__float__") && j["__float__"].is_string()) {
    const std::string v = j["__float__"];
    const double inf = std::numeric_limits<double>::infinity();
    if (v == "Infinity" || v == "inf") j = inf;
    else if (v == "-Infinity" || v == "-inf") j = -inf;
    else if (v == "NaN" || v == "nan") j = std::numeric_limits<double>::quiet_NaN();
    else j = std::stod(v);
    return;
  }
  if (j.is_structured()) {
    for (auto& v : j) resolve_special_floats(v);
  }
}
}  // namespace

nlohmann::json parse_lenient_json(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(quote_special_floats(text));
  resolve_special_floats(j);
  return j;
}

nlohmann::json read_json_file(const std::string& path, const std::string& family) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, family, ": cannot read ", path);
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return parse_lenient_json(buf.str());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, family, ": ", path, " is not valid JSON (", e.what(), ")");
  }
}

ConfigJson::ConfigJson(nlohmann::json j, const std::string& path, const std::string& family)
    : path_(path), family_(family), j_(std::move(j)) {
  require(j_.is_object(), "must hold a JSON object");
}

ConfigJson::ConfigJson(const std::string& path, const std::string& model_type, const std::string& family)
    : path_(path), family_(family.empty() ? model_type : family) {
  j_ = read_json_file(path, family_);
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
