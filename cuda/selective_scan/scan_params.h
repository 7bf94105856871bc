#pragma once
// Plain-C++ view of one mft::selective_scan call for the CUDA kernels (no LibTorch here). Device
// pointers to contiguous buffers of the compute type S (fp32, or fp64 for fp64 inputs); the host side
// (scan_cuda.cpp) converts other dtypes around the kernels.
#include <cstdint>

#include <cuda_runtime_api.h>

#if defined(__CUDACC__)
#define MFT_HOST_DEVICE __host__ __device__
#else
#define MFT_HOST_DEVICE
#endif

namespace mft::cuda {

// The forward saves the state before every kScanSegment-th step; the backward recomputes each segment
// from it (as the CPU kernels do, so the checkpoints have the same shape).
inline constexpr int64_t kScanSegment = 256;
// States per channel held in registers.
inline constexpr int kMaxDstate = 64;

template <typename S>
struct ScanParams {
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0, groups = 1;
  bool var_B = true, var_C = true, softplus = false;
  const S* u = nullptr;          // (B, D, L)
  const S* delta = nullptr;      // (B, D, L)
  const S* A = nullptr;          // (D, N)
  const S* Bm = nullptr;         // (B, G, N, L) when var_B, else (D, N)
  const S* Cm = nullptr;         // likewise
  const S* Dv = nullptr;         // (D,) or null
  const S* z = nullptr;          // (B, D, L) or null
  const S* bias = nullptr;       // (D,) or null: delta bias
  const S* init = nullptr;       // (B, D, N) or null
  const int32_t* seq = nullptr;  // (B, L) or null
};

MFT_HOST_DEVICE inline int64_t scan_segments(int64_t seqlen) {
  return (seqlen + kScanSegment - 1) / kScanSegment;
}

// out (B, D, L); last (B, D, N) or null; checkpoints (B, D, nseg, N) or null.
template <typename S>
cudaError_t scan_forward(const ScanParams<S>& p, S* out, S* last, S* checkpoints, cudaStream_t stream);

// Gradients, all written in full (no accumulation, no atomics):
//   du, ddelta, dz (B, D, L); dinit (B, D, N) or null;
//   dA_part (B, D, N), dD_part, dbias_part (B, D): summed over B by the caller;
//   dB_part, dC_part: (B, D, N, L) per-channel contributions when var, summed by the caller over the
//   channels of each group; (B, D, N) when time-invariant, summed over B.
//   states: scratch (B, D, kScanSegment, N).
template <typename S>
cudaError_t scan_backward(const ScanParams<S>& p, const S* dout, const S* dlast, const S* checkpoints, S* states, S* du,
                          S* ddelta, S* dz, S* dinit, S* dA_part, S* dB_part, S* dC_part, S* dD_part, S* dbias_part,
                          cudaStream_t stream);

}  // namespace mft::cuda
