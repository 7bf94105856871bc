#pragma once
// mft::lora_linear: a linear layer with a low-rank (LoRA) update, without ever forming W0 + s·B·A:
//   y = x W0ᵀ (+ b) + s · (dropout(x) Aᵀ) Bᵀ
// Shapes: x (..., in); weight W0 (out, in) and bias b (out,) in x's dtype; lora_A (r, in) and
// lora_B (out, r) in one floating dtype (fp32 adapters on a bf16 model are the usual case);
// -> y (..., out) in x's dtype. The base GEMM runs in x's dtype (fp32 accumulation); the thin low-rank
// path computes in fp32 (fp64 for checks) and is added to the base output before one rounding to x's
// dtype. Gradients of A and B come back in the adapters' dtype.
// Dropout (training and dropout_p > 0 only) drops elements of the LoRA input with probability p and
// scales the rest by 1/(1-p); the mask is a function of dropout_seed (drawn from the default generator
// when None), so backward recomputes it instead of storing it.
#include "ops/ops.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>

namespace mft {

at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias, const at::Tensor& lora_A,
                       const at::Tensor& lora_B, double scale, double dropout_p = 0.0, bool training = false,
                       std::optional<int64_t> dropout_seed = std::nullopt);

// Throws a clear error for any bad argument.
void check_lora_linear_args(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                            const at::Tensor& lora_A, const at::Tensor& lora_B, double scale, double dropout_p);

// True when the call applies dropout (training and p > 0).
inline bool lora_dropout_active(double dropout_p, bool training) {
  return training && dropout_p > 0.0;
}

// The dropout multiplier for an input of `sizes`: 0 with probability p, else 1/(1-p), in `dtype` on
// `device`. Drawn on the CPU from `seed`, so every backend and the backward see the same mask.
at::Tensor lora_dropout_mask(at::IntArrayRef sizes, double p, int64_t seed, at::ScalarType dtype,
                             const c10::Device& device);

// A fresh dropout seed from the default generator (so torch::manual_seed makes training repeatable);
// what the Autograd kernels use when dropout_seed is None.
int64_t draw_lora_dropout_seed();

// Gradients dx, dweight, dbias, dlora_A, dlora_B; those whose output_mask entry is false are undefined.
using LoraLinearGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

namespace reference {
// The plain oracle: the formula above with ATen ops (differentiable by ATen's autograd), computing in
// the adapters' dtype throughout (fp64 when they are fp64; all in bf16 when they are bf16).
at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias, const at::Tensor& lora_A,
                       const at::Tensor& lora_B, double scale, double dropout_p = 0.0, bool training = false,
                       std::optional<int64_t> dropout_seed = std::nullopt);
}  // namespace reference

}  // namespace mft
