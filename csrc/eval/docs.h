#pragma once
// Task documents from the files a user exports with `datasets` (`Dataset.to_json(path)`): JSON Lines
// (one object per line; `\uXXXX` escapes, surrogate pairs and `\/` decoded) or one JSON array of objects.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mft::eval {

struct Doc {
  nlohmann::json json;  // the record as exported
  std::string file;
  int64_t line = 0;   // 1-based line of the record (of its opening brace in a JSON array)
  int64_t index = 0;  // position among the file's records (lm-eval's doc_id)
  std::string where() const { return file + ":" + std::to_string(line); }
};

// Every record of `path` in file order. Errors (missing file, invalid JSON, a record that is not an
// object, compressed files) name the file and line.
std::vector<Doc> read_docs(const std::string& path);

// The record's field `key` as a string / integer / array; errors name the document (file:line), the field
// and what was found.
const nlohmann::json& field(const Doc& d, const std::string& key);
std::string string_field(const Doc& d, const std::string& key);
int64_t int_field(const Doc& d, const std::string& key);  // also accepts a string of digits ("3")
std::vector<std::string> string_list_field(const Doc& d, const std::string& key);

}  // namespace mft::eval
