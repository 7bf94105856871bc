#pragma once
// Plain-C++ view of one mft::causal_conv1d call for the CUDA kernels (no LibTorch here, so that the
// .cu files compile quickly). Pointers are device pointers to contiguous buffers of S (fp32 or fp64):
// the host side (conv_cuda.cpp) converts other dtypes before and after.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace mft::cuda {

template <typename S>
struct ConvParams {
  int64_t batch = 0, dim = 0, seqlen = 0, width = 0;
  const S* x = nullptr;          // (B, D, L)
  const S* weight = nullptr;     // (D, W)
  const S* bias = nullptr;       // (D,) or null
  const S* init = nullptr;       // (B, D, W - 1) or null: the inputs before t = 0, oldest first
  const int32_t* seq = nullptr;  // (B, L) or null: document ids
  bool silu = false;
};

// out (B, D, L).
template <typename S>
cudaError_t conv_forward(const ConvParams<S>& p, S* out, cudaStream_t stream);

// dout (B, D, L) -> dx (B, D, L), dinit (B, D, W - 1) or null, and per-batch-row partial sums
// dweight_part (B, D, W), dbias_part (B, D) (the caller sums over B: deterministic, no atomics).
// grad_scratch: (B, D, L), the gradient before the activation.
template <typename S>
cudaError_t conv_backward(const ConvParams<S>& p, const S* dout, S* grad_scratch, S* dx, S* dinit, S* dweight_part,
                          S* dbias_part, cudaStream_t stream);

}  // namespace mft::cuda
