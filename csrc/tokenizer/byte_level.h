#pragma once
// GPT-2's byte-level pre-tokenisation (../shared/reference/formats.md §4.3): the byte <-> printable
// character table and the regex that splits text into pieces before BPE.
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace mft::tok {

// bytes_to_unicode(): printable Latin-1 bytes map to themselves, the 68 others to U+0100.. in order.
const std::array<char32_t, 256>& byte_to_char();
// The byte a table character stands for, or -1 for characters outside the table.
int char_to_byte(char32_t c);
// The table characters of `bytes` as UTF-8 ("Ġworld" for " world").
std::string bytes_to_table_chars(std::string_view bytes);

// Splits text with the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (first alternative that matches wins, as in Oniguruma, which HF uses). PCRE2 in UTF mode with JIT;
// \s is spelled out as Unicode White_Space because PCRE2 10.42's UCP \s differs from Oniguruma's (it matches U+180E).
// Thread-safe: each call makes its own match data.
class GptRegexSplitter {
 public:
  GptRegexSplitter();
  ~GptRegexSplitter();
  GptRegexSplitter(const GptRegexSplitter&) = delete;
  GptRegexSplitter& operator=(const GptRegexSplitter&) = delete;

  // Calls `piece` for each consecutive piece of `text` (valid UTF-8); the pieces cover all of it.
  void split(std::string_view text, const std::function<void(std::string_view)>& piece) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace mft::tok
