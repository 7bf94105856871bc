#include "ops/channel_major.h"

#include "core/output.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <array>
#include <cstdint>

#if defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace mft {
namespace {

// Scalar tiles of kTile x kTile elements (edges, and CPUs without AVX-512BW): a tile's source and
// destination rows stay in L1.
constexpr int64_t kTile = 32;

// dst (C, L) row-major <- src (L, C) with rows ld elements apart, over the rectangle [l0, l1) x [c0, c1).
template <typename E>
void transpose_scalar(const E* __restrict src, E* __restrict dst, int64_t L, int64_t ld, int64_t l0, int64_t l1,
                      int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) {
    E* __restrict d = dst + c * L;
    for (int64_t l = l0; l < l1; ++l) d[l] = src[l * ld + c];
  }
}

#if defined(__AVX512BW__)
// In registers: one n x n tile (n = 64 bytes / element size: 32 two-byte or 16 four-byte elements) is
// n zmm rows. Stage b (b = n/2, ..., 1) pairs rows r and r + b (r % 2b < b) and swaps the off-diagonal
// b x b blocks of every 2b x 2b block: that exchanges bit log2(b) of the row index with the same bit of
// the column index, so after all log2(n) stages every element (i, j) sits at (j, i). One two-source
// permute per row and stage.
template <typename E>
struct Zmm {
  static constexpr int n = 64 / sizeof(E);
  // Indices into concat(row r, row r + b) (the second row's lanes are n + i) for the new rows r, r + b.
  struct Stage {
    alignas(64) E lo[n];
    alignas(64) E hi[n];
  };
  static Stage stage(int b) {
    Stage s{};
    for (int j = 0; j < n; ++j) {
      const int base = (j / (2 * b)) * 2 * b, o = j % (2 * b);
      s.lo[j] = E(o < b ? base + o : n + base + o - b);
      s.hi[j] = E(o < b ? base + b + o : n + base + b + o - b);
    }
    return s;
  }
  static __m512i permute(__m512i a, __m512i idx, __m512i b) {
    if constexpr (sizeof(E) == 2) return _mm512_permutex2var_epi16(a, idx, b);
    if constexpr (sizeof(E) == 4) return _mm512_permutex2var_epi32(a, idx, b);
    return _mm512_permutex2var_epi64(a, idx, b);
  }
  // Transposes the tile at (l0, c0): rows l0 .. l0 + n - 1 of src become rows c0 .. c0 + n - 1 of dst.
  static void tile(const E* src, E* dst, int64_t L, int64_t ld, int64_t l0, int64_t c0) {
    static const auto stages = [] {
      std::array<Stage, 6> st{};
      int k = 0;
      for (int b = n / 2; b >= 1; b /= 2) st[k++] = stage(b);
      return st;
    }();
    __m512i r[n];
    for (int i = 0; i < n; ++i) r[i] = _mm512_loadu_si512(src + (l0 + i) * ld + c0);
    int k = 0;
    for (int b = n / 2; b >= 1; b /= 2, ++k) {
      const __m512i lo = _mm512_load_si512(stages[k].lo), hi = _mm512_load_si512(stages[k].hi);
      for (int g = 0; g + 2 * b <= n; g += 2 * b) {
        __m512i* top = r + g;
        __m512i* bottom = r + g + b;
        for (int i = 0; i < b; ++i) {
          const __m512i a = top[i], c = bottom[i];
          top[i] = permute(a, lo, c);
          bottom[i] = permute(a, hi, c);
        }
      }
    }
    for (int i = 0; i < n; ++i) _mm512_storeu_si512(dst + (c0 + i) * L + l0, r[i]);
  }
};
#endif

// dst (C, L) <- src (L, C; rows ld apart) for the channels [c0, c1) (a multiple of the tile width, or the end).
template <typename E>
void transpose_channels(const E* src, E* dst, int64_t L, int64_t ld, int64_t c0, int64_t c1) {
#if defined(__AVX512BW__)
  constexpr int64_t n = Zmm<E>::n;
  if (c1 - c0 == n) {
    int64_t l0 = 0;
    for (; l0 + n <= L; l0 += n) Zmm<E>::tile(src, dst, L, ld, l0, c0);
    transpose_scalar(src, dst, L, ld, l0, L, c0, c1);
    return;
  }
#endif
  for (int64_t l0 = 0; l0 < L; l0 += kTile) transpose_scalar(src, dst, L, ld, l0, std::min(L, l0 + kTile), c0, c1);
}

// (B, C, L) whose memory is (B, L, C') rows with the C channels contiguous: y.transpose(1, 2), or
// y.narrow(2, offset, C).transpose(1, 2), of a (B, L, C') tensor y.
bool is_transposed_view(const at::Tensor& x) {
  return x.dim() == 3 && x.stride(1) == 1 && x.stride(2) >= x.size(1);
}

template <typename E>
void transpose_all(const at::Tensor& x, at::Tensor& out) {
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2), ld = x.stride(2), sb = x.stride(0);
  const E* src = static_cast<const E*>(x.const_data_ptr());
  E* dst = static_cast<E*>(out.mutable_data_ptr());
#if defined(__AVX512BW__)
  constexpr int64_t width = Zmm<E>::n;
#else
  constexpr int64_t width = kTile;
#endif
  const int64_t tiles = (C + width - 1) / width;
  at::parallel_for(0, B * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / tiles, c0 = (i % tiles) * width;
      transpose_channels<E>(src + b * sb, dst + b * C * L, L, ld, c0, std::min(C, c0 + width));
    }
  });
}

class ChannelMajorFn : public torch::autograd::Function<ChannelMajorFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& x) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return transpose_copy(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    return {grads[0]};
  }
};
}  // namespace

at::Tensor transpose_copy(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && is_transposed_view(x),
              "transpose_copy: x must be a CPU (B, C, L) view of (B, L, C) rows with contiguous channels; got sizes ",
              x.sizes(), " strides ", x.strides());
  at::Tensor out = new_output(x.sizes(), x.options());
  switch (x.element_size()) {
    case 2:
      transpose_all<uint16_t>(x, out);
      break;
    case 4:
      transpose_all<uint32_t>(x, out);
      break;
    case 8:
      transpose_all<uint64_t>(x, out);
      break;
    default:
      return x.contiguous();
  }
  return out;
}

at::Tensor channel_major(const at::Tensor& x) {
  if (x.is_contiguous() || !x.device().is_cpu() || !is_transposed_view(x) || x.numel() == 0 ||
      (x.element_size() != 2 && x.element_size() != 4 && x.element_size() != 8) || x.is_complex()) {
    return x.contiguous();
  }
  return ChannelMajorFn::apply(x);
}

}  // namespace mft
