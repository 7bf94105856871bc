#pragma once
// Tokenizers: text <-> token ids. Byte-level BPE read from a HF tokenizer.json (GPT-NeoX-20B, used by
// Mamba, Mamba-2 and Pythia; GPT-2 style files), giving the same ids and decoded text as HF
// `tokenizers`, and a plain byte tokenizer. This library does not need LibTorch; errors are
// std::runtime_error naming the file, the field and the value.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mft {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of UTF-8 `text` (no BOS/EOS added; special tokens written in the text are recognised).
  // Thread-safe.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // Text of `ids`; byte sequences that are not valid UTF-8 become U+FFFD. Ids outside the vocabulary
  // are left out (as HF does: models pad their embedding beyond the tokenizer's vocabulary).
  // skip_special_tokens leaves out the special added tokens (e.g. <|endoftext|>), not other added ones.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const = 0;

  // Number of ids including added tokens (HF: len(tokenizer), get_vocab_size(with_added_tokens=True)).
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> eos_token_id() const = 0;
  virtual std::optional<int64_t> bos_token_id() const = 0;

  // The token as stored in the vocabulary ("Ġworld" for " world"); throws for an unknown id.
  virtual std::string token_to_string(int64_t id) const = 0;
  // The id of a token written as in the vocabulary, if there is one.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
};

// A byte-level BPE tokenizer from `path`: a tokenizer.json file or a folder that holds one. BOS/EOS come
// from tokenizer_config.json next to it when that names them, else from "<|endoftext|>" if the
// vocabulary has it (GPT-2 / GPT-NeoX convention: bos = eos = <|endoftext|>).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Bytes as tokens: ids 0..255 are the byte values, then "<|endoftext|>" = 256 (BOS and EOS) and
// "<|padding|>" = 257; vocab_size() = 258.
std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace mft
