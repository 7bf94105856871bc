// CUDA scan benchmark (scripts/gpu-check.sh): selective_scan forward and forward+backward at mamba-1.4b
// geometry (batch 8, dim 4096, dstate 16, seqlen 2048; u, delta, z, B, C in bf16) against two floors
// measured here on the device: the bytes the forward must move / the copy bandwidth, and the
// exponentials it needs / the exp2 rate. Also causal_conv1d. Prints one table; times are medians of
// CUDA-event timings after a warm-up.
#include "ops/causal_conv1d.h"
#include "ops/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <torch/autograd.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

double measure_exp2_rate();

namespace {

double median_ms(int repeats, const std::function<void()>& f) {
  f();  // warm-up
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
    a.record();
    f();
    b.record();
    b.synchronize();
    ms.push_back(a.elapsed_time(b));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Device copy bandwidth, bytes read + written per second.
double copy_bandwidth() {
  const at::Tensor src = at::randn({int64_t(1) << 29}, at::TensorOptions().device(at::kCUDA));  // 2 GiB
  at::Tensor dst = at::empty_like(src);
  const double ms = median_ms(5, [&] { dst.copy_(src); });
  return 2.0 * double(src.numel()) * 4 / (ms * 1e-3);
}

}  // namespace

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::printf("bench_cuda_ops: no CUDA device\n");
    return 1;
  }
  const int64_t B = argc > 1 ? std::atol(argv[1]) : 8, D = 4096, N = 16, L = argc > 2 ? std::atol(argv[2]) : 2048;
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const auto bf16 = cuda.dtype(at::kBFloat16);
  const at::Tensor u = at::randn({B, D, L}, bf16), delta = (at::randn({B, D, L}, cuda) * 0.5 - 2).to(at::kBFloat16);
  const at::Tensor z = at::randn({B, D, L}, bf16), Bm = at::randn({B, N, L}, bf16), Cm = at::randn({B, N, L}, bf16);
  const at::Tensor A = -at::rand({D, N}, cuda) - 0.5, Dv = at::randn({D}, cuda), bias = at::randn({D}, cuda) * 0.1;
  const double bw = copy_bandwidth(), exp_rate = measure_exp2_rate();
  const mft::ScanGeometry g = mft::check_selective_scan_args(u, delta, A, Bm, Cm, Dv, z, bias, {}, {});
  const double bytes = mft::selective_scan_fwd_bytes(u, delta, Bm, Cm, z), exps = mft::selective_scan_exp_count(g);
  const double floor_ms = std::max(bytes / bw, exps / exp_rate) * 1e3;
  auto fwd = [&] { mft::selective_scan(u, delta, A, Bm, Cm, Dv, z, bias, true); };
  std::vector<at::Tensor> leaves;
  for (const auto& t : {u, delta, A, Bm, Cm, Dv, z, bias}) leaves.push_back(t.detach().requires_grad_(true));
  const at::Tensor dout = at::randn({B, D, L}, bf16);
  auto fwd_bwd = [&] {
    auto [out, last] = mft::selective_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6],
                                           leaves[7], true);
    torch::autograd::grad({out}, leaves, {dout});
  };
  const double fwd_ms = median_ms(5, fwd), fb_ms = median_ms(3, fwd_bwd);
  const at::Tensor x = at::randn({B, D, L}, bf16), w = at::randn({D, 4}, cuda).to(at::kBFloat16);
  const double conv_ms = median_ms(10, [&] { mft::causal_conv1d(x, w, {}, {}, true); });
  const double conv_floor_ms = mft::causal_conv1d_fwd_bytes(x, w) / bw * 1e3;
  std::printf("device %s | copy %.2f TB/s (read + written) | exp2 %.3g /s\n",
              at::cuda::getCurrentDeviceProperties()->name, bw / 1e12, exp_rate);
  std::printf("%-34s %10s %10s %9s\n", "op (b, d, n, l)", "ms", "floor ms", "% floor");
  std::printf("selective_scan fwd  %ld %ld %ld %ld  %10.3f %10.3f %8.1f%%\n", (long)B, (long)D, (long)N, (long)L,
              fwd_ms, floor_ms, 100 * floor_ms / fwd_ms);
  std::printf("selective_scan f+b  %ld %ld %ld %ld  %10.3f %10.3f %8.1f%%  (floor: forward's only)\n", (long)B, (long)D,
              (long)N, (long)L, fb_ms, floor_ms, 100 * floor_ms / fb_ms);
  std::printf("causal_conv1d fwd   %ld %ld w4 %ld    %10.3f %10.3f %8.1f%%\n", (long)B, (long)D, (long)L, conv_ms,
              conv_floor_ms, 100 * conv_floor_ms / conv_ms);
  std::printf("floors: scan %.3g bytes / copy bandwidth = %.3f ms, %.3g exps / exp2 rate = %.3f ms\n", bytes,
              bytes / bw * 1e3, exps, exps / exp_rate * 1e3);
  return 0;
}
