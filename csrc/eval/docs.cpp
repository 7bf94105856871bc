#include "eval/docs.h"

#include <c10/util/Exception.h>
#include "core/json_parse.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mft::eval {
namespace {
std::string excerpt(const nlohmann::json& j) {
  return json_excerpt(j);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// 1-based line of byte offset `pos` in `text`.
int64_t line_of(const std::string& text, size_t pos) {
  int64_t line = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}
}  // namespace

std::vector<Doc> read_docs(const std::string& path) {
  for (const char* ext : {".gz", ".bz2", ".xz", ".zst"}) {
    TORCH_CHECK(!ends_with(path, ext), path, ": compressed task files are not read; decompress it first (e.g. ",
                "`gunzip -k ", path, "`)");
  }
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), path, ": no such file or not readable");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<Doc> docs;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {  // one JSON array (to_json(lines=False))
    nlohmann::json all;
    try {
      all = parse_json(text);
    } catch (const JsonError& e) {
      TORCH_CHECK(false, path, ":", line_of(text, e.byte()), ": ", e.what());
    }
    // Lines of the records: each top-level '{' of the array, in order.
    std::vector<int64_t> lines;
    int depth = 0;
    bool in_string = false;
    for (size_t i = first; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_string = false;
        continue;
      }
      if (c == '"')
        in_string = true;
      else if (c == '{' || c == '[') {
        if (depth == 1 && c == '{') lines.push_back(line_of(text, i));
        ++depth;
      } else if (c == '}' || c == ']')
        --depth;
    }
    for (size_t k = 0; k < all.size(); ++k) {
      const int64_t line = k < lines.size() ? lines[k] : 1;
      TORCH_CHECK(all[k].is_object(), path, ":", line, ": record ", k, " must be a JSON object; got ", excerpt(all[k]));
      docs.push_back({std::move(all[k]), path, line, static_cast<int64_t>(k)});
    }
    return docs;
  }
  std::istringstream lines(text);
  int64_t number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = parse_json(line);
    } catch (const JsonError& e) {
      TORCH_CHECK(false, path, ":", number, ": ", e.what());
    }
    TORCH_CHECK(j.is_object(), path, ":", number, ": each line must be a JSON object; got ", excerpt(j));
    docs.push_back({std::move(j), path, number, static_cast<int64_t>(docs.size())});
  }
  return docs;
}

const nlohmann::json& field(const Doc& d, const std::string& key) {
  TORCH_CHECK(d.json.contains(key), d.where(), ": field \"", key, "\" is missing; got ", excerpt(d.json));
  return d.json.at(key);
}

std::string string_field(const Doc& d, const std::string& key) {
  const nlohmann::json& v = field(d, key);
  TORCH_CHECK(v.is_string(), d.where(), ": field \"", key, "\" must be a string; got ", excerpt(v));
  return v.get<std::string>();
}

int64_t int_field(const Doc& d, const std::string& key) {
  const nlohmann::json& v = field(d, key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (!s.empty() && s.size() < 18 && s.find_first_not_of("0123456789") == std::string::npos) return std::stoll(s);
  }
  TORCH_CHECK(false, d.where(), ": field \"", key, "\" must be an integer (or a string of digits); got ", excerpt(v));
}

std::vector<std::string> string_list_field(const Doc& d, const std::string& key) {
  const nlohmann::json& v = field(d, key);
  TORCH_CHECK(v.is_array(), d.where(), ": field \"", key, "\" must be a list of strings; got ", excerpt(v));
  std::vector<std::string> out;
  for (const auto& e : v) {
    TORCH_CHECK(e.is_string(), d.where(), ": field \"", key, "\" must be a list of strings; got ", excerpt(v));
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace mft::eval
