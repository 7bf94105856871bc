#include "data/records.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mft::data {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// 1-based line of byte `offset`, by binary search over the newline offsets.
class LineIndex {
 public:
  explicit LineIndex(const std::string& s) {
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n') newlines_.push_back(i);
  }
  int64_t line_of(size_t offset) const {
    return 1 + static_cast<int64_t>(std::lower_bound(newlines_.begin(), newlines_.end(), offset) - newlines_.begin());
  }

 private:
  std::vector<size_t> newlines_;
};

[[noreturn]] void fail(const std::string& file, int64_t line, const std::string& what) {
  throw std::runtime_error(file + ":" + std::to_string(line) + ": " + what);
}

std::vector<RawRecord> split_jsonl(const std::string& content) {
  std::vector<RawRecord> out;
  int64_t line = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    ++line;
    std::string text = content.substr(pos, end - pos);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (std::any_of(text.begin(), text.end(), [](char c) { return !is_space(c); }))
      out.push_back({line, std::move(text)});
    pos = end + 1;
  }
  return out;
}

// The end of the array element starting at `i`: the offset of the ',' or ']' that closes it at depth 0,
// or content.size() when the file ends first. Strings are skipped so that brackets inside them do not
// count; mismatched brackets are left for the JSON parser of the element to report.
size_t element_end(const std::string& content, size_t i) {
  int depth = 0;
  bool in_string = false;
  for (; i < content.size(); ++i) {
    const char c = content[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i;
      --depth;
    } else if (c == ',' && depth == 0) {
      return i;
    }
  }
  return content.size();
}

std::vector<RawRecord> split_array(const std::string& content, size_t open, const std::string& file) {
  const LineIndex lines(content);
  std::vector<RawRecord> out;
  size_t i = open + 1;
  for (;;) {
    while (i < content.size() && is_space(content[i])) ++i;
    if (i < content.size() && content[i] == ']' && out.empty()) {
      ++i;
      break;  // []
    }
    const size_t start = i;
    const size_t end = element_end(content, start);
    if (end == content.size())
      fail(file, lines.line_of(start), "unterminated JSON array: expected ']' before the end of the file");
    size_t last = end;
    while (last > start && is_space(content[last - 1])) --last;
    if (last == start) fail(file, lines.line_of(start), std::string("expected a record before '") + content[end] + "'");
    if (content[end] == '}') fail(file, lines.line_of(end), "unexpected '}' in the JSON array");
    out.push_back({lines.line_of(start), content.substr(start, last - start)});
    i = end + 1;
    if (content[end] == ']') break;
  }
  while (i < content.size() && is_space(content[i])) ++i;
  if (i < content.size()) fail(file, lines.line_of(i), "unexpected text after the JSON array's closing ']'");
  return out;
}

}  // namespace

std::vector<RawRecord> split_json_records(const std::string& content, const std::string& file) {
  size_t first = 0;
  while (first < content.size() && is_space(content[first])) ++first;
  if (first < content.size() && content[first] == '[') return split_array(content, first, file);
  return split_jsonl(content);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open data file '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read data file '" + path + "'");
  return ss.str();
}

}  // namespace mft::data
