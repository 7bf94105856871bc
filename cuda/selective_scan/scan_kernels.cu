// CUDA kernels of mft::selective_scan, forward and backward: one thread per (batch, channel) carries
// that channel's dstate states in registers through time. The backward walks the segments last to
// first, recomputes each segment's states from the forward's checkpoint into a scratch buffer, then runs
// the adjoint recurrence backwards in time. Every gradient is written per (batch, channel) and reduced
// by the caller in a fixed order: deterministic. Padding steps (seq_idx < 0) hold state 0 and output 0. Correct-first
// versions (the CPU kernels and the plain reference are the oracles); the chunked, warp-parallel fast path is the next
// step of issue 8.
#include "selective_scan/scan_params.h"

namespace mft::cuda {
namespace {

constexpr int kThreads = 128;

template <typename S>
__device__ S softplus(S x) {
  return x > S(20) ? x : log1p(exp(x));
}
template <typename S>
__device__ S sigmoid(S x) {
  return S(1) / (S(1) + exp(-x));
}

template <typename S>
struct Row {
  const ScanParams<S>& p;
  int64_t b, d, g;
  __device__ Row(const ScanParams<S>& p_, int64_t b_, int64_t d_) : p(p_), b(b_), d(d_), g(d_ / (p_.dim / p_.groups)) {}
  __device__ int64_t at(int64_t t) const { return (b * p.dim + d) * p.seqlen + t; }
  __device__ S B(int64_t n, int64_t t) const {
    return p.var_B ? p.Bm[((b * p.groups + g) * p.dstate + n) * p.seqlen + t] : p.Bm[d * p.dstate + n];
  }
  __device__ S C(int64_t n, int64_t t) const {
    return p.var_C ? p.Cm[((b * p.groups + g) * p.dstate + n) * p.seqlen + t] : p.Cm[d * p.dstate + n];
  }
  __device__ bool reset(int64_t t) const {
    return p.seq && t > 0 && p.seq[b * p.seqlen + t] != p.seq[b * p.seqlen + t - 1];
  }
  // Padding (seq_idx < 0): state 0, output 0, no gradients.
  __device__ bool padding(int64_t t) const { return p.seq && p.seq[b * p.seqlen + t] < 0; }
  __device__ S raw_delta(int64_t t) const { return p.delta[at(t)] + (p.bias ? p.bias[d] : S(0)); }
  __device__ S delta(int64_t t) const {
    const S r = raw_delta(t);
    return p.softplus ? softplus(r) : r;
  }
};

template <typename S>
__global__ void forward_kernel(ScanParams<S> p, S* out, S* last, S* ck) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= p.batch * p.dim) return;
  const Row<S> r(p, row / p.dim, row % p.dim);
  const int64_t N = p.dstate, nseg = scan_segments(p.seqlen);
  S h[kMaxDstate];
#pragma unroll
  for (int n = 0; n < kMaxDstate; ++n) h[n] = (n < N && p.init) ? p.init[row * N + n] : S(0);
  for (int64_t t = 0; t < p.seqlen; ++t) {
    if (ck && t % kScanSegment == 0) {
#pragma unroll
      for (int n = 0; n < kMaxDstate; ++n)
        if (n < N) ck[(row * nseg + t / kScanSegment) * N + n] = h[n];
    }
    if (r.padding(t)) {
#pragma unroll
      for (int n = 0; n < kMaxDstate; ++n) h[n] = S(0);
      out[r.at(t)] = S(0);
      continue;
    }
    const bool reset = r.reset(t);
    const S dt = r.delta(t), u = p.u[r.at(t)], du = dt * u;
    S y = p.Dv ? p.Dv[r.d] * u : S(0);
#pragma unroll
    for (int n = 0; n < kMaxDstate; ++n) {
      if (n < N) {
        const S e = exp(dt * p.A[r.d * N + n]);
        h[n] = e * (reset ? S(0) : h[n]) + du * r.B(n, t);
        y += r.C(n, t) * h[n];
      }
    }
    if (p.z) {
      const S zt = p.z[r.at(t)];
      y *= zt * sigmoid(zt);
    }
    out[r.at(t)] = y;
  }
  if (last) {
#pragma unroll
    for (int n = 0; n < kMaxDstate; ++n)
      if (n < N) last[row * N + n] = h[n];
  }
}

template <typename S>
__global__ void backward_kernel(ScanParams<S> p, const S* dout, const S* dlast, const S* ck, S* states, S* du_out,
                                S* ddelta_out, S* dz_out, S* dinit, S* dA_part, S* dB_part, S* dC_part, S* dD_part,
                                S* dbias_part) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= p.batch * p.dim) return;
  const Row<S> r(p, row / p.dim, row % p.dim);
  const int64_t N = p.dstate, L = p.seqlen, nseg = scan_segments(L);
  S* hs = states + row * kScanSegment * N;  // (kScanSegment, N): states after each step of a segment
  S carry[kMaxDstate], dA[kMaxDstate], dBc[kMaxDstate], dCc[kMaxDstate];
#pragma unroll
  for (int n = 0; n < kMaxDstate; ++n) {
    carry[n] = (n < N && dlast) ? dlast[row * N + n] : S(0);
    dA[n] = dBc[n] = dCc[n] = S(0);
  }
  S dD = 0, dbias = 0;
  const S Dd = p.Dv ? p.Dv[r.d] : S(0);
  for (int64_t s = nseg - 1; s >= 0; --s) {
    const int64_t t0 = s * kScanSegment, t1 = t0 + kScanSegment < L ? t0 + kScanSegment : L;
    const S* h0 = ck + (row * nseg + s) * N;  // the state before step t0
    // Recompute the segment's states.
    for (int64_t t = t0; t < t1; ++t) {
      const bool reset = r.reset(t);
      S* cur = hs + (t - t0) * N;
      if (r.padding(t)) {
        for (int64_t n = 0; n < N; ++n) cur[n] = S(0);
        continue;
      }
      const S dt = r.delta(t), du = dt * p.u[r.at(t)];
      const S* prev = t == t0 ? h0 : hs + (t - t0 - 1) * N;
      for (int64_t n = 0; n < N; ++n) {
        cur[n] = exp(dt * p.A[r.d * N + n]) * (reset ? S(0) : prev[n]) + du * r.B(n, t);
      }
    }
    // Adjoint recurrence, t descending. carry = dLoss/dh_t from later steps.
    for (int64_t t = t1 - 1; t >= t0; --t) {
      if (r.padding(t)) {  // the state there is constant 0: nothing flows back through it
        du_out[r.at(t)] = ddelta_out[r.at(t)] = S(0);
        if (p.z) dz_out[r.at(t)] = S(0);
#pragma unroll
        for (int n = 0; n < kMaxDstate; ++n) {
          if (n < N) {
            carry[n] = S(0);
            if (p.var_C) dC_part[(row * N + n) * L + t] = S(0);
            if (p.var_B) dB_part[(row * N + n) * L + t] = S(0);
          }
        }
        continue;
      }
      const bool reset = r.reset(t);
      const S raw = r.raw_delta(t), dt = p.softplus ? softplus(raw) : raw, u = p.u[r.at(t)];
      const S* cur = hs + (t - t0) * N;
      const S* prev = t == t0 ? h0 : hs + (t - t0 - 1) * N;
      S dy = dout[r.at(t)];
      if (p.z) {
        S y = Dd * u;
        for (int64_t n = 0; n < N; ++n) y += r.C(n, t) * cur[n];
        const S zt = p.z[r.at(t)], sg = sigmoid(zt);
        dz_out[r.at(t)] = dy * y * sg * (S(1) + zt * (S(1) - sg));
        dy = dy * zt * sg;
      }
      dD += dy * u;
      S du = dy * Dd, ddt = 0;
#pragma unroll
      for (int n = 0; n < kMaxDstate; ++n) {
        if (n < N) {
          const S bn = r.B(n, t), cn = r.C(n, t), a = p.A[r.d * N + n];
          const S G = carry[n] + dy * cn;  // dLoss/dh_t
          const S dCn = dy * cur[n], dBn = G * dt * u;
          if (p.var_C)
            dC_part[(row * N + n) * L + t] = dCn;
          else
            dCc[n] += dCn;
          if (p.var_B)
            dB_part[(row * N + n) * L + t] = dBn;
          else
            dBc[n] += dBn;
          du += G * dt * bn;
          ddt += G * u * bn;
          if (reset) {
            carry[n] = S(0);
          } else {
            const S e = exp(dt * a);
            const S ah = G * e * prev[n];
            ddt += ah * a;
            dA[n] += ah * dt;
            carry[n] = G * e;
          }
        }
      }
      if (p.softplus && raw <= S(20)) ddt *= sigmoid(raw);
      dbias += ddt;
      du_out[r.at(t)] = du;
      ddelta_out[r.at(t)] = ddt;
    }
  }
#pragma unroll
  for (int n = 0; n < kMaxDstate; ++n) {
    if (n < N) {
      if (dinit) dinit[row * N + n] = carry[n];
      dA_part[row * N + n] = dA[n];
      if (!p.var_B) dB_part[row * N + n] = dBc[n];
      if (!p.var_C) dC_part[row * N + n] = dCc[n];
    }
  }
  dD_part[row] = dD;
  dbias_part[row] = dbias;
}

inline unsigned blocks_for(int64_t rows) {
  return static_cast<unsigned>((rows + kThreads - 1) / kThreads);
}

}  // namespace

template <typename S>
cudaError_t scan_forward(const ScanParams<S>& p, S* out, S* last, S* checkpoints, cudaStream_t stream) {
  const int64_t rows = p.batch * p.dim;
  if (rows == 0) return cudaSuccess;
  forward_kernel<S><<<blocks_for(rows), kThreads, 0, stream>>>(p, out, last, checkpoints);
  return cudaGetLastError();
}

template <typename S>
cudaError_t scan_backward(const ScanParams<S>& p, const S* dout, const S* dlast, const S* checkpoints, S* states, S* du,
                          S* ddelta, S* dz, S* dinit, S* dA_part, S* dB_part, S* dC_part, S* dD_part, S* dbias_part,
                          cudaStream_t stream) {
  const int64_t rows = p.batch * p.dim;
  if (rows == 0) return cudaSuccess;
  backward_kernel<S><<<blocks_for(rows), kThreads, 0, stream>>>(p, dout, dlast, checkpoints, states, du, ddelta, dz,
                                                                dinit, dA_part, dB_part, dC_part, dD_part, dbias_part);
  return cudaGetLastError();
}

template cudaError_t scan_forward<float>(const ScanParams<float>&, float*, float*, float*, cudaStream_t);
template cudaError_t scan_forward<double>(const ScanParams<double>&, double*, double*, double*, cudaStream_t);
template cudaError_t scan_backward<float>(const ScanParams<float>&, const float*, const float*, const float*, float*,
                                          float*, float*, float*, float*, float*, float*, float*, float*, float*,
                                          cudaStream_t);
template cudaError_t scan_backward<double>(const ScanParams<double>&, const double*, const double*, const double*,
                                           double*, double*, double*, double*, double*, double*, double*, double*,
                                           double*, double*, cudaStream_t);

}  // namespace mft::cuda
