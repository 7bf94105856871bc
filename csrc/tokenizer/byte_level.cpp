#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

namespace mft::tok {
namespace {
std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? char32_t(b) : next++;
  }
  return table;
}

// Unicode White_Space, as a PCRE2 class body (see is_white_space in utf8.h).
#define MFT_WS R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})"
constexpr const char* kPattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^)" MFT_WS R"(\p{L}\p{N}]+|[)" MFT_WS
                                 R"(]+(?![^)" MFT_WS R"(])|[)" MFT_WS R"(]+)";
#undef MFT_WS
}  // namespace

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = make_byte_to_char();
  return table;
}

int char_to_byte(char32_t c) {
  // Table characters are below U+0144; the inverse is a small array.
  static const auto inverse = [] {
    std::array<int, 0x144> inv{};
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) inv[byte_to_char()[b]] = b;
    return inv;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

std::string bytes_to_table_chars(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char b : bytes) append_utf8(out, byte_to_char()[static_cast<unsigned char>(b)]);
  return out;
}

struct GptRegexSplitter::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

GptRegexSplitter::GptRegexSplitter() : code_(std::make_unique<Code>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF, &error, &offset, nullptr);
  if (code_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw std::runtime_error("GPT-2 regex does not compile at offset " + std::to_string(offset) + ": " +
                             reinterpret_cast<const char*>(message));
  }
  // JIT makes matching several times faster; without it (e.g. JIT unavailable) the interpreter is used.
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
}

GptRegexSplitter::~GptRegexSplitter() = default;

void GptRegexSplitter::split(std::string_view text, const std::function<void(std::string_view)>& piece) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  if (md == nullptr) throw std::bad_alloc();
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> owned(md, &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at < text.size()) {
    // The text was validated once by the caller; PCRE2 need not check it again at every offset.
    const int rc = pcre2_match(code_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) {
      if (rc != PCRE2_ERROR_NOMATCH) throw std::runtime_error("GPT-2 regex: match error " + std::to_string(rc));
      piece(text.substr(at));  // an unmatched tail is a piece of its own (HF's "Isolated" splitting)
      return;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t begin = ov[0], end = ov[1];
    if (begin > at) piece(text.substr(at, begin - at));
    if (end == begin) {  // cannot happen with this pattern; never loop on an empty match
      next_code_point(text, end);
    }
    piece(text.substr(begin, end - begin));
    at = end;
  }
}

}  // namespace mft::tok
