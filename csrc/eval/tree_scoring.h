#pragma once
// Tree-packed loglikelihood scoring for models with attention (GPT-NeoX): the pairs of many requests run as
// few wide rows instead of many narrow batch-1 forwards, each shared token once.
//
// Pairs with the same context form a group: the context once, then every continuation after it, each
// continuation attending to the context and to its own earlier tokens only (a tree of depth two). Groups
// are packed side by side into rows of about `row_tokens` tokens (one forward each, no padding), every
// token at its position in its own sequence and seeing only its own sequence. Consecutive groups (in token
// order) whose contexts share a long prefix (an MMLU subject's few-shot examples, a winogrande document's
// examples before its two options) form a run: the prefix goes once into a key/value cache and every row
// of the run continues from it. Only the tokens that are scored get the final norm and the output layer.
// The numbers are those of scoring each context + continuation whole (lm-eval's way), up to rounding.
#include "eval/loglikelihood.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace mft::eval {

// Below this many shared tokens a prefix is not worth running separately.
constexpr size_t kMinSharedPrefixTokens = 16;

struct TreeScoringOptions {
  int64_t row_tokens = kTreeRowTokens;
  bool share_prefixes = true;                        // runs with a cached prefix (ScoreOptions::share_prefixes)
  int64_t* forwarded = nullptr;                      // += input tokens run (cached prefixes and rows)
  std::function<void(int64_t pairs_done)> progress;  // after each forward, pairs scored so far
};

// Scores pairs[i] for each i in `which` into out[i]. Each such pair's model input must be its whole
// context + continuation (no left truncation: at most max_length + 1 tokens). Needs
// model.supports_tree_attention().
void score_tree(models::CausalLM& model, const std::vector<TokenPair>& pairs, const std::vector<size_t>& which,
                const c10::Device& device, const TreeScoringOptions& options, std::vector<TokenScore>& out);

// Length of the common prefix of a and b.
size_t common_prefix_length(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

// For each target k: log_softmax(logits[row[k]])[target[k]] (fp32 softmax, fp64 result) and whether
// target[k] is that row's argmax. logits (N, V).
void score_rows(const at::Tensor& logits, const std::vector<int64_t>& row, const std::vector<int64_t>& target,
                std::vector<double>& loglikelihood, std::vector<bool>& greedy);

}  // namespace mft::eval
