// CPU kernels of ops/thin_gemm.h. One product kernel f (r, K) · x (K, L) with two loop orders by x's
// layout: blocks of 2 lane vectors of columns with up to 8 rows of sums in registers over k (block_sums),
// or up to 8 dot products along the contiguous k (row_dots); p xᵀ is that product on x's transposed view.
// y's update combines the rank's rows lane vector by lane vector (add_combination). Activations are
// converted to fp32 lane vector by lane vector.
#include "ops/thin_gemm.h"

#include "core/check.h"
#include "core/simd.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace mft::thin {
namespace {
bool unit(const at::Tensor& t, int d) {
  return t.size(d) == 1 || t.stride(d) == 1;
}

using simd::kLanes;
using simd::VF;
typedef uint16_t VU16 __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t VU32 __attribute__((vector_size(kLanes * sizeof(uint32_t))));

// kLanes values of T at p (contiguous) as fp32 lanes.
template <typename T>
inline VF load_lanes(const T* p) {
  VF f;
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(&f, p, sizeof f);
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {  // bf16 = the high half of an fp32
    VU16 h;
    std::memcpy(&h, p, sizeof h);
    const VU32 w = __builtin_convertvector(h, VU32) << 16;
    std::memcpy(&f, &w, sizeof f);
  } else {
    for (int k = 0; k < kLanes; ++k) f[k] = static_cast<float>(p[k]);
  }
  return f;
}

// Stores fp32 lanes to p as T, rounded to nearest even (NaN stays NaN), as c10's conversions do.
template <typename T>
inline void store_lanes(VF f, T* p) {
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(p, &f, sizeof f);
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    VU32 bits;
    std::memcpy(&bits, &f, sizeof bits);
    VU32 r = (bits + (((bits >> 16) & 1u) + 0x7FFFu)) >> 16;
    r = f != f ? VU32{} + 0x7FC0u : r;
    const VU16 h = __builtin_convertvector(r, VU16);
    std::memcpy(p, &h, sizeof h);
  } else {
    for (int k = 0; k < kLanes; ++k) p[k] = static_cast<T>(f[k]);
  }
}

// dst[i] = float(src[i]), i < n (src contiguous).
template <typename T>
void to_f32(const T* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const VF f = load_lanes(src + i);
    std::memcpy(dst + i, &f, sizeof f);
  }
  for (; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

// Calls f(std::integral_constant<int, R>) for R = min(8, r): the kernels keep R rows of sums in
// registers; ranks above 8 run in groups of 8.
constexpr int kGroup = 8;
template <typename F>
void with_rank(int64_t r, F&& f) {
  switch (r) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    case 6:
      return f(std::integral_constant<int, 6>{});
    case 7:
      return f(std::integral_constant<int, 7>{});
    default:
      return f(std::integral_constant<int, 8>{});
  }
}

// Shape A. out[j, c0 + c] = Σ_i f[j * fs + i] · X[i * xs + c0 + c] for j < R, c < n <= 2 kLanes, i < I:
// 2R lane sums in registers over the long axis i; X's block read once (a tail block through a zero-padded
// buffer). out row j at out + j * os.
template <int R, typename T>
void block_sums(const float* f, int64_t fs, int64_t I, const T* X, int64_t xs, int64_t c0, int64_t n, float* out,
                int64_t os) {
  VF a0[R], a1[R];
  for (int j = 0; j < R; ++j) a0[j] = a1[j] = VF{};
  alignas(64) float pad[2 * kLanes];
  const bool full = n == 2 * kLanes;
  for (int64_t i = 0; i < I; ++i) {
    const T* xi = X + i * xs + c0;
    VF x0, x1;
    if (full) {
      x0 = load_lanes(xi);
      x1 = load_lanes(xi + kLanes);
    } else {
      std::fill(pad, pad + 2 * kLanes, 0.0f);
      to_f32(xi, n, pad);
      std::memcpy(&x0, pad, sizeof x0);
      std::memcpy(&x1, pad + kLanes, sizeof x1);
    }
    for (int j = 0; j < R; ++j) {
      const VF c = simd::splat<VF>(f[j * fs + i]);
      a0[j] += c * x0;
      a1[j] += c * x1;
    }
  }
  for (int j = 0; j < R; ++j) {
    std::memcpy(pad, &a0[j], sizeof a0[j]);
    std::memcpy(pad + kLanes, &a1[j], sizeof a1[j]);
    std::memcpy(out + j * os + c0, pad, n * sizeof(float));
  }
}

// Shape B. out[j * os] = Σ_i f[j * fs + i] · x[i] for j < R, i < n (x contiguous): R lane sums, then one
// horizontal sum each.
template <int R, typename T>
void row_dots(const float* f, int64_t fs, const T* x, int64_t n, float* out, int64_t os) {
  VF a[R];
  for (int j = 0; j < R; ++j) a[j] = VF{};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const VF xv = load_lanes(x + i);
    for (int j = 0; j < R; ++j) {
      VF fv;
      std::memcpy(&fv, f + j * fs + i, sizeof fv);
      a[j] += fv * xv;
    }
  }
  for (int j = 0; j < R; ++j) {
    float t = simd::hsum(a[j]);
    for (int64_t k = i; k < n; ++k) t += f[j * fs + k] * static_cast<float>(x[k]);
    out[j * os] = t;
  }
}

// Shape C. y[c] = T(float(y[c]) + s · Σ_j coef[j * cs] · rows[j * rs + c]) for c < n (y contiguous).
template <typename T>
void add_combination(const float* coef, int64_t cs, int64_t r, const float* rows, int64_t rs, float s, int64_t n,
                     T* y) {
  const VF sv = simd::splat<VF>(s);
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    VF a{};
    for (int64_t j = 0; j < r; ++j) {
      VF rv;
      std::memcpy(&rv, rows + j * rs + c, sizeof rv);
      a += simd::splat<VF>(coef[j * cs]) * rv;
    }
    store_lanes(load_lanes(y + c) + sv * a, y + c);
  }
  for (; c < n; ++c) {
    float a = 0;
    for (int64_t j = 0; j < r; ++j) a += coef[j * cs] * rows[j * rs + c];
    y[c] = static_cast<T>(static_cast<float>(y[c]) + s * a);
  }
}

// Runs the lambda with scalar_t = the activations' dtype (fp32, bf16 or fp16).
#define MFT_THIN_DISPATCH(type, ...)                                                                        \
  AT_DISPATCH_SWITCH(type, "thin_gemm",                                                                     \
                     AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__) AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__) \
                         AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__))

// A small fp32 factor as a contiguous (rows, cols) matrix.
at::Tensor factor(const at::Tensor& f, int64_t rows, int64_t cols, const char* name) {
  TORCH_CHECK(f.dim() == 2 && f.size(0) == rows && f.size(1) == cols && f.scalar_type() == at::kFloat,
              "thin_gemm: ", name, " must be fp32 (", rows, ", ", cols, "); got ", f.scalar_type(), " ",
              shape_str(f.sizes()));
  return f.contiguous();
}

}  // namespace

bool supported(const at::Tensor& x) {
  const at::ScalarType t = x.scalar_type();
  return x.device().is_cpu() && x.dim() == 2 && (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf) &&
         (unit(x, 0) || unit(x, 1));
}

namespace {
void check_x(const at::Tensor& x, const char* name) {
  TORCH_CHECK(supported(x), "thin_gemm: ", name, " must be a CPU fp32/bf16/fp16 matrix with a unit stride; got ",
              x.scalar_type(), " ", shape_str(x.sizes()), " strides ", shape_str(x.strides()));
}
}  // namespace

// Column blocks of the shape-A loops: two lane vectors.
constexpr int64_t kBlock = 2 * kLanes;

namespace {
// out (r, L) = f (r, K) · x (K, L); `name` is f's name in errors. Blocks of columns with sums over k
// when x's rows are contiguous, else r dot products per column.
at::Tensor product(const at::Tensor& f, const at::Tensor& x, const char* name) {
  check_x(x, "x");
  const int64_t K = x.size(0), L = x.size(1), r = f.size(0);
  const at::Tensor wc = factor(f, r, K, name);
  at::Tensor out = at::empty({r, L}, x.options().dtype(at::kFloat));
  const float* W = wc.const_data_ptr<float>();
  float* U = out.mutable_data_ptr<float>();
  const int64_t s0 = x.stride(0), s1 = x.stride(1);
  MFT_THIN_DISPATCH(x.scalar_type(), [&] {
    using T = scalar_t;
    const T* X = x.const_data_ptr<T>();
    if (s1 == 1 || L == 1) {  // rows along L: blocks of columns, sums over k
      at::parallel_for(0, (L + kBlock - 1) / kBlock, 4, [&](int64_t b0, int64_t b1) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t l0 = blk * kBlock, n = std::min(kBlock, L - l0);
          for (int64_t j0 = 0; j0 < r; j0 += kGroup) {
            with_rank(r - j0, [&](auto R) { block_sums<R()>(W + j0 * K, K, K, X, s0, l0, n, U + j0 * L, L); });
          }
        }
      });
    } else {  // columns along K: r dot products per column
      at::parallel_for(0, L, 16, [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l) {
          for (int64_t j0 = 0; j0 < r; j0 += kGroup) {
            with_rank(r - j0, [&](auto R) { row_dots<R()>(W + j0 * K, K, X + l * s1, K, U + j0 * L + l, L); });
          }
        }
      });
    }
  });
  return out;
}
}  // namespace

at::Tensor w_x(const at::Tensor& w, const at::Tensor& x) {
  return product(w, x, "w");
}

// p xᵀ is the same product with x's axes swapped (a view): its loop order follows x's layout.
at::Tensor p_xt(const at::Tensor& p, const at::Tensor& x) {
  check_x(x, "x");
  return product(p, x.t(), "p");
}

void add_b_u_(const at::Tensor& y, const at::Tensor& bm, const at::Tensor& u, double s) {
  check_x(y, "y");
  const int64_t M = y.size(0), L = y.size(1), r = bm.size(1);
  const at::Tensor bc = factor(bm, M, r, "bm"), uc = factor(u, r, L, "u");
  const float* U = uc.const_data_ptr<float>();
  const float* Bm = bc.const_data_ptr<float>();
  const int64_t s0 = y.stride(0), s1 = y.stride(1);
  const float sf = static_cast<float>(s);
  MFT_THIN_DISPATCH(y.scalar_type(), [&] {
    using T = scalar_t;
    T* Y = y.mutable_data_ptr<T>();
    if (s1 == 1 || L == 1) {  // rows along L: row m = Σ_j bm[m, j] u[j, :]
      at::parallel_for(0, M, 16, [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; ++m) add_combination(Bm + m * r, 1, r, U, L, sf, L, Y + m * s0);
      });
    } else {                                      // columns along M: column l = Σ_j u[j, l] bmᵀ[j, :]
      const at::Tensor bt = bc.t().contiguous();  // (r, M)
      const float* Bt = bt.const_data_ptr<float>();
      at::parallel_for(0, L, 16, [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l) add_combination(U + l, L, r, Bt, M, sf, M, Y + l * s1);
      });
    }
  });
}

std::pair<at::Tensor, at::Tensor> update_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& A,
                                                  const at::Tensor& B, double s, const at::Tensor& dx, bool need_dA,
                                                  bool need_dB) {
  at::Tensor dA, dBt;
  if (dx.defined() || need_dA) {
    const at::Tensor g = w_x((B.t() * s).contiguous(), dy);  // (r, L)
    if (need_dA) dA = p_xt(g, x);
    if (dx.defined()) add_b_u_(dx, A.t().contiguous(), g, 1.0);
  }
  if (need_dB) dBt = p_xt(w_x(A, x), dy);
  return {dA, dBt};
}

}  // namespace mft::thin
