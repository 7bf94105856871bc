#pragma once
// Portable SIMD for the CPU kernels: GCC/Clang vector extensions of kLanes elements, which the compiler
// lowers to AVX-512, AVX2 or SSE depending on MFT_CPU_ARCH, plus the transcendental functions the scan
// needs (exp, log1p, softplus, silu, sigmoid) written branch-free so that they vectorise.
// float: Cephes-style exp polynomial (within 2 ulp), an atanh series for log1p;
// double: per-lane libm (the fp64 path exists for finite-difference checks, not for speed).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mft::simd {

// One register of fp32 lanes: 16 with AVX-512, else 8 (one AVX2 register). Channel blocks of the scan
// kernels have this width. (Vectors wider than the registers are a trap: GCC 12 turns their
// comparisons into scalar code, 15x slower.)
#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
#else
inline constexpr int kLanes = 8;
#endif

typedef float VF __attribute__((vector_size(kLanes * sizeof(float))));
typedef double VD __attribute__((vector_size(kLanes * sizeof(double))));
typedef int32_t VI __attribute__((vector_size(kLanes * sizeof(int32_t))));

template <typename S>
struct VecOf;
template <>
struct VecOf<float> {
  using type = VF;
};
template <>
struct VecOf<double> {
  using type = VD;
};
template <typename S>
using Vec = typename VecOf<S>::type;

// Broadcast. (Not `V{} + s`: without -ffast-math GCC cannot drop the + 0 (it would turn -0 into +0)
// and emits a scalar add plus a register broadcast on the shuffle port; a lane loop is built through
// the stack. The intrinsic is one broadcast load.)
template <typename V>
inline V splat(decltype(V{}[0]) s) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<V, VF>) return (VF)_mm512_set1_ps(s);
  if constexpr (std::is_same_v<V, VD>) {
    const __m512d h = _mm512_set1_pd(s);
    VD v;
    std::memcpy(&v, &h, sizeof h);
    std::memcpy(reinterpret_cast<char*>(&v) + sizeof h, &h, sizeof h);
    return v;
  }
#endif
  return V{} + s;
}

// Sum of the lanes in a fixed order (the same bits at any thread count). fp32 on AVX-512: a tree of
// halvings (4 shuffles and adds) instead of 15 dependent scalar adds read back from memory.
template <typename V>
inline auto hsum(V v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<V, VF>) {
    typedef float F8 __attribute__((vector_size(8 * sizeof(float))));
    typedef float F4 __attribute__((vector_size(4 * sizeof(float))));
    const F8 h8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const F4 h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
    return (h4[0] + h4[2]) + (h4[1] + h4[3]);
  }
#endif
  auto s = v[0];
  for (int k = 1; k < kLanes; ++k) s += v[k];
  return s;
}

inline VF bitcast_f(VI v) {
  VF r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}
inline VI bitcast_i(VF v) {
  VI r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}

// mask ? a : b per lane, with `mask` from a vector comparison, as bit operations.
inline VF select(VI mask, VF a, VF b) {
  return bitcast_f((mask & bitcast_i(a)) | (~mask & bitcast_i(b)));
}
// x limited to [lo, hi]; NaN stays NaN (both comparisons are false).
inline VF clamp(VF x, float lo, float hi) {
  const VF h = splat<VF>(hi), l = splat<VF>(lo);
  return select(x < l, l, select(x > h, h, x));
}

// log2(e): exp(x) = 2^(x log2 e).
template <typename S>
inline constexpr S kLog2e = S(1.4426950408889634073599246810019);

// exp(x) for fp32 lanes: range reduction x = n ln2 + r, |r| <= ln2/2 (ln2 split in two for an exact
// product), degree-6 polynomial (Cephes expf coefficients, within 2 ulp), times 2^n. Underflows to 0,
// overflows to +inf, NaN propagates.
inline VF exp_poly(VF r) {
  VF p = splat<VF>(1.9875691500E-4f);
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  return p * r * r + r + 1.0f;
}

#if defined(__AVX512F__)
static_assert(sizeof(VF) == sizeof(__m512), "one AVX-512 register per VF");
// AVX-512: round with vrndscaleps and multiply by 2^n with vscalefps, which gives +inf on overflow and
// 0 on underflow. The input is first clamped to [-104, 89] (exp(-104) rounds to 0, exp(89) overflows)
// so that +-inf and huge inputs reduce correctly; the constant goes first in max/min so NaN passes.
inline VF vexp(VF x) {
  const __m512 xv = _mm512_maskz_min_ps(0xFFFF, _mm512_set1_ps(89.0f),
                                        _mm512_maskz_max_ps(0xFFFF, _mm512_set1_ps(-104.0f), (__m512)x));
  const __m512 n = _mm512_maskz_roundscale_ps(0xFFFF, _mm512_mul_ps(xv, _mm512_set1_ps(kLog2e<float>)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xv);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  return (VF)_mm512_maskz_scalef_ps(0xFFFF, (__m512)exp_poly((VF)r), n);
}
#else
inline VF vexp(VF x) {
  const float hi = 88.72283905206835f, lo = -87.33654475055310f;
  const VF xc = clamp(x, lo, hi);
  const VF magic = splat<VF>(12582912.0f);  // 1.5 * 2^23: adding it rounds to nearest integer
  VF n = (xc * kLog2e<float> + magic) - magic;
  VF r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  VI ni = __builtin_convertvector(n, VI);
  VF res = exp_poly(r) * bitcast_f((ni + 127) << 23);
  res = select(x < lo, splat<VF>(0.0f), res);
  res = select(x > hi, splat<VF>(INFINITY), res);
  return select(x != x, x, res);  // NaN in, NaN out
}
#endif

// 2^y for fp32 lanes: n = round(y), f = y - n in [-1/2, 1/2] (exact), 2^f by a degree-6 polynomial
// fitted for least maximum relative error on [-1/2, 1/2] (2e-9 before rounding; below 1e-7 = 0.8 ulp
// with fp32 Horner steps, checked on 2e5 points: the degree-7 Taylor form it replaced measured 0.7 ulp
// for one more FMA per exp, and the scan computes one exp per state update), times 2^n. Cheaper than
// vexp (no split-ln2 reduction): the scan computes exp(delta A) as 2^(delta (A log2 e)) with A log2 e
// prepared once, whose rounding adds one u to the argument's own. Clamped to [-151, 129] so +-inf give
// 0 and inf.
inline VF exp2_poly(VF f) {
  VF p = splat<VF>(1.5345741023469516e-04f);
  p = p * f + 1.3399904195235920e-03f;
  p = p * f + 9.6184889706173810e-03f;
  p = p * f + 5.5503288457633470e-02f;
  p = p * f + 2.4022646893018504e-01f;
  p = p * f + 6.9314720570442280e-01f;
  return p * f + 1.0f;
}
#if defined(__AVX512F__)
inline VF vexp2(VF y) {
  const __m512 yc = _mm512_maskz_min_ps(0xFFFF, _mm512_set1_ps(129.0f),
                                        _mm512_maskz_max_ps(0xFFFF, _mm512_set1_ps(-151.0f), (__m512)y));
  const __m512 n = _mm512_maskz_roundscale_ps(0xFFFF, yc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const VF f = (VF)_mm512_sub_ps(yc, n);
  return (VF)_mm512_maskz_scalef_ps(0xFFFF, (__m512)exp2_poly(f), n);
}
#else
inline VF vexp2(VF y) {
  const VF yc = clamp(y, -151.0f, 129.0f);
  const VF magic = splat<VF>(12582912.0f);  // 1.5 * 2^23: adding it rounds to nearest integer
  const VF n = (yc + magic) - magic;
  // 2^n in two factors so that n = -151 .. 129 stays representable: 2^(n/2) * 2^(n - n/2).
  const VI ni = __builtin_convertvector(n, VI), h = ni >> 1;
  VF res = exp2_poly(yc - n) * bitcast_f((h + 127) << 23) * bitcast_f((ni - h + 127) << 23);
  return select(y != y, y, res);  // NaN in, NaN out
}
#endif

// 1 / d for finite normal d, or d = +inf -> 0 (sigmoid denominators). On AVX-512: rcp14 (14 bits) refined by one Newton
// step (about 28 bits, below fp32 rounding) on the FMA ports instead of vdivps, whose 512-bit form has a fraction of
// their throughput. NaN propagates.
inline VF vrecip(VF d) {
#if defined(__AVX512F__)
  VF r = (VF)_mm512_maskz_rcp14_ps(0xFFFF, (__m512)d);
  r = r * (2.0f - d * r);
  return select(d == INFINITY, splat<VF>(0.0f), r);
#else
  return 1.0f / d;
#endif
}

// log(1 + y) for y in [0, 1], accurate for tiny y: log1p(y) = 2 atanh(s) with s = y / (2 + y) in
// [0, 1/3], i.e. 2 s (1 + s^2/3 + s^4/5 + ... + s^14/15); the first omitted term is below 2e-9
// relative. About half the work of log() plus a division.
inline VF vlog1p_01(VF y) {
  const VF s = y * vrecip(2.0f + y);
  const VF w = s * s;
  VF p = splat<VF>(1.0f / 15.0f);
  p = p * w + (1.0f / 13.0f);
  p = p * w + (1.0f / 11.0f);
  p = p * w + (1.0f / 9.0f);
  p = p * w + (1.0f / 7.0f);
  p = p * w + (1.0f / 5.0f);
  p = p * w + (1.0f / 3.0f);
  p = p * w + 1.0f;
  return 2.0f * s * p;
}

// softplus(x) = log(1 + e^x), returning x above 20 like mamba-ssm and torch (threshold 20).
inline VF vsoftplus(VF x) {
  VF ax = select(x < 0.0f, -x, x);
  VF pos = select(x > 0.0f, x, splat<VF>(0.0f));
  VF r = pos + vlog1p_01(vexp(-ax));
  return select(x > 20.0f, x, r);
}
inline VF vsigmoid(VF x) {
  return vrecip(1.0f + vexp(-x));
}
inline VF vsilu(VF x) {
  return x * vsigmoid(x);
}

// fp64 lanes: libm per lane.
template <typename F>
inline VD per_lane(VD x, F f) {
  VD r;
  for (int k = 0; k < kLanes; ++k) r[k] = f(x[k]);
  return r;
}
inline VD vexp(VD x) {
  return per_lane(x, [](double v) { return std::exp(v); });
}
inline VD vexp2(VD y) {
  return per_lane(y, [](double v) { return std::exp2(v); });
}
inline VD vsoftplus(VD x) {
  return per_lane(x, [](double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); });
}
inline VD vsigmoid(VD x) {
  return per_lane(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
}
inline VD vsilu(VD x) {
  return x * vsigmoid(x);
}

// Σ a[i] b[i] and Σ v[i] over arrays, in kLanes partial sums added at the end: a fixed order (the same
// bits at any thread count), and no chain of dependent scalar adds (which GCC must keep without
// -ffast-math). S is float or double.
template <typename S>
inline S dot(const S* a, const S* b, int64_t n) {
  using V = Vec<S>;
  V acc{};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    V av, bv;
    std::memcpy(&av, a + i, sizeof av);
    std::memcpy(&bv, b + i, sizeof bv);
    acc += av * bv;
  }
  S s = hsum(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
template <typename S>
inline S sum(const S* v, int64_t n) {
  using V = Vec<S>;
  V acc{};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    V x;
    std::memcpy(&x, v + i, sizeof x);
    acc += x;
  }
  S s = hsum(acc);
  for (; i < n; ++i) s += v[i];
  return s;
}

// In-place silu / sigmoid' helpers over arrays (vectorised for fp32, libm for fp64).
template <typename S, typename VFn, typename SFn>
inline void map_inplace(S* v, int64_t n, VFn vf, SFn sf) {
  int64_t i = 0;
  if constexpr (std::is_same_v<S, float>) {
    for (; i + kLanes <= n; i += kLanes) {
      VF x;
      std::memcpy(&x, v + i, sizeof x);
      x = vf(x);
      std::memcpy(v + i, &x, sizeof x);
    }
  }
  for (; i < n; ++i) v[i] = sf(v[i]);
}
template <typename S>
inline void silu_inplace(S* v, int64_t n) {
  map_inplace(
      v, n, [](VF x) { return vsilu(x); }, [](S x) { return x / (S(1) + std::exp(-x)); });
}

}  // namespace mft::simd
