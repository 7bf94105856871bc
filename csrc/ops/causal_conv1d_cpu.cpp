// Optimised CPU kernels of mft::causal_conv1d. One task per (batch, channel) row: the row is converted
// once into a buffer preceded by its initial states, xp = [init | x]; outputs are computed kLanes at a
// time in one pass (W unaligned loads and FMAs, then silu), instead of one pass over the row per tap.
// The backward makes two passes: g = dout * silu'(a) with the weight and bias gradients as lane sums,
// then dx[i] = sum_k w_k g[i + W - 1 - k] from the zero-padded g. With seq_idx, taps that cross a
// document boundary are replaced by 0 (per-call masks), and padding positions (seq_idx < 0) output 0 and
// pass no gradient back. Weight/bias gradients are summed per batch
// row and reduced over the batch at the end (fixed order: deterministic at any thread count, no atomics).
#include "core/check.h"
#include "core/output.h"
#include "core/simd.h"
#include "ops/causal_conv1d.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace mft {
namespace {

// Reads n elements of any floating tensor's data (contiguous) at element offset `at` into dst.
template <typename S>
void load(const at::Tensor& t, int64_t at_offset, int64_t n, S* dst) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "mft_conv_load", [&] {
    const scalar_t* p = t.const_data_ptr<scalar_t>() + at_offset;
    if constexpr (std::is_same_v<scalar_t, S>) {
      std::memcpy(dst, p, n * sizeof(S));
    } else {
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<S>(p[i]);
    }
  });
}
template <typename S>
void store(const S* src, int64_t n, at::Tensor& t, int64_t at_offset) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "mft_conv_store", [&] {
    scalar_t* p = t.mutable_data_ptr<scalar_t>() + at_offset;
    if constexpr (std::is_same_v<scalar_t, S>) {
      std::memcpy(p, src, n * sizeof(S));
    } else {
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(src[i]);
    }
  });
}

template <typename V, typename S>
inline V loadu(const S* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V, typename S>
inline void storeu(S* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// v where the tap mask m is 1, else 0 (a select, not v * m: an inf or NaN in another document must not
// leak into this one as 0 * inf).
template <typename V>
inline V keep(V v, V m) {
  return m != 0 ? v : V{};
}

template <typename S>
inline S sigmoid(S v) {
  return S(1) / (S(1) + std::exp(-v));
}
// d silu(a) / da = s (1 + a (1 - s)), s = sigmoid(a).
template <typename V>
inline V silu_derivative(V a) {
  const V s = simd::vsigmoid(a);
  return s * (1 + a * (1 - s));
}
template <typename S>
inline S silu_derivative_scalar(S a) {
  const S s = sigmoid(a);
  return s * (S(1) + a * (S(1) - s));
}

// The masks of every batch row, (B, W + 1, L + W - 1) in the compute dtype. Rows 0..W-1, the taps: 1 when
// tap k of output t reads t's own document (taps into the initial states count as the first document's),
// 0 otherwise, for every tap of a padding output, and in the W - 1 slots after L (the backward reads g
// there). Row W: 1 where t is not
// padding (seq_idx >= 0). They depend on seq_idx only, so they are built once per call.
template <typename S>
std::vector<S> tap_masks(const ConvGeometry& g, const at::Tensor& seq) {
  const int64_t pad = g.width - 1, stride = g.seqlen + pad;
  std::vector<S> same(g.batch * (g.width + 1) * stride, S(0));
  for (int64_t b = 0; b < g.batch; ++b) {
    const int32_t* s = seq.const_data_ptr<int32_t>() + b * g.seqlen;
    for (int64_t k = 0; k < g.width; ++k) {
      const int64_t shift = pad - k;
      S* m = same.data() + (b * (g.width + 1) + k) * stride;
      for (int64_t t = 0; t < g.seqlen; ++t) {
        m[t] = s[t] >= 0 && s[t - shift >= 0 ? t - shift : 0] == s[t] ? S(1) : S(0);  // padding outputs read nothing
      }
    }
    S* live = same.data() + (b * (g.width + 1) + g.width) * stride;
    for (int64_t t = 0; t < g.seqlen; ++t) live[t] = s[t] >= 0 ? S(1) : S(0);
  }
  return same;
}

struct ConvOperands {
  ConvGeometry g;
  at::Tensor x, weight, bias, init, seq;
  ConvOperands(const at::Tensor& x_, const at::Tensor& w_, const OptTensor& b_, const OptTensor& i_,
               const OptTensor& s_, const ConvGeometry& geo)
      : g(geo), x(x_.contiguous()), weight(w_.contiguous()) {
    if (b_) bias = b_->contiguous();
    if (i_) init = i_->contiguous();
    if (s_) seq = s_->contiguous();
  }
};

// One row's operands: xp = [initial states | x row] (W - 1 + L), weights, bias, and (with seq_idx) the
// row's tap masks (W rows of L + W - 1).
template <typename S>
struct ConvRow {
  using V = simd::Vec<S>;
  const ConvGeometry& g;
  const int64_t pad, mstride;
  std::vector<S> xp, w;
  std::vector<V> wv;
  const S* same = nullptr;
  S bias = 0;
  explicit ConvRow(const ConvGeometry& geo)
      : g(geo),
        pad(geo.width - 1),
        mstride(geo.seqlen + geo.width - 1),
        xp(pad + geo.seqlen),
        w(geo.width),
        wv(geo.width) {}

  void load_row(const ConvOperands& op, const std::vector<S>& masks, int64_t bi, int64_t d) {
    const int64_t row = bi * g.dim + d;
    if (op.init.defined())
      load<S>(op.init, row * pad, pad, xp.data());
    else
      std::fill(xp.begin(), xp.begin() + pad, S(0));
    load<S>(op.x, row * g.seqlen, g.seqlen, xp.data() + pad);
    load<S>(op.weight, d * g.width, g.width, w.data());
    for (int64_t k = 0; k < g.width; ++k) wv[k] = simd::splat<V>(w[k]);
    bias = S(0);
    if (op.bias.defined()) load<S>(op.bias, d, 1, &bias);
    same = op.seq.defined() ? masks.data() + bi * (g.width + 1) * mstride : nullptr;
  }
  const S* mask(int64_t k) const { return same + k * mstride; }
  const S* live() const { return same + g.width * mstride; }  // 0 at padding positions
  // Padding positions of a row of L values set to 0 (a select: whatever was computed there is dropped).
  void zero_padding(S* row) const {
    const S* l = live();
    for (int64_t t = 0; t < g.seqlen; ++t) row[t] = l[t] != S(0) ? row[t] : S(0);
  }
  // Pre-activation of outputs t .. t + kL - 1: bias + sum_k w_k xp[t + k] (masked taps give 0).
  template <bool kMasked>
  V pre(int64_t t) const {
    V a = simd::splat<V>(bias);
    for (int64_t k = 0; k < g.width; ++k) {
      const V xv = loadu<V>(xp.data() + t + k);
      a += wv[k] * (kMasked ? keep(xv, loadu<V>(mask(k) + t)) : xv);
    }
    return a;
  }
  S pre_scalar(int64_t t) const {
    S a = bias;
    for (int64_t k = 0; k < g.width; ++k) a += (same && mask(k)[t] == S(0)) ? S(0) : w[k] * xp[t + k];
    return a;
  }
};

template <typename S, bool kMasked>
void forward_row(const ConvRow<S>& r, bool silu, S* out) {
  using V = simd::Vec<S>;
  constexpr int64_t kL = simd::kLanes;
  const int64_t L = r.g.seqlen;
  int64_t t = 0;
  for (; t + kL <= L; t += kL) {
    const V a = r.template pre<kMasked>(t);
    storeu(out + t, silu ? simd::vsilu(a) : a);
  }
  for (; t < L; ++t) {
    const S a = r.pre_scalar(t);
    out[t] = silu ? a / (S(1) + std::exp(-a)) : a;
  }
}

template <typename S>
at::Tensor forward_impl(const ConvOperands& op, bool silu) {
  const ConvGeometry& g = op.g;
  at::Tensor out = new_output_like(op.x);
  const std::vector<S> masks = op.seq.defined() ? tap_masks<S>(g, op.seq) : std::vector<S>();
  // Rows are written in place when the output has the compute dtype, else through a buffer.
  const bool direct = out.scalar_type() == c10::CppTypeToScalarType<S>::value;
  at::parallel_for(0, g.batch * g.dim, 1, [&](int64_t begin, int64_t end) {
    ConvRow<S> r(g);
    std::vector<S> acc(direct ? 0 : g.seqlen);
    for (int64_t row = begin; row < end; ++row) {
      r.load_row(op, masks, row / g.dim, row % g.dim);
      S* y = direct ? out.mutable_data_ptr<S>() + row * g.seqlen : acc.data();
      if (r.same) {
        forward_row<S, true>(r, silu, y);
        r.zero_padding(y);
      } else {
        forward_row<S, false>(r, silu, y);
      }
      if (!direct) store<S>(acc.data(), g.seqlen, out, row * g.seqlen);
    }
  });
  return out;
}

// Backward of one row. gb: (L + W - 1) with dout loaded in its first L slots; returns with g there
// (zeros after L). dxp: (W - 1 + L) gradient of xp. dw: W weight gradients; dwv: W lane vectors of
// scratch. Returns the bias gradient.
template <typename S, bool kMasked>
S backward_row(const ConvRow<S>& r, bool silu, S* gb, S* dxp, S* dw, simd::Vec<S>* dwv) {
  using V = simd::Vec<S>;
  constexpr int64_t kL = simd::kLanes;
  const int64_t L = r.g.seqlen, W = r.g.width, pad = r.pad;
  // Pass 1: g = dout * silu'(a); dw_k = sum_t g_t m_k[t] xp[t + k]; db = sum_t g_t. Lane sums, then
  // the tail in scalars (a fixed order).
  std::fill(dwv, dwv + W, V{});
  V dbv{};
  int64_t t = 0;
  for (; t + kL <= L; t += kL) {
    V gv = loadu<V>(gb + t);
    if (silu) gv *= silu_derivative(r.template pre<kMasked>(t));
    storeu(gb + t, gv);
    dbv += gv;
    for (int64_t k = 0; k < W; ++k) {
      const V gk = kMasked ? keep(gv, loadu<V>(r.mask(k) + t)) : gv;
      dwv[k] += gk * loadu<V>(r.xp.data() + t + k);
    }
  }
  S db = simd::hsum(dbv);
  for (int64_t k = 0; k < W; ++k) dw[k] = simd::hsum(dwv[k]);
  for (; t < L; ++t) {
    if (silu) gb[t] *= silu_derivative_scalar(r.pre_scalar(t));
    db += gb[t];
    for (int64_t k = 0; k < W; ++k) {
      if (!kMasked || r.mask(k)[t] != S(0)) dw[k] += gb[t] * r.xp[t + k];
    }
  }
  std::fill(gb + L, gb + L + pad, S(0));
  // Pass 2: dxp[j] = sum_k w_k g[j - k] m_k[j - k] over 0 <= j - k < L (g and the masks are 0 past L).
  auto dx_at = [&](int64_t j) {  // scalar, any j
    S v = 0;
    for (int64_t k = 0; k < W; ++k) {
      const int64_t i = j - k;
      if (i >= 0 && i < L && (!kMasked || r.mask(k)[i] != S(0))) v += r.w[k] * gb[i];
    }
    return v;
  };
  for (int64_t j = 0; j < pad; ++j) dxp[j] = dx_at(j);
  int64_t j = pad;
  for (; j + kL <= pad + L; j += kL) {
    V v{};
    for (int64_t k = 0; k < W; ++k) {
      const V gk = loadu<V>(gb + j - k);
      v += r.wv[k] * (kMasked ? keep(gk, loadu<V>(r.mask(k) + j - k)) : gk);
    }
    storeu(dxp + j, v);
  }
  for (; j < pad + L; ++j) dxp[j] = dx_at(j);
  return db;
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
  const std::vector<S> masks = op.seq.defined() ? tap_masks<S>(g, op.seq) : std::vector<S>();
  at::parallel_for(0, g.batch * g.dim, 1, [&](int64_t begin, int64_t end) {
    ConvRow<S> r(g);
    std::vector<S> gb(g.seqlen + pad), dxp(pad + g.seqlen);
    std::vector<simd::Vec<S>> dwv(g.width);
    for (int64_t row = begin; row < end; ++row) {
      r.load_row(op, masks, row / g.dim, row % g.dim);
      load<S>(dout, row * g.seqlen, g.seqlen, gb.data());
      if (r.same) r.zero_padding(gb.data());  // outputs at padding are constant 0: no gradient from them
      S* dw = dw_part.mutable_data_ptr<S>() + row * g.width;
      const S db = r.same ? backward_row<S, true>(r, silu, gb.data(), dxp.data(), dw, dwv.data())
                          : backward_row<S, false>(r, silu, gb.data(), dxp.data(), dw, dwv.data());
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
