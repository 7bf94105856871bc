#pragma once
// Helpers shared by the CPU scan kernels: channel blocks of simd::kLanes channels, and moving chunks of
// a (batch, dim, seqlen) tensor in and out of per-timestep lane vectors (dst[t][k] = x[b, d0 + k, t0 + t]),
// converting between the tensor's dtype and the compute type.
#include "core/simd.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <type_traits>

namespace mft::cpu {

using simd::kLanes;
using simd::Vec;

// kLanes consecutive channels [d0, d0 + nl) of one batch row; never straddles a group of B/C.
struct ChannelBlock {
  int64_t b = 0, group = 0, d0 = 0;
  int nl = 0;
};

// Blocks tile every group of dim/groups channels; the last block of a group may be partial.
inline int64_t blocks_per_group(int64_t dim, int64_t groups) {
  const int64_t per_group = dim / groups;
  return (per_group + kLanes - 1) / kLanes;
}
inline ChannelBlock channel_block(int64_t b, int64_t group, int64_t j, int64_t dim, int64_t groups) {
  const int64_t per_group = dim / groups;
  ChannelBlock blk;
  blk.b = b;
  blk.group = group;
  blk.d0 = group * per_group + j * kLanes;
  blk.nl = static_cast<int>(std::min<int64_t>(kLanes, per_group - j * kLanes));
  return blk;
}

// Longest chunk the gather/scatter helpers move at once (the kernels' chunk of timesteps).
inline constexpr int64_t kMaxChunk = 64;

#if defined(__AVX512F__)
// In-register transpose of a 16 x 16 fp32 tile: r[i][j] -> r[j][i]. Four stages of 16 shuffles:
// 32-bit and 64-bit interleaves inside 128-bit lanes, then two 128-bit lane shuffles. (The maskz_ forms
// with a full mask are the same instructions; GCC 12's plain forms warn about _mm512_undefined_*.)
inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(0xFFFF, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // r[i + c], 128-bit lane L: column 4L + c of rows i .. i + 3
    r[i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, _mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, _mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, _mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, _mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 p = _mm512_maskz_shuffle_f32x4(0xFFFF, r[c], r[4 + c], 0x44),
                 q = _mm512_maskz_shuffle_f32x4(0xFFFF, r[c], r[4 + c], 0xEE);
    const __m512 u = _mm512_maskz_shuffle_f32x4(0xFFFF, r[8 + c], r[12 + c], 0x44),
                 v = _mm512_maskz_shuffle_f32x4(0xFFFF, r[8 + c], r[12 + c], 0xEE);
    t[c] = _mm512_maskz_shuffle_f32x4(0xFFFF, p, u, 0x88);
    t[4 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, p, u, 0xDD);
    t[8 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, q, v, 0x88);
    t[12 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, q, v, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}
#endif

// Asks for the block's rows of the next chunk. A kernel walks 16 rows of each of 4-7 tensors at once;
// with long rows (seqlen 2048: 8 KiB apart) those are more streams than the hardware prefetchers
// track, and the z tensor alone cost 2.3 ms of 10 at (1, 1536, 2048) before this.
inline void prefetch_next_chunk(const at::Tensor& t, const ChannelBlock& blk, int64_t t0, int64_t T, bool write) {
  const int64_t dim = t.size(1), seqlen = t.size(2), next = t0 + T;
  if (next >= seqlen) return;
  const int64_t elem = t.element_size(), n = std::min<int64_t>(T, seqlen - next) * elem;
  const char* base = static_cast<const char*>(t.const_data_ptr()) + ((blk.b * dim + blk.d0) * seqlen + next) * elem;
  for (int k = 0; k < blk.nl; ++k) {
    for (int64_t off = 0; off < n; off += 64) {
      if (write) {
        __builtin_prefetch(base + k * seqlen * elem + off, 1);
      } else {
        __builtin_prefetch(base + k * seqlen * elem + off, 0);
      }
    }
  }
}

// dst[t][k] = src[b, d0 + k, t0 + t] for t < T <= kMaxChunk, k < nl; unused lanes are 0.
// src: (B, D, L) contiguous, any floating dtype.
template <typename S>
void gather_chunk(const at::Tensor& src, const ChannelBlock& blk, int64_t t0, int64_t T, Vec<S>* dst) {
  TORCH_INTERNAL_ASSERT(T <= kMaxChunk);
  const int64_t dim = src.size(1), seqlen = src.size(2);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<S, float>) {
    // Rows are read contiguously (fp32 directly, other dtypes converted into an L1 tile), 16 x 16
    // blocks are transposed in registers: no per-element loads or stores.
    alignas(64) float tile[kLanes][kMaxChunk];
    const float* rows = nullptr;
    int64_t stride = kMaxChunk;
    prefetch_next_chunk(src, blk, t0, T, /*write=*/false);
    if (src.scalar_type() == at::kFloat) {
      rows = src.const_data_ptr<float>() + (blk.b * dim + blk.d0) * seqlen + t0;
      stride = seqlen;
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "mft_gather_chunk", [&] {
        const scalar_t* base = src.const_data_ptr<scalar_t>() + (blk.b * dim + blk.d0) * seqlen + t0;
        for (int k = 0; k < blk.nl; ++k) {
          for (int64_t t = 0; t < T; ++t) tile[k][t] = static_cast<float>(base[k * seqlen + t]);
        }
      });
      rows = &tile[0][0];
    }
    for (int64_t tb = 0; tb < T; tb += kLanes) {
      const int64_t n = std::min<int64_t>(kLanes, T - tb);
      const __mmask16 tmask = static_cast<__mmask16>((1u << n) - 1u);
      __m512 r[16];
      for (int k = 0; k < kLanes; ++k) {
        r[k] = k < blk.nl ? _mm512_maskz_loadu_ps(tmask, rows + k * stride + tb) : _mm512_setzero_ps();
      }
      transpose16x16(r);
      for (int64_t j = 0; j < n; ++j) dst[tb + j] = (Vec<S>)r[j];
    }
    return;
  }
#endif
  for (int64_t t = 0; t < T; ++t) dst[t] = Vec<S>{};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "mft_gather_chunk", [&] {
    const scalar_t* base = src.const_data_ptr<scalar_t>() + (blk.b * dim + blk.d0) * seqlen + t0;
    for (int k = 0; k < blk.nl; ++k) {
      const scalar_t* row = base + k * seqlen;
      for (int64_t t = 0; t < T; ++t) dst[t][k] = static_cast<S>(row[t]);
    }
  });
}

// dst[b, d0 + k, t0 + t] = src[t][k] for the block's lanes, t < T <= kMaxChunk. dst: (B, D, L) contiguous.
template <typename S>
void scatter_chunk(const Vec<S>* src, const ChannelBlock& blk, int64_t t0, int64_t T, at::Tensor& dst) {
  TORCH_INTERNAL_ASSERT(T <= kMaxChunk);
  const int64_t dim = dst.size(1), seqlen = dst.size(2);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<S, float>) {
    alignas(64) float tile[kLanes][kMaxChunk];
    prefetch_next_chunk(dst, blk, t0, T, /*write=*/true);
    const bool direct = dst.scalar_type() == at::kFloat;
    float* rows = direct ? dst.mutable_data_ptr<float>() + (blk.b * dim + blk.d0) * seqlen + t0 : &tile[0][0];
    const int64_t stride = direct ? seqlen : kMaxChunk;
    for (int64_t tb = 0; tb < T; tb += kLanes) {
      const int64_t n = std::min<int64_t>(kLanes, T - tb);
      const __mmask16 tmask = static_cast<__mmask16>((1u << n) - 1u);
      __m512 r[16];
      for (int j = 0; j < kLanes; ++j) r[j] = j < n ? (__m512)src[tb + j] : _mm512_setzero_ps();
      transpose16x16(r);
      for (int k = 0; k < blk.nl; ++k) _mm512_mask_storeu_ps(rows + k * stride + tb, tmask, r[k]);
    }
    if (!direct) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst.scalar_type(), "mft_scatter_chunk", [&] {
        scalar_t* base = dst.mutable_data_ptr<scalar_t>() + (blk.b * dim + blk.d0) * seqlen + t0;
        for (int k = 0; k < blk.nl; ++k) {
          for (int64_t t = 0; t < T; ++t) base[k * seqlen + t] = static_cast<scalar_t>(tile[k][t]);
        }
      });
    }
    return;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst.scalar_type(), "mft_scatter_chunk", [&] {
    scalar_t* base = dst.mutable_data_ptr<scalar_t>() + (blk.b * dim + blk.d0) * seqlen + t0;
    for (int k = 0; k < blk.nl; ++k) {
      scalar_t* row = base + k * seqlen;
      for (int64_t t = 0; t < T; ++t) row[t] = static_cast<scalar_t>(src[t][k]);
    }
  });
}

// v[n][k] = p[(d0 + k) * stride + n] for the block's lanes (per-channel parameters such as A (D, N)).
template <typename S>
void gather_param(const S* p, const ChannelBlock& blk, int64_t count, int64_t stride, Vec<S>* v) {
  for (int64_t n = 0; n < count; ++n) v[n] = Vec<S>{};
  if (p == nullptr) return;
  for (int k = 0; k < blk.nl; ++k) {
    for (int64_t n = 0; n < count; ++n) v[n][k] = p[(blk.d0 + k) * stride + n];
  }
}

// p[(d0 + k) * stride + n] = v[n][k].
template <typename S>
void scatter_param(const Vec<S>* v, const ChannelBlock& blk, int64_t count, int64_t stride, S* p) {
  for (int k = 0; k < blk.nl; ++k) {
    for (int64_t n = 0; n < count; ++n) p[(blk.d0 + k) * stride + n] = v[n][k];
  }
}

}  // namespace mft::cpu
