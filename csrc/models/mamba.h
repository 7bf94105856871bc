#pragma once
// Mamba-1 language model as HF transformers' MambaForCausalLM (../shared/reference/formats.md §3.1-3.3):
//   embeddings -> n_layer x (RMSNorm -> MambaMixer, residual in fp32) -> RMSNorm -> lm_head.
// The mixer runs through the mft ops (causal_conv1d, selective_scan). Parameter names equal the HF
// checkpoint names, so loading is a name-by-name copy.
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

  // From an HF config.json; missing keys take HF's defaults, "auto" time_step_rank = ceil(hidden / 16).
  static MambaConfig from_json_file(const std::string& path);
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
  at::Tensor forward(const at::Tensor& u);  // u: (B, L, D) -> (B, L, D)
  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  at::Tensor conv_weight, conv_bias, A_log, D;  // conv_weight (E, 1, K) as in HF; A_log (E, N); D (E,)
  int64_t inner, state, rank;
};
TORCH_MODULE(MambaMixer);

class MambaBlockImpl : public torch::nn::Module {
 public:
  explicit MambaBlockImpl(const MambaConfig& c);
  at::Tensor forward(const at::Tensor& h);  // (B, L, D)
  RMSNorm norm{nullptr};
  MambaMixer mixer{nullptr};
  bool residual_in_fp32;
};
TORCH_MODULE(MambaBlock);

class MambaForCausalLMImpl : public torch::nn::Module {
 public:
  explicit MambaForCausalLMImpl(const MambaConfig& c);
  at::Tensor forward(const at::Tensor& input_ids);  // (B, L) int64 -> logits (B, L, vocab) fp32
  MambaConfig config;
  torch::nn::Embedding embeddings{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm_f{nullptr};
  torch::nn::Linear lm_head{nullptr};  // only when the head is not tied to the embeddings
};
TORCH_MODULE(MambaForCausalLM);

// Builds the model from an HF folder (config.json + model.safetensors or shards). Every parameter must
// be present with the right shape (lm_head.weight may be absent when tied); extra tensors are errors.
MambaForCausalLM load_mamba(const std::string& dir);

}  // namespace mft::models
