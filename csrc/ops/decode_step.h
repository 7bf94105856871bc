#pragma once
// Decode-step ops for O(1)-per-token generation (no gradients):
//   causal_conv1d_update(x (B, D), conv_state (B, D, W-1) in place, weight (D, W), bias, silu) -> (B, D)
//     out = act(bias + sum_k weight[:, k] * [conv_state | x][:, k]); conv_state <- its last W-1 inputs.
//   selective_state_update(state (B, D, N) fp32 in place, x, dt (B, D), A (D, N), B, C (B, N) | (B, G, N),
//     D, z (B, D), dt_bias (D,), dt_softplus) -> (B, D)
//     state <- exp(dt' A) state + dt' B x;  out = (C . state + D x) * silu(z).
// Stepping token by token reproduces causal_conv1d / selective_scan over the whole sequence.
#include "ops/ops.h"

namespace mft {

void check_causal_conv1d_update_args(const at::Tensor& x, const at::Tensor& conv_state, const at::Tensor& weight,
                                     const OptTensor& bias);
void check_selective_state_update_args(const at::Tensor& state, const at::Tensor& x, const at::Tensor& dt,
                                       const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                                       const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias);

namespace reference {
at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const OptTensor& bias = {}, bool silu = false);
at::Tensor selective_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D = {},
                                  const OptTensor& z = {}, const OptTensor& dt_bias = {}, bool dt_softplus = false);
}  // namespace reference

}  // namespace mft
