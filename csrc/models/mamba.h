#pragma once
// Mamba-1 language model as HF transformers' MambaForCausalLM (../shared/reference/formats.md §3.1-3.3):
//   embeddings -> n_layer x (RMSNorm -> MambaMixer, residual in fp32) -> RMSNorm -> lm_head.
// The mixer runs through the mft ops: mamba_inner over whole sequences (training and evaluation),
// causal_conv1d and selective_scan or their decode steps when continuing a cache. Parameter names equal
// the HF checkpoint names, so loading is a name-by-name copy.
#include "models/causal_lm.h"
#include "models/footprint.h"
#include "ops/ops.h"

#include <nlohmann/json.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <string>

namespace mft::models {

struct MambaConfig {
  int64_t vocab_size = 50280, hidden_size = 768, state_size = 16, num_hidden_layers = 24, conv_kernel = 4;
  int64_t intermediate_size = 1536, time_step_rank = 48;
  bool use_bias = false, use_conv_bias = true, tie_word_embeddings = true, residual_in_fp32 = true;
  double layer_norm_epsilon = 1e-5;
  int64_t pad_token_id = 0, bos_token_id = 0, eos_token_id = 0;

  // From an HF config.json; missing keys take HF's defaults, "auto" time_step_rank = ceil(hidden / 16).
  // Also reads the original state-spaces layout (d_model, n_layer, ssm_cfg, pad_vocab_size_multiple).
  static MambaConfig from_json_file(const std::string& path);
  static MambaConfig from_json(const nlohmann::json& j, const std::string& path);
  std::string to_hf_json() const;
  ModelFootprint footprint() const;  // parameters and activation sizes, without building the model
};

// Decoding state of one Mamba-1 layer: the conv's last inputs and the SSM state.
struct MambaLayerState {
  at::Tensor conv;  // (B, E, K - 1), activation dtype
  at::Tensor ssm;   // (B, E, N) fp32
};
struct MambaCache : DecodeCache {
  std::unique_ptr<DecodeCache> repeat(int64_t n) const override;
  std::vector<at::Tensor*> recurrent_states() override;
  std::vector<MambaLayerState> layers;
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);  // (..., dim) -> same dtype as x
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

class MambaMixerImpl : public torch::nn::Module {
 public:
  explicit MambaMixerImpl(const MambaConfig& c);
  // u: (B, L, D) -> (B, L, D). With `state`, continues from it and updates it (L = 1: decode step).
  at::Tensor forward(const at::Tensor& u, MambaLayerState* state = nullptr, const OptTensor& seq_idx = {});
  // The scan's step sizes softplus(dt_proj(x_proj(conv(x))) + bias) for input u (B, L, D) -> (B, L, E) fp32.
  at::Tensor delta(const at::Tensor& u);
  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  at::Tensor conv_weight, conv_bias, A_log, D;  // conv_weight (E, 1, K) as in HF; A_log (E, N); D (E,)
  int64_t inner, state, rank;

 private:
  // After in_proj, xz (B, 2E, L): the whole sequence through mft::mamba_inner, or continuing a state.
  at::Tensor mixer_inner(const at::Tensor& xz, const at::Tensor& conv_w, const OptTensor& conv_b, const at::Tensor& A,
                         const at::Tensor& D32, const at::Tensor& dt_bias, const OptTensor& seq_idx);
  at::Tensor mixer_step(const at::Tensor& xz, const at::Tensor& conv_w, const OptTensor& conv_b, const at::Tensor& A,
                        const at::Tensor& D32, const at::Tensor& dt_bias, MambaLayerState& state);
};
TORCH_MODULE(MambaMixer);

class MambaBlockImpl : public torch::nn::Module {
 public:
  explicit MambaBlockImpl(const MambaConfig& c);
  at::Tensor forward(const at::Tensor& h, MambaLayerState* state = nullptr,
                     const OptTensor& seq_idx = {});  // (B, L, D)
  RMSNorm norm{nullptr};
  MambaMixer mixer{nullptr};
  bool residual_in_fp32;
};
TORCH_MODULE(MambaBlock);

class MambaForCausalLMImpl : public CausalLM {
 public:
  explicit MambaForCausalLMImpl(const MambaConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx = std::nullopt)
      override;  // (B, L) int64 -> logits (B, L, vocab) fp32
  at::Tensor forward_cached(const at::Tensor& input_ids, DecodeCache& cache, int64_t last_logits = 0) override;
  std::unique_ptr<DecodeCache> new_cache(int64_t batch) override;
  std::string family() const override { return "mamba"; }
  int64_t vocab_size() const override { return config.vocab_size; }
  std::map<std::string, at::Tensor> hf_state_dict() override;
  std::string hf_config_json() const override { return config.to_hf_json(); }
  std::map<std::string, std::shared_ptr<torch::nn::Module>> hf_lora_modules() override;
  void untie_word_embeddings() override;
  std::vector<Decay> recurrence_decays(const at::Tensor& input_ids) override;
  MambaConfig config;
  torch::nn::Embedding embeddings{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm_f{nullptr};
  torch::nn::Linear lm_head{nullptr};  // only when the head is not tied to the embeddings
};
TORCH_MODULE(MambaForCausalLM);

// Builds the model from a folder (config.json + model.safetensors, shards or pytorch_model.bin; HF or
// original state-spaces names). Every parameter must be present with the right shape (lm_head.weight
// may be absent when tied); extra tensors are errors.
MambaForCausalLM load_mamba(const std::string& dir);

}  // namespace mft::models
