#pragma once
// JSON from files and lines we do not control: parsed with a nesting limit (nlohmann's printer, its
// comparisons and our own walkers recurse once per level, so 70,000 levels of "[" overflow the stack),
// and quoted in messages by a bounded, non-recursive printer. No LibTorch: the tokenizer uses it too.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mft {

// Deeper than any real file: tokenizer.json and HF configs nest 3-6 levels, lm-eval docs a few more.
constexpr int kMaxJsonDepth = 512;

// Malformed or too deeply nested JSON. what() is "not valid JSON: ..." or "JSON nested deeper than 512
// levels (at byte N)", for the caller to prefix with the file and line.
class JsonError : public std::runtime_error {
 public:
  JsonError(const std::string& what, size_t byte) : std::runtime_error(what), byte_(byte) {}
  size_t byte() const { return byte_; }  // where the problem was found (0 when unknown)

 private:
  size_t byte_ = 0;
};

// Throws JsonError when `text` nests objects/arrays deeper than kMaxJsonDepth (strings are skipped).
void check_json_depth(std::string_view text);

// Depth check, then nlohmann's parser; every failure is a JsonError.
nlohmann::json parse_json(std::string_view text);
nlohmann::ordered_json parse_ordered_json(std::string_view text);

// Our own files read back (results, markers, logs): parse_json's value, or a discarded value
// (is_discarded()) for anything malformed, too deep or unreadable; never throws.
nlohmann::json try_parse_json(std::string_view text);
nlohmann::json try_load_json_file(const std::string& path);

// A whole file parsed as parse_json does; throws std::runtime_error "<path>: cannot read: <reason>" or
// "<path>: <JsonError's message>".
nlohmann::json load_json_file(const std::string& path);

// The JSON pointer ("/layers/3/exact") of the first NaN or infinite number in `value` (stored as
// numbers by nlohmann, printed as null), or "" when every number is finite. Iterative.
std::string first_nonfinite(const nlohmann::json& value);

// A value as one line of at most `max_chars` characters (then "..."), for error messages. Iterative, and
// it stops printing once the budget is spent, so a huge or deep value costs no more than a short one.
// Invalid UTF-8 in strings is shown as U+FFFD.
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 60);

}  // namespace mft
