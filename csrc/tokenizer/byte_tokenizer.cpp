#include "tokenizer/byte_tokenizer.h"

#include "tokenizer/utf8.h"

#include <stdexcept>

namespace mft {
namespace {
constexpr std::string_view kSpecials[] = {"<|endoftext|>", "<|padding|>"};  // ids 256, 257
}  // namespace

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    for (int64_t s = 0; s < 2 && !matched; ++s) {
      if (text.compare(i, kSpecials[s].size(), kSpecials[s]) == 0) {
        ids.push_back(kEndOfText + s);
        i += kSpecials[s].size();
        matched = true;
      }
    }
    if (!matched) ids.push_back(static_cast<unsigned char>(text[i++]));
  }
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  bytes.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id >= 0 && id < kEndOfText) {
      bytes += static_cast<char>(id);
    } else if ((id == kEndOfText || id == kPadding) && !skip_special_tokens) {
      bytes += kSpecials[id - kEndOfText];
    }  // other ids are outside the vocabulary and left out, as in BpeTokenizer
  }
  return tok::to_utf8_lossy(bytes);
}

std::string ByteTokenizer::token_to_string(int64_t id) const {
  if (id >= 0 && id < kEndOfText) return std::string(1, static_cast<char>(id));
  if (id == kEndOfText || id == kPadding) return std::string(kSpecials[id - kEndOfText]);
  throw std::runtime_error("byte tokenizer: token id " + std::to_string(id) + " is not in the vocabulary (" +
                           std::to_string(kVocabSize) + " tokens)");
}

std::optional<int64_t> ByteTokenizer::token_to_id(std::string_view token) const {
  if (token.size() == 1) return static_cast<unsigned char>(token[0]);
  for (int64_t s = 0; s < 2; ++s) {
    if (token == kSpecials[s]) return kEndOfText + s;
  }
  return std::nullopt;
}

std::unique_ptr<Tokenizer> make_byte_tokenizer() {
  return std::make_unique<ByteTokenizer>();
}

}  // namespace mft
