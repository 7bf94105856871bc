#pragma once
// The model options every model-using subcommand shares: --model, --dtype, --device, --seed,
// --tokenizer; and loading the model with its tokenizer.
#include "models/causal_lm.h"
#include "tokenizer/tokenizer.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace mft::app {

struct ModelArgs {
  std::string model;  // HF folder or preset:NAME
  std::string dtype = "fp32";
  std::string device = "cpu";
  uint64_t seed = 0;      // presets' random init
  std::string tokenizer;  // tokenizer.json (or folder, or "bytes"); default: the model folder's

  void add_to(CLI::App* cmd);
};

struct LoadedModel {
  std::shared_ptr<models::CausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string tokenizer_source;
};

// Loads and casts the model and finds its tokenizer (train::resolve_tokenizer_path: --tokenizer, else
// MODEL/tokenizer.json, else the byte tokenizer for the tiny presets; otherwise a clear error). With
// `tokens` > 0, first checks that forward passes over `batch` sequences of `tokens` fit in memory
// (models/memory_estimate.h; `lower` says which option to lower).
LoadedModel load_model_and_tokenizer(const ModelArgs& args, int64_t batch = 1, int64_t tokens = 0,
                                     const std::string& lower = "");

}  // namespace mft::app
