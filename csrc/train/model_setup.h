#pragma once
// Loading a model spec with its tokenizer, shared by the trainer and the CLI: the tokenizer is
// `tokenizer_path` when given ("bytes" = the byte tokenizer), else MODEL/tokenizer.json, else the byte
// tokenizer for the tiny presets; otherwise a clear error asking for one.
#include "tokenizer/tokenizer.h"

#include <memory>
#include <string>

namespace mft::train {

std::string resolve_tokenizer_path(const std::string& model_spec, const std::string& tokenizer_path);
std::unique_ptr<Tokenizer> load_tokenizer_for(const std::string& model_spec, const std::string& tokenizer_path);

}  // namespace mft::train
