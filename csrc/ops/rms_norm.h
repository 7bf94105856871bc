#pragma once
// RMSNorm as HF's MambaRMSNorm computes it:
//   y = weight * (x * rsqrt(mean(x², -1) + eps))
// x (..., D), weight (D,). The composite (rms_norm_reference: fp32 upcast, pow, mean, rsqrt, two muls)
// is the reference; rms_norm runs one fused autograd node when x and weight are contiguous CPU tensors
// of one dtype, fp32 or fp64 (the residual stream of every model here, in every precision mode), and the
// composite otherwise. The composite's backward is about ten passes over x per norm (mamba-130m full
// fp32, seq 512: 25 norms, about 50 ms of a step); the fused one reads x, dy once and writes dx once.
// Weight gradients are summed over fixed blocks of rows in a fixed order: the same bits at any thread
// count.
#include <ATen/core/Tensor.h>

namespace mft {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace mft
