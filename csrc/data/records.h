#pragma once
// Splits a JSON array or JSONL file into its records' texts with the line each starts on, so that a bad
// record can be reported as file:line and skipped without losing the others.
#include <cstdint>
#include <string>
#include <vector>

namespace mft::data {

struct RawRecord {
  int64_t line = 0;  // 1-based line of the record's first character
  std::string text;
};

// A file whose first non-blank character is '[' is one JSON array; anything else is JSONL (blank lines
// ignored). Throws std::runtime_error("<file>:<line>: ...") when the array's structure is broken
// (unterminated, empty element, text after the closing ']').
std::vector<RawRecord> split_json_records(const std::string& content, const std::string& file);

// Whole file as bytes; throws std::runtime_error naming the file when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace mft::data
