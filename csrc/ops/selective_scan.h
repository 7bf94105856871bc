#pragma once
// mft::selective_scan: schema-level pieces shared by every backend (validation, cost formulas) and the
// backend entry points.
//   delta' = softplus(delta + delta_bias) (or delta + delta_bias)
//   x_t = exp(delta'_t A) * x_{t-1} + delta'_t B_t u_t      (x_{-1} = initial_state or 0; reset to 0
//                                                          wherever seq_idx changes)
//   y_t = C_t . x_t + D u_t;   out = y * silu(z) (when z)
// seq_idx (B, L) int32 numbers packed documents, each one contiguous run; negative ids mark padding (as
// causal-conv1d): there the state is 0 and the output 0 (so the initial state is dropped when t = 0 is
// padding, and a document after padding starts from 0), padding inputs reach no output, and no gradient
// flows from or into padding positions.
#include "ops/ops.h"

#include <ATen/core/Tensor.h>

#include <array>

namespace mft {

// Sizes and B/C kinds of one validated call.
struct ScanGeometry {
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0;
  int64_t groups = 1;               // groups of channels sharing B/C (1 for 3-D B/C)
  bool var_B = true, var_C = true;  // false: time-invariant (D, N)
};

// Throws a clear error for any bad argument; returns the geometry.
ScanGeometry check_selective_scan_args(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                       const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                       const OptTensor& delta_bias, const OptTensor& initial_state,
                                       const OptTensor& seq_idx);

// Bytes the forward must read and write at least (inputs once, output once), for GB/s figures.
double selective_scan_fwd_bytes(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& B, const at::Tensor& C,
                                const OptTensor& z);
// exp() evaluations the forward needs: one per (batch, dim, seqlen, dstate).
double selective_scan_exp_count(const ScanGeometry& g);

// CPU kernels (csrc/ops/selective_scan_cpu.cpp).
std::tuple<at::Tensor, at::Tensor> selective_scan_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                                      const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                                      const OptTensor& z, const OptTensor& delta_bias,
                                                      bool delta_softplus, const OptTensor& initial_state,
                                                      bool return_last_state, const OptTensor& seq_idx);

// Forward that also returns the state before every 256th step, (batch, dim, ceil(seqlen / 256), dstate)
// in the compute dtype: what the Autograd kernel saves so the backward needs no second forward pass.
std::tuple<at::Tensor, at::Tensor, at::Tensor> selective_scan_fwd_cpu(
    const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
    const OptTensor& D, const OptTensor& z, const OptTensor& delta_bias, bool delta_softplus,
    const OptTensor& initial_state, bool return_last_state, const OptTensor& seq_idx);

// Gradients in input order: du, ddelta, dA, dB, dC, dD, dz, ddelta_bias, dinitial_state (undefined
// for absent optional inputs).
using ScanGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                             at::Tensor, at::Tensor>;
ScanGrads selective_scan_backward_cpu(const at::Tensor& dout, const OptTensor& dlast_state, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                      const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                      const OptTensor& delta_bias, bool delta_softplus, const OptTensor& initial_state,
                                      const OptTensor& seq_idx, const OptTensor& checkpoints);

namespace reference {
// The plain oracle: ATen ops in a loop over seqlen, computing in fp32 (fp64 when u is fp64);
// differentiable by ATen's autograd. Same contract as mft::selective_scan.
std::tuple<at::Tensor, at::Tensor> selective_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D = {},
                                                  const OptTensor& z = {}, const OptTensor& delta_bias = {},
                                                  bool delta_softplus = false, const OptTensor& initial_state = {},
                                                  bool return_last_state = false, const OptTensor& seq_idx = {});
}  // namespace reference

}  // namespace mft
