#pragma once
// GPT-NeoX (Pythia) as HF transformers' GPTNeoXForCausalLM (../shared/reference/formats.md §3.6):
// embed_in -> n x layer (parallel residual: x + attn(LN1 x) + mlp(LN2 x), or sequential) -> final LN ->
// embed_out. Attention: fused query_key_value interleaved per head, partial rotary (rotate-half),
// causal scaled-dot-product attention; MLP: exact (erf) GELU.
#include "models/causal_lm.h"
#include "models/footprint.h"

#include <nlohmann/json.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mft::models {

struct GPTNeoXConfig {
  int64_t vocab_size = 50432, hidden_size = 6144, num_hidden_layers = 44, num_attention_heads = 64;
  int64_t intermediate_size = 24576;
  double rotary_pct = 0.25, rotary_emb_base = 10000, layer_norm_eps = 1e-5;
  bool use_parallel_residual = true, attention_bias = true, tie_word_embeddings = false;

  int64_t head_size() const { return hidden_size / num_attention_heads; }
  int64_t rotary_ndims() const { return static_cast<int64_t>(double(head_size()) * rotary_pct); }
  // From an HF config.json (old keys rotary_pct / rotary_emb_base, or rope_parameters).
  static GPTNeoXConfig from_json_file(const std::string& path);
  static GPTNeoXConfig from_json(const nlohmann::json& j, const std::string& path);
  std::string to_hf_json() const;
  ModelFootprint footprint() const;  // parameters and activation sizes, without building the model
  int64_t bos_token_id = 0, eos_token_id = 0;
  int64_t max_position_embeddings = 2048;
};

// Keys and values of one layer, (B, H, capacity, hd) buffers grown by doubling; `length` are valid.
struct KVLayer {
  at::Tensor k, v;
};
struct GPTNeoXCache : DecodeCache {
  std::unique_ptr<DecodeCache> repeat(int64_t n) const override;
  void truncate(int64_t n) override;
  std::vector<KVLayer> layers;
};

// A tree row (CausalLM::forward_tree) split into segments: ranges of the row whose tokens see only the
// cache and tokens of their own range. Attention then runs per segment over its own keys (row_mask) and
// once for all tokens over the cache's keys, the two merged by their log-sum-exps: the same result as the
// dense (T, past + T) mask, without the work on the masked-out blocks between segments.
struct TreeAttention {
  at::Tensor row_mask;  // (T, T) additive, 0 where visible and -inf elsewhere, in the model's dtype
  std::vector<std::pair<int64_t, int64_t>> segments;  // [begin, end), covering the row in order
};

// A tree row's segments (visible (T, past + T) bool, as CausalLM::forward_tree takes it), when splitting
// its attention pays: every row token sees the whole cache and only row tokens of its own segment, and the
// (query, key) pairs the split skips outweigh its extra attention calls. row_mask in `dtype`.
std::optional<TreeAttention> split_tree_row(const at::Tensor& visible, int64_t past, at::ScalarType dtype);

class GPTNeoXLayerImpl : public torch::nn::Module {
 public:
  explicit GPTNeoXLayerImpl(const GPTNeoXConfig& c);
  // x: (B, L, D); cos, sin: (L, rotary_ndims) or (B, 1, L, rotary_ndims) for positions past..past+L-1. With `kv`
  // (holding `past` positions), attends to them too and appends this chunk's keys and values. `mask` (B, 1, L, past +
  // L) bool, when given, replaces the causal mask (packed documents, trees); with a mask the cache's length is not the
  // caller's concern: this chunk is written after `past` either way. `tree`, when given, replaces mask: a segmented
  // tree row after `past` cached tokens (nothing is written to the cache). `keep` (N) int64, when given: only those
  // positions' outputs, (B, N, D) (keys and values of all positions are still computed and cached).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, KVLayer* kv = nullptr,
                     int64_t past = 0, const at::Tensor& mask = {}, const TreeAttention* tree = nullptr,
                     const at::Tensor& keep = {});
  torch::nn::LayerNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  torch::nn::Linear query_key_value{nullptr}, dense{nullptr}, dense_h_to_4h{nullptr}, dense_4h_to_h{nullptr};
  int64_t heads, head_size, rotary_ndims;
  bool parallel;

 private:
  at::Tensor attention(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, KVLayer* kv, int64_t past,
                       const at::Tensor& mask, const TreeAttention* tree, const at::Tensor& keep);
  at::Tensor mlp(const at::Tensor& x);
};
TORCH_MODULE(GPTNeoXLayer);

class GPTNeoXForCausalLMImpl : public CausalLM {
 public:
  explicit GPTNeoXForCausalLMImpl(const GPTNeoXConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx = std::nullopt)
      override;  // (B, L) int64 -> logits (B, L, vocab) fp32
  at::Tensor forward_cached(const at::Tensor& input_ids, DecodeCache& cache, int64_t last_logits = 0) override;
  std::unique_ptr<DecodeCache> new_cache(int64_t batch) override;
  bool supports_tree_attention() const override { return true; }
  at::Tensor forward_tree(const at::Tensor& input_ids, const at::Tensor& positions, const at::Tensor& visible,
                          DecodeCache* cache, const at::Tensor& logit_rows) override;
  std::string family() const override { return "gpt_neox"; }
  int64_t vocab_size() const override { return config.vocab_size; }
  std::map<std::string, at::Tensor> hf_state_dict() override;
  std::string hf_config_json() const override { return config.to_hf_json(); }
  std::map<std::string, std::shared_ptr<torch::nn::Module>> hf_lora_modules() override;
  void untie_word_embeddings() override;
  GPTNeoXConfig config;
  torch::nn::Embedding embed_in{nullptr};
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm final_layer_norm{nullptr};
  torch::nn::Linear embed_out{nullptr};  // only when not tied to embed_in

 private:
  at::Tensor run(const at::Tensor& input_ids, GPTNeoXCache* cache, const std::optional<at::Tensor>& seq_idx,
                 int64_t last_logits = 0);
  // Embedding and layers: input_ids (B, L), positions (L) or (B, 1, L) fp32, mask as the layer's; with a
  // cache, attends to its `past` tokens and writes this chunk's keys and values after them (the caller
  // decides whether they count). Returns h (B, L, D) before the final norm (with `keep`: the last layer
  // computes only those positions, (B, N, D)) and, in *head, the output layer's weight (V, D).
  at::Tensor trunk(const at::Tensor& input_ids, const at::Tensor& positions, GPTNeoXCache* cache, int64_t past,
                   const at::Tensor& mask, at::Tensor* head, const TreeAttention* tree = nullptr,
                   const at::Tensor& keep = {});
};
TORCH_MODULE(GPTNeoXForCausalLM);

// From an HF folder; old non-parameter buffers (attention.bias, masked_bias, rotary inv_freq) are skipped.
GPTNeoXForCausalLM load_gpt_neox(const std::string& dir);

}  // namespace mft::models
