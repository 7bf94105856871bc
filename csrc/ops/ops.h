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
//   ssd_scan (Mamba-2): x, z (b, L, h, p); dt (b, L, h); A, dt_bias (h,) fp32; B, C (b, L, g, n);
//                   D (h,) | (h, p) fp32; initial_states (b, h, p, n) fp32; seq_idx (b, L) int32;
//                   dt_limit (min, max) -> out (b, L, h, p), final_states (b, h, p, n) fp32 (see ssd_scan.h).
//   ssd_state_update: state (b, h, p, n) fp32 in place; x, z (b, h, p); dt (b, h); B, C (b, g, n)
//                   -> (b, h, p).
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

}  // namespace mft
