#pragma once
// Autoregressive generation for any CausalLM: one prefill of the prompt, then one cached step per
// token (O(1) per token for Mamba and Mamba-2, a KV cache for GPT-NeoX).
#include "models/causal_lm.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace mft::models {

struct GenerationOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0: greedy (argmax); otherwise sample from softmax(logits / temperature)
  int64_t top_k = 0;         // keep the k most likely tokens (0: all)
  double top_p = 1.0;        // keep the smallest set whose probability reaches top_p (1: all)
  uint64_t seed = 0;
  std::optional<int64_t> eos_token_id;  // stop after emitting it
};

// The new tokens after `prompt` (not including it). `on_token` sees each new token as it is chosen;
// returning false stops generation (e.g. a stop string was printed).
std::vector<int64_t> generate(CausalLM& model, const std::vector<int64_t>& prompt, const GenerationOptions& options,
                              const std::function<bool(int64_t)>& on_token = {});

// Next-token choice from logits (vocab,) fp32 under `options` (exposed for tests).
int64_t choose_token(const at::Tensor& logits, const GenerationOptions& options, at::Generator& gen);

}  // namespace mft::models
