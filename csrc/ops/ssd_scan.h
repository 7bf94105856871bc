#pragma once
// mft::ssd_scan: the Mamba-2 state-space-dual scan, with the semantics of mamba-ssm's
// mamba_chunk_scan_combined. Shapes (b batch, L seqlen, h heads, p headdim, g groups, n dstate):
//   x (b, L, h, p); dt (b, L, h); A (h,) fp32; B, C (b, L, g, n), head i uses group i / (h / g);
//   D (h,) | (h, p) fp32; z (b, L, h, p); dt_bias (h,) fp32; initial_states (b, h, p, n) fp32;
//   seq_idx (b, L) int32; dt_limit (min, max), None = (0, inf)
//   -> out (b, L, h, p) in x's dtype, final_states (b, h, p, n) fp32 (empty unless asked).
// Math, per head (S is (p, n)):
//   dt'_t = clamp(softplus(dt_t + dt_bias) (or dt_t + dt_bias), dt_min, dt_max)
//   S_t = exp(dt'_t A) S_{t-1} + dt'_t x_t B_t^T      (S_{-1} = initial_states or 0; reset to 0
//                                                      wherever seq_idx changes)
//   y_t = S_t C_t + D x_t;   out = y * silu(z) (when z)
// seq_idx numbers packed documents, each one contiguous run; negative ids mark padding (as causal-conv1d):
// there the state is 0 and the output 0 (the initial state is dropped when t = 0 is padding, a document
// after padding starts from 0), padding inputs reach no output, no gradient flows from or into them.
// chunk_size only changes how the work is grouped (and the rounding), never the result.
#include "ops/ops.h"

#include <ATen/core/Tensor.h>

#include <utility>

namespace mft {

struct SsdGeometry {
  int64_t batch = 0, seqlen = 0, heads = 0, headdim = 0, groups = 0, dstate = 0;
  double dt_min = 0.0, dt_max = 0.0;  // dt_limit, dt_max may be +inf
};

// Throws a clear error for any bad argument; returns the geometry (dt_limit resolved).
SsdGeometry check_ssd_scan_args(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                                const at::Tensor& C, int64_t chunk_size, const OptTensor& D, const OptTensor& z,
                                const OptTensor& dt_bias, const OptTensor& initial_states, const OptTensor& seq_idx,
                                std::optional<at::ArrayRef<double>> dt_limit);

// dt' = clamp(softplus(dt + dt_bias) (or dt + dt_bias), dt_min, dt_max) in `cd`, any shape ending in
// heads: what the chunked kernel and the decode step feed the recurrence.
at::Tensor ssd_effective_dt(const at::Tensor& dt, const OptTensor& dt_bias, bool dt_softplus, double dt_min,
                            double dt_max, at::ScalarType cd);

// Chunked SSD written with ATen batched matmuls (csrc/ops/ssd_scan_chunked.cpp): the CPU kernel and,
// run under autograd, the backward (which recomputes the forward from the saved inputs).
std::tuple<at::Tensor, at::Tensor> ssd_scan_chunked(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                                    const at::Tensor& B, const at::Tensor& C, int64_t chunk_size,
                                                    const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                                    const OptTensor& initial_states, const OptTensor& seq_idx,
                                                    bool dt_softplus, std::optional<at::ArrayRef<double>> dt_limit,
                                                    bool return_final_states);

// Gradients in input order: dx, ddt, dA, dB, dC, dD, dz, ddt_bias, dinitial_states (undefined for
// absent optional inputs).
using SsdGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                            at::Tensor, at::Tensor>;
SsdGrads ssd_scan_backward_chunked(const at::Tensor& dout, const OptTensor& dfinal_states, const at::Tensor& x,
                                   const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                                   int64_t chunk_size, const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                   const OptTensor& initial_states, const OptTensor& seq_idx, bool dt_softplus,
                                   std::optional<at::ArrayRef<double>> dt_limit);

// Decode step (no gradients): state (b, h, p, n) fp32 updated in place; x, z (b, h, p); dt (b, h);
// A, dt_bias (h,); B, C (b, g, n); D (h,) | (h, p) -> out (b, h, p). Stepping token by token
// reproduces ssd_scan.
void check_ssd_state_update_args(const at::Tensor& state, const at::Tensor& x, const at::Tensor& dt,
                                 const at::Tensor& A, const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                 const OptTensor& z, const OptTensor& dt_bias);

namespace reference {
// The plain oracle: one loop over time of ATen ops in fp32 (fp64 when x is fp64); differentiable by
// ATen's autograd. Same contract as mft::ssd_scan.
std::tuple<at::Tensor, at::Tensor> ssd_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                            const at::Tensor& B, const at::Tensor& C, int64_t chunk_size = 256,
                                            const OptTensor& D = {}, const OptTensor& z = {},
                                            const OptTensor& dt_bias = {}, const OptTensor& initial_states = {},
                                            const OptTensor& seq_idx = {}, bool dt_softplus = false,
                                            std::optional<at::ArrayRef<double>> dt_limit = std::nullopt,
                                            bool return_final_states = false);
at::Tensor ssd_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                            const at::Tensor& B, const at::Tensor& C, const OptTensor& D = {}, const OptTensor& z = {},
                            const OptTensor& dt_bias = {}, bool dt_softplus = false,
                            std::optional<at::ArrayRef<double>> dt_limit = std::nullopt);
}  // namespace reference

}  // namespace mft
