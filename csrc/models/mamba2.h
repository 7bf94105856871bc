#pragma once
// Mamba-2 language model as HF transformers' Mamba2ForCausalLM (../shared/reference/formats.md §3.5):
//   embeddings -> n x (RMSNorm -> Mamba2Mixer, residual in fp32) -> RMSNorm -> lm_head.
// Mixer: in_proj -> [z | xBC | dt]; depthwise causal conv + SiLU over xBC -> x, B, C; mft::ssd_scan
// (per-head A, D, dt_bias, dt_limit; grouped B/C); gated RMSNorm (y * silu(z), normalised per group);
// out_proj.
#include "models/causal_lm.h"
#include "models/mamba.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <string>

namespace mft::models {

struct Mamba2Config {
  int64_t vocab_size = 50288, hidden_size = 768, state_size = 128, num_hidden_layers = 24, conv_kernel = 4;
  int64_t num_heads = 24, head_dim = 64, n_groups = 1, chunk_size = 256, expand = 2;
  bool use_bias = false, use_conv_bias = true, tie_word_embeddings = true, residual_in_fp32 = true;
  double layer_norm_epsilon = 1e-5, time_step_min = 0.001, time_step_max = 0.1, time_step_floor = 1e-4;
  double dt_limit_min = 0.0, dt_limit_max = std::numeric_limits<double>::infinity();
  int64_t pad_token_id = 0, bos_token_id = 0, eos_token_id = 0;

  int64_t intermediate_size() const { return num_heads * head_dim; }
  int64_t conv_dim() const { return intermediate_size() + 2 * n_groups * state_size; }
  // From an HF config.json (or the original layout); HF's class defaults are Codestral's, so the sizes
  // that define the geometry must be present.
  static Mamba2Config from_json(const nlohmann::json& j, const std::string& path);
  std::string to_hf_json() const;
  ModelFootprint footprint() const;  // parameters and activation sizes, without building the model
};

struct Mamba2LayerState {
  at::Tensor conv;  // (B, conv_dim, K - 1), activation dtype
  at::Tensor ssm;   // (B, H, P, N) fp32
};
struct Mamba2Cache : DecodeCache {
  std::unique_ptr<DecodeCache> repeat(int64_t n) const override;
  std::vector<at::Tensor*> recurrent_states() override;
  std::vector<Mamba2LayerState> layers;
};

class Mamba2MixerImpl : public torch::nn::Module {
 public:
  explicit Mamba2MixerImpl(const Mamba2Config& c);
  at::Tensor forward(const at::Tensor& u, Mamba2LayerState* state = nullptr, const OptTensor& seq_idx = {});
  // The scan's step sizes clamp(softplus(dt + dt_bias), dt_limit) for input u (B, L, D) -> (B, L, H) fp32.
  at::Tensor delta(const at::Tensor& u);
  torch::nn::Linear in_proj{nullptr}, out_proj{nullptr};
  at::Tensor conv_weight, conv_bias, dt_bias, A_log, D, norm_weight;  // conv (conv_dim, 1, K); A_log, D (H,)
  Mamba2Config config;

 private:
  at::Tensor gated_norm(const at::Tensor& y, const at::Tensor& z) const;  // (B, L, E) each
};
TORCH_MODULE(Mamba2Mixer);

class Mamba2BlockImpl : public torch::nn::Module {
 public:
  explicit Mamba2BlockImpl(const Mamba2Config& c);
  at::Tensor forward(const at::Tensor& h, Mamba2LayerState* state = nullptr, const OptTensor& seq_idx = {});
  RMSNorm norm{nullptr};
  Mamba2Mixer mixer{nullptr};
  bool residual_in_fp32;
};
TORCH_MODULE(Mamba2Block);

class Mamba2ForCausalLMImpl : public CausalLM {
 public:
  explicit Mamba2ForCausalLMImpl(const Mamba2Config& c);
  at::Tensor forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx = std::nullopt) override;
  at::Tensor forward_cached(const at::Tensor& input_ids, DecodeCache& cache, int64_t last_logits = 0) override;
  std::unique_ptr<DecodeCache> new_cache(int64_t batch) override;
  std::string family() const override { return "mamba2"; }
  int64_t vocab_size() const override { return config.vocab_size; }
  std::map<std::string, at::Tensor> hf_state_dict() override;
  std::string hf_config_json() const override { return config.to_hf_json(); }
  std::map<std::string, std::shared_ptr<torch::nn::Module>> hf_lora_modules() override;
  void untie_word_embeddings() override;
  std::vector<Decay> recurrence_decays(const at::Tensor& input_ids) override;
  Mamba2Config config;
  torch::nn::Embedding embeddings{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm_f{nullptr};
  torch::nn::Linear lm_head{nullptr};  // only when not tied

 private:
  at::Tensor head(const at::Tensor& h, const at::Tensor& head_weight = {});
};
TORCH_MODULE(Mamba2ForCausalLM);

Mamba2ForCausalLM load_mamba2(const std::string& dir);

}  // namespace mft::models
