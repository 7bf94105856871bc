#pragma once
// LoRA adapters as the models see them. csrc/peft attaches a LoraAdapter as the child module "lora" of
// a projection (torch::nn::Linear) or an embedding; the models run every such module through
// adapted_linear / adapted_embedding, which take the adapter into account whenever one is attached.
// This is how the low-rank update reaches every buffer the mixer consumes (x_proj, dt_proj and
// out_proj included; ../shared/reference/paper.md §5.3): no forward path reads a targeted weight
// without its adapter.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

namespace mft::models {

class LoraAdapterImpl : public torch::nn::Module {
 public:
  // Linear:    A (r, in),  B (out, r);  y = x W0ᵀ + b + scale · (dropout(x) Aᵀ) Bᵀ
  // Embedding: A (r, V),   B (D, r);    e = E0[ids] + scale · Aᵀ[ids] Bᵀ  (HF peft's layout; no dropout)
  LoraAdapterImpl(const at::Tensor& A, const at::Tensor& B, double alpha, bool use_rslora, double dropout,
                  bool embedding);
  int64_t rank() const { return A.size(0); }
  at::Tensor A, B;  // registered as "lora_A", "lora_B"
  double alpha, scale, dropout;
  bool use_rslora, embedding;
};
TORCH_MODULE(LoraAdapter);

// The scale of a LoRA update: alpha / r, or alpha / sqrt(r) with rsLoRA.
double lora_scale(double alpha, int64_t rank, bool use_rslora);

// The adapter attached to `m` (child "lora"), or nullptr.
LoraAdapterImpl* find_lora(torch::nn::Module& m);

// (..., in) -> (..., out): the module's linear map plus its adapter's update (through mft::lora_linear).
at::Tensor adapted_linear(torch::nn::LinearImpl& m, const at::Tensor& x);
// The same without the module's bias (Mamba's dt_proj, whose bias the scan adds).
at::Tensor adapted_linear_no_bias(torch::nn::LinearImpl& m, const at::Tensor& x);
// ids (B, L) int64 -> (B, L, D): the embedding plus its adapter's update.
at::Tensor adapted_embedding(torch::nn::EmbeddingImpl& m, const at::Tensor& ids);

}  // namespace mft::models
