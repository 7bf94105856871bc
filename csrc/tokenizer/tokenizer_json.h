#pragma once
// Reads a HF tokenizer.json into plain structs, checking that it describes a pipeline we reproduce
// exactly: NFC or no normaliser, ByteLevel pre-tokeniser and decoder, BPE model, no truncation,
// padding or template post-processing. Anything else is an error naming the file, the field and the
// value found, e.g. `tokenizer.json: model.type "WordPiece" is not supported (expected "BPE")`.
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"

#include <string>
#include <vector>

namespace mft::tok {

struct TokenizerSpec {
  std::string path;
  bool nfc = false;                      // normalizer: NFC (alone or in a Sequence) rather than null
  bool add_prefix_space = false;         // pre_tokenizer.add_prefix_space
  bool use_regex = true;                 // pre_tokenizer.use_regex (absent in older files: true)
  std::vector<AddedToken> added_tokens;  // in file order; ids are assigned as HF does when loading
  BpeSpec model;
};

TokenizerSpec read_tokenizer_json(const std::string& path);

}  // namespace mft::tok
