#pragma once
// mft::causal_conv1d: depthwise causal convolution with optional SiLU, as causal-conv1d's
// causal_conv1d_fn:
//   out[b, d, t] = act(bias[d] + sum_k weight[d, k] * xp[b, d, t - (W - 1) + k])
// where xp is x preceded by initial_states (the W-1 inputs before t = 0, oldest first; zeros when
// absent). With seq_idx (B, L) int32, an input contributes only to outputs of its own document (each
// document one contiguous run of equal ids, as packing makes them); the initial states belong to the
// document of t = 0. Negative ids mark padding, as in causal-conv1d: the output there is 0 (no bias),
// padding inputs reach no output, and no gradient flows from or into padding positions.
#include "ops/ops.h"

#include <ATen/core/Tensor.h>

namespace mft {

struct ConvGeometry {
  int64_t batch = 0, dim = 0, seqlen = 0, width = 0;
};

ConvGeometry check_causal_conv1d_args(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                                      const OptTensor& initial_states, const OptTensor& seq_idx);

// Bytes moved at least by the forward (x in, out, weights).
double causal_conv1d_fwd_bytes(const at::Tensor& x, const at::Tensor& weight);

at::Tensor causal_conv1d_cpu(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                             const OptTensor& initial_states, bool silu, const OptTensor& seq_idx);

// dx, dweight, dbias, dinitial_states (undefined when the input is absent).
using ConvGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
ConvGrads causal_conv1d_backward_cpu(const at::Tensor& dout, const at::Tensor& x, const at::Tensor& weight,
                                     const OptTensor& bias, const OptTensor& initial_states, bool silu,
                                     const OptTensor& seq_idx);

namespace reference {
// Plain oracle: a sum of W shifted, masked copies of x; fp32 compute (fp64 when x is fp64).
at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias = {},
                         const OptTensor& initial_states = {}, bool silu = false, const OptTensor& seq_idx = {});
}  // namespace reference

}  // namespace mft
