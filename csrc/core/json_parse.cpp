#include "core/json_parse.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace mft {
namespace {
using nlohmann::json;

// nlohmann's message without its "[json.exception.parse_error.101] " tag.
std::string without_tag(const std::string& what) {
  const size_t tag = what.find("] ");
  return tag == std::string::npos ? what : what.substr(tag + 2);
}

template <typename Json>
Json parse_as(std::string_view text) {
  check_json_depth(text);
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw JsonError("not valid JSON: " + without_tag(e.what()), e.byte);
  } catch (const nlohmann::json::exception& e) {
    throw JsonError("not valid JSON: " + without_tag(e.what()), 0);
  }
}

// A scalar (or an empty container) as compact JSON, its strings cut to `room` characters first.
std::string scalar_text(const json& v, size_t room) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return json(s.size() > room ? s.substr(0, room) : s).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);  // not structured: no recursion
}
}  // namespace

void check_json_depth(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        throw JsonError(
            "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (at byte " + std::to_string(i) + ")",
            i);
      }
    } else if (c == ']' || c == '}') {
      --depth;  // unbalanced text is the parser's to report
    }
  }
}

json parse_json(std::string_view text) {
  return parse_as<json>(text);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text) {
  return parse_as<nlohmann::ordered_json>(text);
}

json try_parse_json(std::string_view text) {
  try {
    return parse_json(text);
  } catch (const JsonError&) {
    return json(json::value_t::discarded);
  }
}

json try_load_json_file(const std::string& path) {
  try {
    return load_json_file(path);
  } catch (const std::exception&) {
    return json(json::value_t::discarded);
  }
}

std::string first_nonfinite(const json& value) {
  std::vector<std::pair<const json*, std::string>> todo{{&value, ""}};
  while (!todo.empty()) {
    const auto [v, where] = todo.back();
    todo.pop_back();
    if (v->is_number_float() && !std::isfinite(v->get<double>())) return where.empty() ? "/" : where;
    if (v->is_object()) {
      for (auto it = v->begin(); it != v->end(); ++it) todo.emplace_back(&*it, where + "/" + it.key());
    } else if (v->is_array()) {
      for (size_t i = 0; i < v->size(); ++i) todo.emplace_back(&(*v)[i], where + "/" + std::to_string(i));
    }
  }
  return "";
}

nlohmann::json load_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": cannot read: " + std::strerror(errno));
  try {
    return parse_json(text.str());
  } catch (const JsonError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

std::string json_excerpt(const json& value, size_t max_chars) {
  // Frames of the containers being printed: the container, the next child's index.
  struct Frame {
    const json* container;
    size_t next;
    json::const_iterator it;
  };
  std::string out;
  std::vector<Frame> stack;
  auto full = [&] { return out.size() > max_chars; };
  auto emit = [&](const json& v) {
    if (!v.is_structured() || v.empty()) {
      out += scalar_text(v, max_chars + 1 - std::min(out.size(), max_chars));
      return;
    }
    out += v.is_object() ? '{' : '[';
    stack.push_back({&v, 0, v.cbegin()});
  };
  emit(value);
  while (!stack.empty() && !full()) {
    Frame& f = stack.back();
    if (f.it == f.container->cend()) {
      out += f.container->is_object() ? '}' : ']';
      stack.pop_back();
      continue;
    }
    if (f.next++ > 0) out += ',';
    const json& child = *f.it;
    if (f.container->is_object()) out += scalar_text(json(f.it.key()), max_chars) + ':';
    ++f.it;
    emit(child);  // may push: `f` is not used after this
  }
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
  return out;
}

}  // namespace mft
