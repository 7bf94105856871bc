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

// dst[t][k] = src[b, d0 + k, t0 + t] for t < T <= kMaxChunk, k < nl; unused lanes are 0.
// src: (B, D, L) contiguous, any floating dtype.
template <typename S>
void gather_chunk(const at::Tensor& src, const ChannelBlock& blk, int64_t t0, int64_t T, Vec<S>* dst) {
  TORCH_INTERNAL_ASSERT(T <= kMaxChunk);
  const int64_t dim = src.size(1), seqlen = src.size(2);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<S, float>) {
    // Rows are read contiguously (prefetch-friendly) into an L1 tile, converted to fp32 on the way,
    // then each timestep's 16 lanes come from one hardware gather within the tile.
    alignas(64) float tile[kLanes][kMaxChunk];
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "mft_gather_chunk", [&] {
      const scalar_t* base = src.const_data_ptr<scalar_t>() + (blk.b * dim + blk.d0) * seqlen + t0;
      for (int k = 0; k < blk.nl; ++k) {
        const scalar_t* row = base + k * seqlen;
        for (int64_t t = 0; t < T; ++t) tile[k][t] = static_cast<float>(row[t]);
      }
    });
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(static_cast<int32_t>(kMaxChunk)));
    const __mmask16 mask = static_cast<__mmask16>((1u << blk.nl) - 1u);
    for (int64_t t = 0; t < T; ++t) {
      dst[t] = (Vec<S>)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, idx, &tile[0][t], 4);
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

// dst[b, d0 + k, t0 + t] = src[t][k] for the block's lanes. dst: (B, D, L) contiguous.
template <typename S>
void scatter_chunk(const Vec<S>* src, const ChannelBlock& blk, int64_t t0, int64_t T, at::Tensor& dst) {
  const int64_t dim = dst.size(1), seqlen = dst.size(2);
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
