// The device's exp2 rate (special-function unit), for the scan benchmark's arithmetic floor: each
// thread chains exp2f on a few independent values (the compiler cannot fold them), one launch filling
// the chip. Returns exponentials per second.
#include <cuda_runtime_api.h>

#include <cstdio>

namespace {
constexpr int kChains = 8, kSteps = 4096;

__global__ void exp2_chain(float* out, float seed) {
  float v[kChains];
#pragma unroll
  for (int c = 0; c < kChains; ++c) v[c] = seed * (threadIdx.x + c) * 1e-9f;
  for (int s = 0; s < kSteps; ++s) {
#pragma unroll
    for (int c = 0; c < kChains; ++c) v[c] = exp2f(v[c]) * -0.5f;  // stays in (-0.5, 0)
  }
  float acc = 0;
#pragma unroll
  for (int c = 0; c < kChains; ++c) acc += v[c];
  out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}
}  // namespace

double measure_exp2_rate() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int threads = 256, blocks = sms * 8;
  float* out = nullptr;
  if (cudaMalloc(&out, sizeof(float) * threads * blocks) != cudaSuccess) return 0;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  exp2_chain<<<blocks, threads>>>(out, 1.0f);  // warm-up
  float best_ms = 1e30f;
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a);
    exp2_chain<<<blocks, threads>>>(out, 1.0f + r);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    if (ms < best_ms) best_ms = ms;
  }
  const cudaError_t e = cudaGetLastError();
  cudaFree(out);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  if (e != cudaSuccess) {
    std::fprintf(stderr, "exp2 rate: %s\n", cudaGetErrorString(e));
    return 0;
  }
  return double(threads) * blocks * kChains * kSteps / (best_ms * 1e-3);
}
