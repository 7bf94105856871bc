#include "models/config_json.h"

#include "core/json_parse.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

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

// {"__float__": "Infinity" | "-Infinity" | "NaN" | a number} -> the double; anything else is an error.
double special_float(const std::string& v) {
  const double inf = std::numeric_limits<double>::infinity();
  if (v == "Infinity" || v == "inf") return inf;
  if (v == "-Infinity" || v == "-inf") return -inf;
  if (v == "NaN" || v == "nan") return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || std::isspace(static_cast<unsigned char>(v[0]))) {
    throw std::runtime_error("{\"__float__\": " + json_excerpt(nlohmann::json(v)) +
                             "} must hold \"Infinity\", \"-Infinity\", \"NaN\" or a number");
  }
  return x;
}

// Every {"__float__": ...} object becomes its double; iterative (the depth is bounded, the stack is not).
void resolve_special_floats(nlohmann::json& root) {
  std::vector<nlohmann::json*> todo{&root};
  while (!todo.empty()) {
    nlohmann::json& j = *todo.back();
    todo.pop_back();
    if (j.is_object() && j.size() == 1 && j.contains("__float__") && j["__float__"].is_string()) {
      j = special_float(j["__float__"].get<std::string>());
      continue;
    }
    if (j.is_structured()) {
      for (auto& v : j) todo.push_back(&v);
    }
  }
}
}  // namespace

nlohmann::json parse_lenient_json(const std::string& text) {
  check_json_depth(text);  // before quoting, which nests the bare tokens one level deeper
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(quote_special_floats(text));
  } catch (const nlohmann::json::exception& e) {
    throw JsonError(e.what(), 0);
  }
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
  } catch (const JsonError& e) {
    TORCH_CHECK(false, family, ": ", path, " is not valid JSON (", e.what(), ")");
  } catch (const std::exception& e) {
    TORCH_CHECK(false, family, ": ", path, ": ", e.what());
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
            "model_type is " + json_excerpt(j_["model_type"]) + "; expected \"" + model_type + "\"");
  }
}

void ConfigJson::require(bool ok, const std::string& message) const {
  TORCH_CHECK(ok, family_, ": ", path_, ": ", message);
}

int64_t max_config_int(const std::string& key) {
  static const std::map<std::string, int64_t> limits = {{"vocab_size", int64_t(1) << 22},
                                                        {"hidden_size", int64_t(1) << 16},
                                                        {"num_hidden_layers", 1024},
                                                        {"state_size", 1024},
                                                        {"conv_kernel", 64},
                                                        {"intermediate_size", int64_t(1) << 18},
                                                        {"time_step_rank", int64_t(1) << 16},
                                                        {"num_attention_heads", 4096},
                                                        {"num_heads", int64_t(1) << 16},
                                                        {"head_dim", 4096},
                                                        {"n_groups", int64_t(1) << 16},
                                                        {"chunk_size", int64_t(1) << 16},
                                                        {"expand", 16},
                                                        {"max_position_embeddings", int64_t(1) << 24}};
  const auto it = limits.find(key);
  return it == limits.end() ? int64_t(1) << 24 : it->second;
}

bool ConfigJson::get_positive_int(const char* key, int64_t& out) const {
  if (!has(key)) return false;
  const int64_t hi = max_config_int(key);
  const nlohmann::json& v = j_[key];
  const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= uint64_t(hi)
                                         : v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= hi;
  require(ok, std::string("\"") + key + "\" must be an integer from 1 to " + std::to_string(hi) + "; got " +
                  json_excerpt(v));
  out = v.get<int64_t>();
  return true;
}

bool ConfigJson::get_number_between(const nlohmann::json& obj, const char* key, double& out, double lo, double hi,
                                    bool lo_open) const {
  if (!get_number_in(obj, key, out)) return false;
  const bool ok = std::isfinite(out) && (lo_open ? out > lo : out >= lo) && out <= hi;
  std::ostringstream range;
  range << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
  require(ok, std::string("\"") + key + "\" must be a number in " + range.str() + "; got " + json_excerpt(obj[key]));
  return true;
}

bool ConfigJson::get_number_in(const nlohmann::json& obj, const char* key, double& out) const {
  if (!obj.contains(key) || obj[key].is_null()) return false;
  require(obj[key].is_number(), std::string("\"") + key + "\" must be a number; got " + json_excerpt(obj[key]));
  out = obj[key].get<double>();
  return true;
}

bool ConfigJson::get_number(const char* key, double& out) const {
  return get_number_in(j_, key, out);
}

void ConfigJson::get_bool(const char* key, bool& out) const {
  if (!has(key)) return;
  require(j_[key].is_boolean(), std::string("\"") + key + "\" must be true or false; got " + json_excerpt(j_[key]));
  out = j_[key].get<bool>();
}

}  // namespace mft::models
