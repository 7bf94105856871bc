// Optimised CPU kernels of mft::causal_conv1d. One task per (batch, channel) row: the row is converted
// once into an fp32 buffer preceded by its initial states, then each of the W taps is one vectorised
// pass over time (acc[t] += w[k] * xp[t + k]). Weight/bias gradients are summed per batch row and
// reduced over the batch at the end (deterministic, no atomics).
#include "core/check.h"
#include "core/output.h"
#include "core/simd.h"
#include "ops/causal_conv1d.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace mft {
namespace {

// Reads n elements of any floating tensor's data (contiguous) at element offset `at` into dst.
template <typename S>
void load(const at::Tensor& t, int64_t at_offset, int64_t n, S* dst) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "mft_conv_load", [&] {
    const scalar_t* p = t.const_data_ptr<scalar_t>() + at_offset;
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<S>(p[i]);
  });
}
template <typename S>
void store(const S* src, int64_t n, at::Tensor& t, int64_t at_offset) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "mft_conv_store", [&] {
    scalar_t* p = t.mutable_data_ptr<scalar_t>() + at_offset;
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(src[i]);
  });
}

// dst[t] += w · g[t] for t < n, and returns Σ g[t] · src[t]. The sum runs in kLanes partial sums (a
// fixed order, so still deterministic): a single running sum is a chain of dependent scalar adds, which
// made this loop 10 % of a scan + conv benchmark.
template <typename S>
S axpy_dot(S w, const S* __restrict g, const S* __restrict src, S* __restrict dst, int64_t n) {
  using V = simd::Vec<S>;
  constexpr int64_t kL = simd::kLanes;
  const V wv = simd::splat<V>(w);
  V acc{};
  int64_t t = 0;
  for (; t + kL <= n; t += kL) {
    V gv, sv, dv;
    std::memcpy(&gv, g + t, sizeof gv);
    std::memcpy(&sv, src + t, sizeof sv);
    std::memcpy(&dv, dst + t, sizeof dv);
    dv += wv * gv;
    acc += gv * sv;
    std::memcpy(dst + t, &dv, sizeof dv);
  }
  S sum = simd::hsum(acc);
  for (; t < n; ++t) {
    dst[t] += w * g[t];
    sum += g[t] * src[t];
  }
  return sum;
}

template <typename S>
inline S sigmoid(S v) {
  return S(1) / (S(1) + std::exp(-v));
}

// The tap masks of every batch row (B, W, L): 1 when tap k of output t reads the same document. They
// depend on the row's seq_idx only, so they are built once per call, not once per channel.
std::vector<uint8_t> tap_masks(const ConvGeometry& g, const at::Tensor& seq) {
  std::vector<uint8_t> same(g.batch * g.width * g.seqlen);
  const int64_t pad = g.width - 1;
  for (int64_t b = 0; b < g.batch; ++b) {
    const int32_t* s = seq.const_data_ptr<int32_t>() + b * g.seqlen;
    for (int64_t k = 0; k < g.width; ++k) {
      const int64_t shift = pad - k;
      uint8_t* m = same.data() + (b * g.width + k) * g.seqlen;
      for (int64_t t = 0; t < g.seqlen; ++t) m[t] = s[t - shift >= 0 ? t - shift : 0] == s[t];
    }
  }
  return same;
}

// One row's operands: xp = [initial states | x row] (W - 1 + L), weights, bias, and (with seq_idx) the
// row's tap masks (W, L).
template <typename S>
struct ConvRow {
  std::vector<S> xp, w, acc;
  const uint8_t* same = nullptr;
  S bias = 0;
  ConvRow(const ConvGeometry& g) : xp(g.width - 1 + g.seqlen), w(g.width), acc(g.seqlen) {}

  void load_row(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& b,
                const at::Tensor& init, const uint8_t* masks, int64_t bi, int64_t d) {
    const int64_t pad = g.width - 1, row = bi * g.dim + d;
    if (init.defined())
      load<S>(init, row * pad, pad, xp.data());
    else
      std::fill(xp.begin(), xp.begin() + pad, S(0));
    load<S>(x, row * g.seqlen, g.seqlen, xp.data() + pad);
    load<S>(weight, d * g.width, g.width, w.data());
    bias = S(0);
    if (b.defined()) load<S>(b, d, 1, &bias);
    same = masks ? masks + bi * g.width * g.seqlen : nullptr;
  }
  // acc[t] = bias + sum_k w[k] xp[t + k] (pre-activation).
  void pre_activation(const ConvGeometry& g, bool masked) {
    S* __restrict a = acc.data();
    const int64_t L = g.seqlen;
    for (int64_t t = 0; t < L; ++t) a[t] = bias;
    for (int64_t k = 0; k < g.width; ++k) {
      const S wk = w[k];
      const S* __restrict src = xp.data() + k;
      if (masked) {
        const uint8_t* __restrict m = same + k * L;
        for (int64_t t = 0; t < L; ++t) a[t] += m[t] ? wk * src[t] : S(0);
      } else {
        for (int64_t t = 0; t < L; ++t) a[t] += wk * src[t];
      }
    }
  }
};

struct ConvOperands {
  ConvGeometry g;
  at::Tensor x, weight, bias, init, seq;
  std::vector<uint8_t> masks;  // tap_masks, with seq_idx
  ConvOperands(const at::Tensor& x_, const at::Tensor& w_, const OptTensor& b_, const OptTensor& i_,
               const OptTensor& s_, const ConvGeometry& geo)
      : g(geo), x(x_.contiguous()), weight(w_.contiguous()) {
    if (b_) bias = b_->contiguous();
    if (i_) init = i_->contiguous();
    if (s_) {
      seq = s_->contiguous();
      masks = tap_masks(g, seq);
    }
  }
  const uint8_t* mask_data() const { return seq.defined() ? masks.data() : nullptr; }
};

template <typename S>
at::Tensor forward_impl(const ConvOperands& op, bool silu) {
  const ConvGeometry& g = op.g;
  at::Tensor out = new_output_like(op.x);
  at::parallel_for(0, g.batch * g.dim, 1, [&](int64_t begin, int64_t end) {
    ConvRow<S> r(g);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / g.dim, d = row % g.dim;
      r.load_row(g, op.x, op.weight, op.bias, op.init, op.mask_data(), b, d);
      r.pre_activation(g, r.same != nullptr);
      if (silu) simd::silu_inplace(r.acc.data(), g.seqlen);
      store<S>(r.acc.data(), g.seqlen, out, row * g.seqlen);
    }
  });
  return out;
}

template <typename S>
ConvGrads backward_impl(const ConvOperands& op, const at::Tensor& dout_in, bool silu) {
  const ConvGeometry& g = op.g;
  constexpr auto cd = c10::CppTypeToScalarType<S>::value;
  const at::Tensor dout = dout_in.contiguous();
  const int64_t pad = g.width - 1;
  at::Tensor dx = new_output_like(op.x);
  at::Tensor dinit = op.init.defined() ? new_output_like(op.init) : at::Tensor();
  at::Tensor dw_part = at::empty({g.batch, g.dim, g.width}, op.x.options().dtype(cd));
  at::Tensor db_part = at::empty({g.batch, g.dim}, op.x.options().dtype(cd));
  at::parallel_for(0, g.batch * g.dim, 1, [&](int64_t begin, int64_t end) {
    ConvRow<S> r(g);
    std::vector<S> gr(g.seqlen), gm(g.seqlen), dxp(pad + g.seqlen);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / g.dim, d = row % g.dim;
      r.load_row(g, op.x, op.weight, op.bias, op.init, op.mask_data(), b, d);
      const bool masked = r.same != nullptr;
      load<S>(dout, row * g.seqlen, g.seqlen, gr.data());
      if (silu) {  // d silu(a)/da = s (1 + a (1 - s))
        r.pre_activation(g, masked);
        simd::map_inplace(
            r.acc.data(), g.seqlen,
            [](simd::VF a) {
              const simd::VF s = simd::vsigmoid(a);
              return s * (1.0f + a * (1.0f - s));
            },
            [](S a) {
              const S s = sigmoid(a);
              return s * (S(1) + a * (S(1) - s));
            });
        for (int64_t t = 0; t < g.seqlen; ++t) gr[t] *= r.acc[t];
      }
      std::fill(dxp.begin(), dxp.end(), S(0));
      S* dw = dw_part.mutable_data_ptr<S>() + row * g.width;
      const S db = simd::sum(gr.data(), g.seqlen);
      for (int64_t k = 0; k < g.width; ++k) {
        const S* g_k = gr.data();
        if (masked) {  // tap k's gradient with the taps that cross a document boundary zeroed
          const uint8_t* __restrict m = r.same + k * g.seqlen;
          for (int64_t t = 0; t < g.seqlen; ++t) gm[t] = m[t] ? gr[t] : S(0);
          g_k = gm.data();
        }
        dw[k] = axpy_dot(r.w[k], g_k, r.xp.data() + k, dxp.data() + k, g.seqlen);
      }
      db_part.mutable_data_ptr<S>()[row] = db;
      store<S>(dxp.data() + pad, g.seqlen, dx, row * g.seqlen);
      if (dinit.defined()) store<S>(dxp.data(), pad, dinit, row * pad);
    }
  });
  at::Tensor dweight = dw_part.sum(0).to(op.weight.scalar_type());
  at::Tensor dbias = op.bias.defined() ? db_part.sum(0).to(op.bias.scalar_type()) : at::Tensor();
  return {dx, dweight, dbias, dinit};
}
}  // namespace

at::Tensor causal_conv1d_cpu(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                             const OptTensor& initial_states, bool silu, const OptTensor& seq_idx) {
  const ConvGeometry g = check_causal_conv1d_args(x, weight, bias, initial_states, seq_idx);
  const ConvOperands op(x, weight, bias, initial_states, seq_idx, g);
  return compute_dtype(x) == at::kDouble ? forward_impl<double>(op, silu) : forward_impl<float>(op, silu);
}

ConvGrads causal_conv1d_backward_cpu(const at::Tensor& dout, const at::Tensor& x, const at::Tensor& weight,
                                     const OptTensor& bias, const OptTensor& initial_states, bool silu,
                                     const OptTensor& seq_idx) {
  const ConvGeometry g = check_causal_conv1d_args(x, weight, bias, initial_states, seq_idx);
  check_sizes(dout, x.sizes(), "causal_conv1d_backward", "dout", "(batch, dim, seqlen) like x");
  check_floating(dout, "causal_conv1d_backward", "dout");
  check_device(dout, x, "causal_conv1d_backward", "dout");
  const ConvOperands op(x, weight, bias, initial_states, seq_idx, g);
  return compute_dtype(x) == at::kDouble ? backward_impl<double>(op, dout, silu) : backward_impl<float>(op, dout, silu);
}

}  // namespace mft
