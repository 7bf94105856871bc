#pragma once
// What `mamba-ft info MODEL` reports about an HF model folder.
#include <map>
#include <string>
#include <vector>

namespace mft::models {

struct ModelInfo {
  std::string dir, family;                           // family: "mamba" or "gpt_neox" (config.json model_type)
  std::map<std::string, int64_t> sizes;              // hidden_size, num_hidden_layers, vocab_size, ...
  int64_t parameters = 0;                            // distinct parameters of the built model
  std::map<std::string, int64_t> checkpoint_dtypes;  // safetensors dtype -> number of tensors
  bool has_tokenizer = false;                        // tokenizer.json present
  std::vector<std::string> files;                    // files read
};

// Reads config.json, loads and checks the weights (so a broken folder is reported here).
ModelInfo describe_model(const std::string& dir);

}  // namespace mft::models
