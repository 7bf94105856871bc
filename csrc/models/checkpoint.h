#pragma once
// Reading a model folder's tensors whatever format it ships (model.safetensors, sharded safetensors,
// pytorch_model.bin or its shards) under HF names, and writing a model back in HF layout.
#include "models/causal_lm.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mft::models {

// Checkpoint name prefix -> HF name prefix, applied once per name (first match wins).
using RenameTable = std::vector<std::pair<std::string, std::string>>;

// Every tensor of `dir` under its HF name. safetensors is preferred when both formats exist;
// pytorch_model.bin files are read by the restricted unpickler (no code runs). Names for which `skip`
// returns true are dropped (after renaming).
std::map<std::string, at::Tensor> read_checkpoint(const std::string& dir, const RenameTable& renames = {},
                                                  const std::function<bool(const std::string&)>& skip = {});

// The weight files read_checkpoint would open, for `mamba-ft info`.
std::vector<std::string> checkpoint_files(const std::string& dir);

// Writes `dir`/config.json and `dir`/model.safetensors in the layout HF transformers' from_pretrained
// loads; tokenizer_json, when not empty, is copied alongside. The folder is put in place whole
// (core/file_io.h AtomicDir): an existing `dir` is replaced, so no file of an older model stays behind.
void save_hf_model(CausalLM& model, const std::string& dir, const std::string& tokenizer_json = "");

}  // namespace mft::models
