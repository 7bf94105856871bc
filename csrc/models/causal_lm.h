#pragma once
// What every language model in mamba-ft offers (Mamba, Mamba-2, GPT-NeoX): a full forward for training
// and scoring, and a cached forward for generation. The cache holds what a family needs to continue a
// sequence: Mamba's conv and SSM states (O(1) per token), GPT-NeoX's keys and values.
#include "models/activation_checkpoint.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace mft::models {

struct DecodeCache {
  virtual ~DecodeCache() = default;
  // A cache of `n` sequences, each continuing this cache's one sequence (batch must be 1): how several
  // continuations share the state after one context.
  virtual std::unique_ptr<DecodeCache> repeat(int64_t n) const = 0;
  // The fixed-size recurrent state of each layer (Mamba, Mamba-2: the SSM state (B, ...), fp32), for
  // stability analysis; empty for models whose cache grows with the sequence (GPT-NeoX's keys and values).
  virtual std::vector<at::Tensor*> recurrent_states() { return {}; }
  // Forgets every token after the first `n` (0 <= n <= length): caches that keep each token (GPT-NeoX's
  // keys and values) can; recurrent states cannot go back and say so.
  virtual void truncate(int64_t n);
  int64_t batch = 0;
  int64_t length = 0;  // tokens consumed so far
};

// `n` copies of a batch-1 cache tensor along dimension 0 (undefined stays undefined); checks batch == 1.
at::Tensor repeat_cache_rows(const DecodeCache& cache, const at::Tensor& t, int64_t n);

// While a NativeLogits guard is alive on this thread, CausalLM::forward / forward_cached return the logits
// in the output layer's compute dtype (bf16/fp16 under autocast or in a half model) instead of fp32.
// The training loss reads low-precision logits directly (ops/cross_entropy.h), so the trainer skips a
// (B, L, vocab) fp32 copy and its gradient (mamba-130m, seq 512: 103 MB each, two casts a step).
class NativeLogits {
 public:
  NativeLogits();
  ~NativeLogits();
  NativeLogits(const NativeLogits&) = delete;
  NativeLogits& operator=(const NativeLogits&) = delete;
  static bool active();

 private:
  bool previous_;
};

// The families' last step: logits (…, vocab) as fp32, or as they are under a NativeLogits guard.
at::Tensor logits_out(const at::Tensor& logits);

class CausalLM : public torch::nn::Module {
 public:
  // input_ids (B, L) int64 -> logits (B, L, vocab) fp32. seq_idx (B, L) int32 marks packed documents
  // (0, 0, 1, 1, 1, 2, ...): each document is computed as if it were alone in its row (Mamba's conv and
  // scan states reset, GPT-NeoX attends within the document and restarts its positions).
  virtual at::Tensor forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx = std::nullopt) = 0;
  // Continues the sequences held by `cache` with input_ids (B, L) (L = 1: one decode step; L > 1: a
  // prefill chunk) -> logits (B, L, vocab) fp32; the cache then holds all tokens. last_logits > 0: only the
  // last `last_logits` positions get logits, (B, last_logits, vocab) (a prefill whose other positions are
  // not scored skips most of the output layer's work).
  virtual at::Tensor forward_cached(const at::Tensor& input_ids, DecodeCache& cache, int64_t last_logits = 0) = 0;
  // An empty cache for `batch` sequences, on the model's device and in its dtype.
  virtual std::unique_ptr<DecodeCache> new_cache(int64_t batch) = 0;
  // Tree-packed scoring (models whose tokens attend to an arbitrary set of earlier tokens: GPT-NeoX; not
  // recurrent models): several sequences that share prefixes run as one row, each shared token once.
  //   input_ids (1, T); positions (T) int64, each token's position in its own sequence;
  //   visible (T, past + T) bool: the cached and row tokens each token attends to (itself included);
  //     undefined: the row is one plain sequence continuing the cache (causal attention);
  //   cache: nullptr, or a batch-1 cache holding `past` tokens, all of them before every row token's
  //     position; its tokens stay as they are (its spare capacity serves as scratch);
  //   logit_rows (N) int64: the row tokens that get logits -> (N, vocab) fp32.
  virtual bool supports_tree_attention() const { return false; }
  virtual at::Tensor forward_tree(const at::Tensor& input_ids, const at::Tensor& positions, const at::Tensor& visible,
                                  DecodeCache* cache, const at::Tensor& logit_rows);
  virtual std::string family() const = 0;  // "mamba", "mamba2", "gpt_neox" (HF model_type)
  virtual int64_t vocab_size() const = 0;  // rows of the output layer (may exceed the tokenizer's)
  // Parameters whose values the checkpoint holds, by HF name (shared tensors appear once).
  virtual std::map<std::string, at::Tensor> hf_state_dict() = 0;
  // config.json content in HF's format for this model (used when saving).
  virtual std::string hf_config_json() const = 0;
  // Every module LoRA may adapt (torch::nn::Linear projections and the input embedding; not the output
  // head), by HF module path ("backbone.layers.0.mixer.in_proj"). Each runs through
  // adapted_linear/adapted_embedding (models/lora_adapter.h), so an attached adapter is always used.
  virtual std::map<std::string, std::shared_ptr<torch::nn::Module>> hf_lora_modules() = 0;
  // Gives a tied output head its own copy of the embedding matrix (the config then says untied); a
  // no-op when the head is untied. Merging an embedding adapter must not change the head.
  virtual void untie_word_embeddings() = 0;

  // Activation checkpointing per block for training (models/activation_checkpoint.h): each block keeps
  // only its input and is recomputed in backward. Off by default; no effect without gradients.
  void set_activation_checkpointing(bool on) { activation_checkpointing_ = on; }
  bool activation_checkpointing() const { return activation_checkpointing_; }

  // Stability analysis (csrc/analysis). When set, forward() appends the residual stream after the embedding
  // and after every block, (B, L, D) each, to *record_hidden_states.
  std::vector<at::Tensor>* record_hidden_states = nullptr;
  // Per layer, the diagonal recurrence the layer runs on this input: its state decays by exp(delta_t * A)
  // per step, delta (B, L, C) fp32 the step sizes the model computes, A (C, S) fp32 (< 0). Empty for
  // models without such a recurrence (GPT-NeoX).
  struct Decay {
    at::Tensor delta, A;
  };
  virtual std::vector<Decay> recurrence_decays(const at::Tensor& /*input_ids*/) { return {}; }

 protected:
  // block(h), checkpointed when activation checkpointing is on and gradients are recorded.
  at::Tensor run_block(BlockFn block, const at::Tensor& h) const;

 private:
  bool activation_checkpointing_ = false;
};

// Registers `name` on `owner` as a bias-free Linear holding a copy of the tied embedding (V, D), with its
// requires_grad: what untie_word_embeddings does in every family.
torch::nn::Linear register_untied_head(torch::nn::Module& owner, const std::string& name, const at::Tensor& embedding);

// Checks input_ids (B, L) int64 with 0 <= id < vocab; `family` prefixes the message.
// The last `n` positions of h (B, L, D) when 0 < n < L, else h: what forward_cached's last_logits keeps.
at::Tensor last_positions(const at::Tensor& h, int64_t n);

void check_input_ids(const at::Tensor& input_ids, int64_t vocab, const std::string& family);
// Checks seq_idx (B, L) int32 like input_ids.
void check_seq_idx(const std::optional<at::Tensor>& seq_idx, const at::Tensor& input_ids, const std::string& family);

}  // namespace mft::models
