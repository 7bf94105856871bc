#pragma once
// The mft:: ops as C++ functions. Each call goes through the PyTorch dispatcher (so Autograd, Autocast,
// CPU and CUDA kernels are chosen exactly as for torch.ops.mft.* in Python); never call the per-backend
// functions directly.
//
// Shapes (B batch, D channels, L seqlen, N dstate, G groups, W conv width):
//   selective_scan: u, delta, z (B, D, L); A (D, N) fp32; B, C (B, N, L) | (B, G, N, L) | (D, N);
//                   D, delta_bias (D,) fp32; initial_state (B, D, N) fp32; seq_idx (B, L) int32
//                   -> out (B, D, L) in u's dtype, last_state (B, D, N) fp32 (empty unless asked).
//   causal_conv1d:  x (B, D, L), weight (D, W), bias (D,), initial_states (B, D, W-1) -> (B, D, L).
//   causal_conv1d_update: x (B, D), conv_state (B, D, W-1) updated in place -> (B, D).
//   selective_state_update: state (B, D, N) fp32 updated in place; x, dt, z (B, D);
//                   B, C (B, N) | (B, G, N) -> (B, D).
#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace mft {

using OptTensor = std::optional<at::Tensor>;

// Between optional op arguments and possibly-undefined tensors (autograd saves only tensors).
inline at::Tensor or_undefined(const OptTensor& t) {
  return t ? *t : at::Tensor();
}
inline OptTensor or_none(const at::Tensor& t) {
  return t.defined() ? OptTensor(t) : std::nullopt;
}

std::tuple<at::Tensor, at::Tensor> selective_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D = {},
                                                  const OptTensor& z = {}, const OptTensor& delta_bias = {},
                                                  bool delta_softplus = false, const OptTensor& initial_state = {},
                                                  bool return_last_state = false, const OptTensor& seq_idx = {});

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias = {},
                         const OptTensor& initial_states = {}, bool silu = false, const OptTensor& seq_idx = {});

at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const OptTensor& bias = {}, bool silu = false);

at::Tensor selective_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D = {},
                                  const OptTensor& z = {}, const OptTensor& dt_bias = {}, bool dt_softplus = false);

}  // namespace mft
