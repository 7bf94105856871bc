#include "models/lora_adapter.h"

#include "ops/lora_linear.h"

#include <ATen/ATen.h>

#include <cmath>

namespace mft::models {

LoraAdapterImpl::LoraAdapterImpl(const at::Tensor& A_, const at::Tensor& B_, double alpha_, bool use_rslora_,
                                 double dropout_, bool embedding_)
    : alpha(alpha_), dropout(dropout_), use_rslora(use_rslora_), embedding(embedding_) {
  TORCH_CHECK(A_.dim() == 2 && B_.dim() == 2 && B_.size(1) == A_.size(0) && A_.size(0) >= 1,
              "LoRA adapter: A must be (r, in) and B (out, r); got ", A_.sizes(), " and ", B_.sizes());
  A = register_parameter("lora_A", A_);
  B = register_parameter("lora_B", B_);
  scale = lora_scale(alpha, A_.size(0), use_rslora);
}

double lora_scale(double alpha, int64_t rank, bool use_rslora) {
  return use_rslora ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
}

LoraAdapterImpl* find_lora(torch::nn::Module& m) {
  // Adapted modules have exactly one child (the adapter); plain Linear/Embedding modules have none.
  for (const auto& child : m.children()) {
    if (auto* a = dynamic_cast<LoraAdapterImpl*>(child.get())) return a;
  }
  return nullptr;
}

namespace {
at::Tensor linear_with(torch::nn::LinearImpl& m, const at::Tensor& x, const at::Tensor& bias) {
  LoraAdapterImpl* a = find_lora(m);
  if (a == nullptr) return at::linear(x, m.weight, bias);
  return mft::lora_linear(x, m.weight, bias.defined() ? OptTensor(bias) : std::nullopt, a->A, a->B, a->scale,
                          a->dropout, a->is_training());
}
}  // namespace

at::Tensor adapted_linear(torch::nn::LinearImpl& m, const at::Tensor& x) {
  return linear_with(m, x, m.bias);
}

at::Tensor adapted_linear_no_bias(torch::nn::LinearImpl& m, const at::Tensor& x) {
  return linear_with(m, x, at::Tensor());
}

at::Tensor adapted_embedding(torch::nn::EmbeddingImpl& m, const at::Tensor& ids) {
  at::Tensor e = m.forward(ids);
  LoraAdapterImpl* a = find_lora(m);
  if (a == nullptr) return e;
  // Aᵀ[ids] (B, L, r) @ Bᵀ (r, D): r values per token instead of a one-hot product over V.
  const at::Tensor delta = at::matmul(at::embedding(a->A.t(), ids), a->B.t()) * a->scale;
  return (e.to(delta.scalar_type()) + delta).to(e.scalar_type());
}

}  // namespace mft::models
