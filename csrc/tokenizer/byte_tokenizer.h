#pragma once
// Bytes as tokens (for byte-level models and for tests that need no tokenizer file): id = byte value
// for 0..255, then the special tokens "<|endoftext|>" (256; BOS and EOS) and "<|padding|>" (257).
// Special tokens written in the text are recognised, as the BPE tokenizer does. Any bytes encode,
// valid UTF-8 or not; decode replaces invalid UTF-8 with U+FFFD.
#include "tokenizer/tokenizer.h"

namespace mft {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int64_t kEndOfText = 256;
  static constexpr int64_t kPadding = 257;
  static constexpr int64_t kVocabSize = 258;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return kVocabSize; }
  std::optional<int64_t> eos_token_id() const override { return kEndOfText; }
  std::optional<int64_t> bos_token_id() const override { return kEndOfText; }
  std::string token_to_string(int64_t id) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
};

}  // namespace mft
