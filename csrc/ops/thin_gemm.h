#pragma once
// The low-rank products of a LoRA adapter on the CPU, in fp32, reading the big activation operand X in
// its own dtype (fp32, bf16 or fp16) and its own layout:
//   u = W X       W (r, K) fp32,  X (K, L)            -> (r, L) fp32      (u = A x, g = Bᵀ dy)
//   G = P Xᵀ      P (r, L) fp32,  X (K, L)            -> (r, K) fp32      (dA = g xᵀ, dBᵀ = u dyᵀ)
//   Y += s Bm U   Y (M, L) any,   Bm (M, r), U (r, L) fp32, in place, Y rounded once
// X and Y are 2-D with unit stride along either dimension (channel-major (B, C, L) rows or a transposed
// row-major (L, C)); r is the adapter's rank (small).
//
// Why: with MKL the adapter's GEMMs are thin (rank 8: about 90 GFLOP/s in fp32 on this CPU) and, in
// bf16 training, each needs an fp32 copy of its bf16 activation and a cast of the output back (mamba-130m
// lora-bf16 trace: ~110 ms of thin GEMMs and ~60 ms of casts a step). Here X is read once, converted
// in registers, and every output element is summed in a fixed order by one task: deterministic at
// any thread count.
#include <ATen/core/Tensor.h>

#include <utility>

namespace mft::thin {

// Whether the kernels take x: a CPU fp32/bf16/fp16 matrix with unit stride along one dimension.
bool supported(const at::Tensor& x);

// w (r, K) · x (K, L) -> (r, L) fp32.
at::Tensor w_x(const at::Tensor& w, const at::Tensor& x);

// p (r, L) · xᵀ, x (K, L) -> (r, K) fp32.
at::Tensor p_xt(const at::Tensor& p, const at::Tensor& x);

// y (M, L) += s · bm (M, r) · u (r, L), computed in fp32 and rounded once to y's dtype.
void add_b_u_(const at::Tensor& y, const at::Tensor& bm, const at::Tensor& u, double s);

// The backward of an adapter's update y (out, L) += s · B (A x), x (in, L), for one such slice: with
// g = s Bᵀ dy (r, L), adds Aᵀ g to dx (in, L) when dx is defined (rounded once) and returns
// {dA = g xᵀ (r, in), dBᵀ / s = (A x) dyᵀ (r, out)} in fp32, each only when asked (else undefined).
// A (r, in) and B (out, r) fp32. Callers sum the slices of a batch and scale dBᵀ.
std::pair<at::Tensor, at::Tensor> update_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& A,
                                                  const at::Tensor& B, double s, const at::Tensor& dx, bool need_dA,
                                                  bool need_dB);

}  // namespace mft::thin
