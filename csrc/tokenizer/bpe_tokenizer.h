#pragma once
// Byte-level BPE tokenizer from a HF tokenizer.json, with HF `tokenizers`' pipeline
// (../shared/reference/formats.md §4.4): added tokens with normalized=false are split off the raw
// text; each remaining segment is NFC-normalised (when the file says so) and split on the normalized
// added tokens; each remaining segment gets the prefix space (add_prefix_space), is cut by the GPT-2
// regex, and each piece goes through BPE over its bytes. Decoding maps table characters back to bytes.
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace mft::tok {
struct TokenizerSpec;
}

namespace mft {

class BpeTokenizer final : public Tokenizer {
 public:
  // Reads and checks the tokenizer.json at `path` (see tokenizer_json.h for what is refused).
  static std::unique_ptr<BpeTokenizer> from_file(const std::string& path);
  explicit BpeTokenizer(tok::TokenizerSpec spec);

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> eos_token_id() const override { return eos_; }
  std::optional<int64_t> bos_token_id() const override { return bos_; }
  std::string token_to_string(int64_t id) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;

  // BOS/EOS are not part of tokenizer.json; load_tokenizer sets them.
  void set_bos_eos(std::optional<int64_t> bos, std::optional<int64_t> eos) {
    bos_ = bos;
    eos_ = eos;
  }

 private:
  // Per id: the token string (as HF's id_to_token gives it), its bytes once decoded, whether it exists
  // and whether skip_special_tokens drops it.
  struct IdInfo {
    std::string token, bytes;
    bool present = false, special = false;
  };
  void encode_segment(std::string_view normalized, std::vector<int64_t>& ids) const;
  const IdInfo* info(int64_t id) const;

  std::string path_;
  bool nfc_ = false, add_prefix_space_ = false, use_regex_ = true;
  tok::BpeModel model_;
  std::unique_ptr<tok::AddedVocabulary> added_;
  tok::GptRegexSplitter splitter_;
  std::unordered_map<std::string, int64_t> added_ids_;  // added token content -> id
  std::vector<IdInfo> ids_;
  int64_t vocab_size_ = 0;
  std::optional<int64_t> bos_, eos_;
};

}  // namespace mft
