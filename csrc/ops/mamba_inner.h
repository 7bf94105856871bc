#pragma once
// mft::mamba_inner: the whole Mamba-1 mixer after in_proj as one op (mamba-ssm's mamba_inner_fn), with
// optional LoRA factors on the three projections it reads, so an adapter can never be bypassed:
//   x, z   = xz[:, :E], xz[:, E:]                                   (B, E, L) each
//   xc     = silu(causal_conv1d(x, conv_weight, conv_bias))          (B, E, L)
//   x_dbl  = proj(x_proj, xc)                                        (B, R + 2N, L) = [dt_in | B | C]
//   dt     = proj(dt_proj, dt_in)                                    (B, E, L), no bias
//   y      = selective_scan(xc, dt, A, B, C, D, z, dt_bias, delta_softplus=True, seq_idx)   (B, E, L)
//   out    = proj(out_proj, y) + out_proj_bias, transposed           (B, L, Dm)
// where proj(W, x) = W x + s · B (A · dropout(x)) per position (LoRA when the factors are given; the
// low-rank path computes in fp32, fp64 for checks, and is added before one rounding, as lora_linear).
// Shapes: conv_weight (E, W); x_proj_weight (R + 2N, E); dt_proj_weight (E, R); out_proj_weight (Dm, E),
// all in xz's dtype; A (E, N), D, dt_bias (E,) fp32 (fp64 with fp64 xz); LoRA factors *_lora_A (r, in),
// *_lora_B (out, r) in one floating dtype; lora_scales = {s_x, s_dt, s_out}; seq_idx (B, L) int32 (packed
// documents; negative ids mark padding, whose output rows are 0 and pass no gradient back: the conv and
// the scan's rule, out_proj_bias included).
// Dropout (training, p > 0) multiplies each adapter's input by a mask drawn from dropout_seed + k
// (k = 0 x_proj, 1 dt_proj, 2 out_proj) in the (B, in, L) layout, so the backward recomputes it.
//
// Memory (checkpoint level 1): the Autograd kernel saves the inputs, x_dbl (R + 2N channels), the scan
// output y and the scan's 256-step state checkpoints. The backward recomputes the conv output and dt
// (one depthwise conv and one thin GEMM) instead of storing them: per layer 3E + R + 2N activation
// channels instead of the 5E + R + 2N of the unfused chain. Frozen weights get no gradient and cost no
// weight-gradient GEMM.
#include "ops/ops.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

namespace mft {

// One projection's LoRA factors (undefined A: no adapter).
struct LoraFactors {
  at::Tensor A, B;  // (r, in), (out, r)
  double scale = 0;
  bool defined() const { return A.defined(); }
};

// The op's inputs, named (the dispatcher sees them flat, in this order).
struct MambaInnerArgs {
  at::Tensor xz, conv_weight;
  OptTensor conv_bias;
  at::Tensor x_proj_weight, dt_proj_weight, out_proj_weight;
  OptTensor out_proj_bias;
  at::Tensor A;
  OptTensor D, dt_bias;
  LoraFactors x_proj_lora, dt_proj_lora, out_proj_lora;
  double lora_dropout = 0;
  bool training = false;
  std::optional<int64_t> dropout_seed;
  OptTensor seq_idx;
};

// (B, L, Dm) in xz's dtype.
at::Tensor mamba_inner(const MambaInnerArgs& args);

// The flat op (what torch.ops.mft.mamba_inner takes).
at::Tensor mamba_inner(const at::Tensor& xz, const at::Tensor& conv_weight, const OptTensor& conv_bias,
                       const at::Tensor& x_proj_weight, const at::Tensor& dt_proj_weight,
                       const at::Tensor& out_proj_weight, const OptTensor& out_proj_bias, const at::Tensor& A,
                       const OptTensor& D, const OptTensor& dt_bias, const OptTensor& x_proj_lora_A,
                       const OptTensor& x_proj_lora_B, const OptTensor& dt_proj_lora_A, const OptTensor& dt_proj_lora_B,
                       const OptTensor& out_proj_lora_A, const OptTensor& out_proj_lora_B,
                       at::ArrayRef<double> lora_scales, double lora_dropout, bool training,
                       std::optional<int64_t> dropout_seed, const OptTensor& seq_idx);

struct MambaInnerGeometry {
  int64_t batch = 0, inner = 0, seqlen = 0, dstate = 0, dt_rank = 0, width = 0, model_dim = 0;
};

// Throws a clear error for any bad argument; returns the geometry.
MambaInnerGeometry check_mamba_inner_args(const MambaInnerArgs& a);

// Number of differentiable inputs (xz ... out_proj_lora_B) and their order in gradients and masks.
constexpr int kMambaInnerGrads = 16;

namespace reference {
// The plain oracle: the formulas above with the reference conv and scan and ATen matmuls, everything in
// fp32 (fp64 when xz is fp64); differentiable by ATen's autograd.
at::Tensor mamba_inner(const MambaInnerArgs& args);
}  // namespace reference

}  // namespace mft
