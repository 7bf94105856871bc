#pragma once
// UTF-8 helpers for the tokenizers: validation, code-point iteration, lossy decoding with the exact
// replacement rule of HF `tokenizers` (Rust's String::from_utf8_lossy), NFC through utf8proc, and the two
// character classes the GPT-2 pipeline needs. No LibTorch.
#include <cstddef>
#include <string>
#include <string_view>

namespace mft::tok {

// Byte offset of the first byte that does not belong to well-formed UTF-8 (Unicode Table 3-7: no
// overlongs, no surrogates, nothing above U+10FFFF), or std::string_view::npos when `s` is valid.
size_t find_invalid_utf8(std::string_view s);

// The code point starting at s[i] in valid UTF-8; advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of `c` (a scalar value) to `out`.
void append_utf8(std::string& out, char32_t c);

// `bytes` as valid UTF-8: every maximal ill-formed subsequence becomes one U+FFFD (the "substitution
// of maximal subparts" practice, which Rust and Python both follow), so e.g. a truncated 4-byte emoji
// gives one U+FFFD and a lone continuation byte another.
std::string to_utf8_lossy(std::string_view bytes);

// Unicode NFC of valid UTF-8 `s`. Strings whose code points are all below U+0300 are returned as they
// are without calling utf8proc: no such code point decomposes or combines under NFC.
std::string nfc(std::string_view s);

// Unicode White_Space (what Rust's and Oniguruma's Unicode `\s` match; measured against tokenizers:
// U+0085 and U+00A0 are in, U+001C..U+001F, U+180E, U+200B and U+FEFF are not).
bool is_white_space(char32_t c);

// Rust regex's Unicode `\w`: Alphabetic, marks, decimal digits, connector punctuation, joiners.
// Alphabetic is approximated as letters, letter numbers and the circled/squared Latin letters (the
// Other_Alphabetic code points outside the mark categories).
bool is_word_char(char32_t c);

// Python's str.isspace() for one code point (what str.strip() and str.split() use): Unicode White_Space
// plus the information separators U+001C..U+001F, and not U+180E, U+200B or U+FEFF.
bool is_python_space(char32_t c);

// Python's str.strip() (no argument) of valid UTF-8.
std::string python_strip(std::string_view s);

// Python's str.capitalize() of valid UTF-8: the first character in title case, the rest in lower case
// (utf8proc's simple case mappings; Python's full mappings differ only for a few characters such as
// U+0130, which expand to two code points there).
std::string python_capitalize(std::string_view s);

}  // namespace mft::tok
