// CUDA kernels of mft::causal_conv1d: one thread per output element for the forward and the input
// gradient; one thread per (batch, channel) row for the weight and bias gradients (a sequential sum
// over time, so the result does not depend on scheduling). Correct-first versions: the CPU kernels and
// the reference are the oracles (tests/cuda/test_cuda_ops.cpp). Padding (seq_idx < 0) outputs 0.
#include "causal_conv1d/conv_params.h"

namespace mft::cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

template <typename S>
__device__ S sigmoid(S v) {
  return S(1) / (S(1) + exp(-v));
}

// Output t of batch row b is padding (seq_idx < 0): it is 0 and passes no gradient back.
template <typename S>
__device__ bool padding(const ConvParams<S>& p, int64_t b, int64_t t) {
  return p.seq && p.seq[b * p.seqlen + t] < 0;
}

// Input position src = t - (W - 1) + k of row (b, d): x, an initial state, or 0; masked to the document
// of output t (0 for a padding output).
template <typename S>
__device__ S tap_input(const ConvParams<S>& p, int64_t b, int64_t d, int64_t t, int64_t k) {
  const int64_t pad = p.width - 1, src = t - pad + k;
  const int32_t* seq = p.seq ? p.seq + b * p.seqlen : nullptr;
  if (seq && seq[t] < 0) return S(0);  // a padding output reads nothing
  if (src >= 0) {
    if (seq && seq[src] != seq[t]) return S(0);
    return p.x[(b * p.dim + d) * p.seqlen + src];
  }
  if (!p.init || (seq && seq[0] != seq[t])) return S(0);
  return p.init[(b * p.dim + d) * pad + (pad + src)];
}

template <typename S>
__device__ S pre_activation(const ConvParams<S>& p, int64_t b, int64_t d, int64_t t) {
  S acc = p.bias ? p.bias[d] : S(0);
  for (int64_t k = 0; k < p.width; ++k) acc += p.weight[d * p.width + k] * tap_input(p, b, d, t, k);
  return acc;
}

template <typename S>
__global__ void forward_kernel(ConvParams<S> p, S* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * p.dim * p.seqlen) return;
  const int64_t t = i % p.seqlen, row = i / p.seqlen, d = row % p.dim, b = row / p.dim;
  if (padding(p, b, t)) {
    out[i] = S(0);
    return;
  }
  const S a = pre_activation(p, b, d, t);
  out[i] = p.silu ? a * sigmoid(a) : a;
}

// g = dout * act'(pre-activation).
template <typename S>
__global__ void activation_grad_kernel(ConvParams<S> p, const S* dout, S* g) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * p.dim * p.seqlen) return;
  const int64_t t = i % p.seqlen, row = i / p.seqlen, d = row % p.dim, b = row / p.dim;
  if (padding(p, b, t)) {  // the output there is constant 0
    g[i] = S(0);
    return;
  }
  if (!p.silu) {
    g[i] = dout[i];
    return;
  }
  const S a = pre_activation(p, b, d, t), s = sigmoid(a);
  g[i] = dout[i] * s * (S(1) + a * (S(1) - s));
}

// Gradient of input position src (x when src >= 0, else initial state pad + src): the outputs
// t = src + (W - 1) - k it feeds, for each tap k, masked like the forward.
template <typename S>
__device__ S input_grad(const ConvParams<S>& p, const S* g, int64_t b, int64_t d, int64_t src) {
  const int64_t pad = p.width - 1;
  const int32_t* seq = p.seq ? p.seq + b * p.seqlen : nullptr;
  const S* grow = g + (b * p.dim + d) * p.seqlen;
  S acc = 0;
  for (int64_t k = 0; k < p.width; ++k) {
    const int64_t t = src + pad - k;
    if (t < 0 || t >= p.seqlen) continue;
    if (seq && seq[src >= 0 ? src : 0] != seq[t]) continue;
    acc += p.weight[d * p.width + k] * grow[t];
  }
  return acc;
}

template <typename S>
__global__ void input_grad_kernel(ConvParams<S> p, const S* g, S* dx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * p.dim * p.seqlen) return;
  const int64_t s = i % p.seqlen, row = i / p.seqlen, d = row % p.dim, b = row / p.dim;
  dx[i] = input_grad(p, g, b, d, s);
}

template <typename S>
__global__ void init_grad_kernel(ConvParams<S> p, const S* g, S* dinit) {
  const int64_t pad = p.width - 1;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * p.dim * pad) return;
  const int64_t j = i % pad, row = i / pad, d = row % p.dim, b = row / p.dim;
  dinit[i] = input_grad(p, g, b, d, j - pad);
}

template <typename S>
__global__ void weight_grad_kernel(ConvParams<S> p, const S* g, S* dweight_part, S* dbias_part) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= p.batch * p.dim) return;
  const int64_t d = row % p.dim, b = row / p.dim;
  const S* grow = g + row * p.seqlen;
  S db = 0;
  for (int64_t t = 0; t < p.seqlen; ++t) db += grow[t];
  dbias_part[row] = db;
  for (int64_t k = 0; k < p.width; ++k) {
    S acc = 0;
    for (int64_t t = 0; t < p.seqlen; ++t) acc += grow[t] * tap_input(p, b, d, t, k);
    dweight_part[row * p.width + k] = acc;
  }
}

}  // namespace

template <typename S>
cudaError_t conv_forward(const ConvParams<S>& p, S* out, cudaStream_t stream) {
  const int64_t n = p.batch * p.dim * p.seqlen;
  if (n == 0) return cudaSuccess;
  forward_kernel<S><<<blocks_for(n), kThreads, 0, stream>>>(p, out);
  return cudaGetLastError();
}

template <typename S>
cudaError_t conv_backward(const ConvParams<S>& p, const S* dout, S* g, S* dx, S* dinit, S* dweight_part, S* dbias_part,
                          cudaStream_t stream) {
  const int64_t n = p.batch * p.dim * p.seqlen, rows = p.batch * p.dim;
  if (n == 0) return cudaSuccess;
  activation_grad_kernel<S><<<blocks_for(n), kThreads, 0, stream>>>(p, dout, g);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  input_grad_kernel<S><<<blocks_for(n), kThreads, 0, stream>>>(p, g, dx);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  if (dinit && p.width > 1) {
    init_grad_kernel<S><<<blocks_for(rows * (p.width - 1)), kThreads, 0, stream>>>(p, g, dinit);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  weight_grad_kernel<S><<<blocks_for(rows), kThreads, 0, stream>>>(p, g, dweight_part, dbias_part);
  return cudaGetLastError();
}

template cudaError_t conv_forward<float>(const ConvParams<float>&, float*, cudaStream_t);
template cudaError_t conv_forward<double>(const ConvParams<double>&, double*, cudaStream_t);
template cudaError_t conv_backward<float>(const ConvParams<float>&, const float*, float*, float*, float*, float*,
                                          float*, cudaStream_t);
template cudaError_t conv_backward<double>(const ConvParams<double>&, const double*, double*, double*, double*, double*,
                                           double*, cudaStream_t);

}  // namespace mft::cuda
