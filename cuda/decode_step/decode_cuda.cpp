// CUDA entry points of the decode-step ops (mft::causal_conv1d_update, mft::selective_state_update):
// for now the plain references (ATen ops on the device, in place on the caller's state) under a device
// guard, so that generation and cached evaluation run on a GPU; fused one-launch kernels are part of
// issue 8's remaining work. The references are the CPU kernels' oracles (tests/ops/test_decode_step.cpp);
// tests/cuda/test_cuda_ops.cpp compares this path with the CPU kernels.
#include "ops/decode_step.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace mft {
namespace {

at::Tensor conv_update_cuda(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                            const OptTensor& bias, bool silu) {
  const c10::cuda::CUDAGuard guard(x.device());
  return reference::causal_conv1d_update(x, conv_state, weight, bias, silu);
}

at::Tensor state_update_cuda(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                             const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                             const OptTensor& dt_bias, bool dt_softplus) {
  const c10::cuda::CUDAGuard guard(x.device());
  return reference::selective_state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus);
}

}  // namespace

TORCH_LIBRARY_IMPL(mft, CUDA, m) {
  m.impl("causal_conv1d_update", &conv_update_cuda);
  m.impl("selective_state_update", &state_update_cuda);
}

}  // namespace mft
