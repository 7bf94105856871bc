// Optimised CPU kernels of mft::selective_scan (forward and backward).
//
// Work unit: one ChannelBlock = kLanes channels of one batch row sharing B/C. The state x (dstate lane
// vectors) lives in a small local array; time runs in chunks of kChunk steps whose inputs are first
// converted to fp32 lane vectors. The inner loop does, per (t, n), one vectorised exp and three FMAs:
// no per-timestep ATen calls, no (B, D, L, N) tensor.
// Backward: the forward saves the state every kSegment steps (selective_scan_fwd); segments are then
// processed in reverse, recomputing states and exp(delta A) inside the segment, and running the adjoint
// recurrence G_t = dy_t C_t + exp(delta_{t+1} A) G_{t+1}. Without saved states (a direct call of the
// backward op) a forward pass per block recomputes them. dB/dC (shared by the channels of a group) are
// summed over each slice of channels in lane vectors, then into per-slice buffers reduced in a fixed
// order, so the result is deterministic and independent of the thread count; no atomics.
#include "core/check.h"
#include "core/output.h"
#include "ops/scan_blocks.h"
#include "ops/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <type_traits>
#include <vector>

namespace mft {
namespace {
using cpu::ChannelBlock;
using simd::kLanes;
using simd::splat;
using simd::Vec;

// Timesteps per chunk of converted inputs (kChunk lane vectors per input, 4 KiB each: L1-resident).
constexpr int64_t kChunk = cpu::kMaxChunk;
// The forward keeps the state every kSegment steps for the backward (B*D*N fp32 per segment: 1/256 of
// all states). The backward recomputes one segment of states and exp(delta A) per block instead of a
// second forward pass; with the segment's dB/dC lane sums that is 4 x 256 x N lane vectors per thread
// (1 MiB at N = 16 with AVX-512).
constexpr int64_t kSegment = 256;
static_assert(kSegment % kChunk == 0, "segments are whole chunks");
inline int64_t num_segments(int64_t seqlen) {
  return (seqlen + kSegment - 1) / kSegment;
}
// The backward splits each (batch, group) into at most this many channel slices, each with its own
// dB/dC partial sums: enough parallel tasks for a many-core CPU at batch 1, and a fixed split so that
// results do not depend on the thread count.
constexpr int64_t kTargetTasks = 16;
// softplus(x) == x above this threshold (torch and mamba-ssm use 20 too).
constexpr double kSoftplusThreshold = 20.0;

// Contiguous operands in the layouts the kernels read.
template <typename S>
struct ScanOperands {
  ScanGeometry geo;
  at::Tensor u, delta, z;  // (B, D, L), their own dtypes
  at::Tensor A;            // (D, N)
  at::Tensor Bt, Ct;       // time-varying: (B, G, L, N) compute dtype; time-invariant: (D, N)
  at::Tensor D, bias, init, seq_idx;
  bool softplus = false;

  ScanOperands(const at::Tensor& u_, const at::Tensor& delta_, const at::Tensor& A_, const at::Tensor& B_,
               const at::Tensor& C_, const OptTensor& D_, const OptTensor& z_, const OptTensor& bias_, bool softplus_,
               const OptTensor& init_, const OptTensor& seq_idx_, const ScanGeometry& g)
      : geo(g), softplus(softplus_) {
    constexpr auto cd = c10::CppTypeToScalarType<S>::value;
    u = u_.contiguous();
    delta = delta_.contiguous();
    if (z_) z = z_->contiguous();
    A = A_.contiguous();
    Bt = layout_bc(B_, cd);
    Ct = layout_bc(C_, cd);
    if (D_) D = D_->contiguous();
    if (bias_) bias = bias_->contiguous();
    if (init_) init = init_->contiguous();
    if (seq_idx_) seq_idx = seq_idx_->contiguous();
  }
  static at::Tensor layout_bc(const at::Tensor& bc, at::ScalarType cd) {
    if (bc.dim() == 2) return bc.to(cd).contiguous();
    const at::Tensor bc4 = bc.dim() == 3 ? bc.unsqueeze(1) : bc;  // (B, G, N, L)
    return bc4.to(cd).transpose(2, 3).contiguous();               // (B, G, L, N)
  }
  static const S* ptr(const at::Tensor& t) { return t.defined() ? t.const_data_ptr<S>() : nullptr; }
  int64_t row_offset(const ChannelBlock& blk) const {  // start of (b, group) in Bt/Ct
    return (blk.b * geo.groups + blk.group) * geo.seqlen * geo.dstate;
  }
  bool reset_at(const int32_t* sidx, int64_t t) const { return sidx && t > 0 && sidx[t] != sidx[t - 1]; }
  // Padding (seq_idx < 0): the step is skipped, with state 0 and output 0 (and no gradients) there.
  static bool pad_at(const int32_t* sidx, int64_t t) { return sidx && sidx[t] < 0; }
  const int32_t* seq_row(int64_t b) const {
    return seq_idx.defined() ? seq_idx.const_data_ptr<int32_t>() + b * geo.seqlen : nullptr;
  }
};

// d softplus(r) / dr: sigmoid(r), or 1 above the threshold where softplus(r) = r.
inline simd::VF softplus_derivative(simd::VF r) {
  return simd::select(r > float(kSoftplusThreshold), simd::splat<simd::VF>(1.0f), simd::vsigmoid(r));
}
inline simd::VD softplus_derivative(simd::VD r) {
  return simd::per_lane(r, [](double v) { return v > kSoftplusThreshold ? 1.0 : 1.0 / (1.0 + std::exp(-v)); });
}

// Per-block constants: A (and A2 = A log2 e), time-invariant B/C, D and delta_bias as lane vectors.
template <typename S>
struct BlockParams {
  using V = Vec<S>;
  std::vector<V> A, A2, B, C;
  V D{}, bias{};
  BlockParams(const ScanOperands<S>& op, const ChannelBlock& blk) {
    const int64_t N = op.geo.dstate;
    A.resize(N);
    cpu::gather_param<S>(op.ptr(op.A), blk, N, N, A.data());
    A2.resize(N);
    for (int64_t n = 0; n < N; ++n) A2[n] = A[n] * simd::kLog2e<S>;  // exp(delta A) = 2^(delta A2): simd::vexp2
    if (!op.geo.var_B) {
      B.resize(N);
      cpu::gather_param<S>(op.ptr(op.Bt), blk, N, N, B.data());
    }
    if (!op.geo.var_C) {
      C.resize(N);
      cpu::gather_param<S>(op.ptr(op.Ct), blk, N, N, C.data());
    }
    cpu::gather_param<S>(op.ptr(op.D), blk, 1, 1, &D);
    cpu::gather_param<S>(op.ptr(op.bias), blk, 1, 1, &bias);
  }
};

// Loads u and delta' = softplus(delta + bias) for one chunk; raw keeps delta + bias (for the backward).
template <typename S>
void load_u_dt(const ScanOperands<S>& op, const BlockParams<S>& p, const ChannelBlock& blk, int64_t t0, int64_t T,
               Vec<S>* ub, Vec<S>* dtb, Vec<S>* raw) {
  cpu::gather_chunk<S>(op.u, blk, t0, T, ub);
  cpu::gather_chunk<S>(op.delta, blk, t0, T, dtb);
  for (int64_t t = 0; t < T; ++t) {
    const Vec<S> r = dtb[t] + p.bias;
    if (raw) raw[t] = r;
    dtb[t] = op.softplus ? simd::vsoftplus(r) : r;
  }
}

// ---------------------------------------------------------------------------------------------------
// Forward
// ck: when not null, (B, D, nseg, N): the state before every kSegment-th step (for the backward).
// kN: the state size when known at compile time (16, Mamba's): the loop over n is unrolled and the
// state stays in registers instead of going through memory at every step; 0: any size.
template <typename S, bool kVarB, bool kVarC, int kN>
void forward_block(const ScanOperands<S>& op, const ChannelBlock& blk, at::Tensor& out, S* last, S* ck) {
  using V = Vec<S>;
  const int64_t N = kN > 0 ? kN : op.geo.dstate, L = op.geo.seqlen, nseg = num_segments(L);
  const BlockParams<S> p(op, blk);
  std::vector<V> xv(kN > 0 ? 0 : N);
  V xr[kN > 0 ? kN : 1];
  V* __restrict x = kN > 0 ? xr : xv.data();
  cpu::gather_param<S>(op.ptr(op.init) ? op.ptr(op.init) + blk.b * op.geo.dim * N : nullptr, blk, N, N, x);
  const S* Bg = kVarB ? op.ptr(op.Bt) + op.row_offset(blk) : nullptr;  // (L, N)
  const S* Cg = kVarC ? op.ptr(op.Ct) + op.row_offset(blk) : nullptr;
  const int32_t* sidx = op.seq_row(blk.b);
  alignas(64) V ub[kChunk], dtb[kChunk], zb[kChunk], yb[kChunk];
  for (int64_t t0 = 0; t0 < L; t0 += kChunk) {
    const int64_t T = std::min(kChunk, L - t0);
    if (ck && t0 % kSegment == 0) {
      cpu::scatter_param<S>(x, blk, N, nseg * N, ck + blk.b * op.geo.dim * nseg * N + (t0 / kSegment) * N);
    }
    load_u_dt(op, p, blk, t0, T, ub, dtb, nullptr);
    if (op.z.defined()) {
      cpu::gather_chunk<S>(op.z, blk, t0, T, zb);
      for (int64_t t = 0; t < T; ++t) zb[t] = simd::vsilu(zb[t]);
    }
    for (int64_t t = 0; t < T; ++t) {
      if (op.pad_at(sidx, t0 + t)) {
        std::fill(x, x + N, V{});
        yb[t] = V{};
        continue;
      }
      if (op.reset_at(sidx, t0 + t)) std::fill(x, x + N, V{});
      const V dt = dtb[t], du = dt * ub[t];
      V y0 = p.D * ub[t], y1{};  // two accumulators halve the dependency chain over n
      const S* Brow = kVarB ? Bg + (t0 + t) * N : nullptr;
      const S* Crow = kVarC ? Cg + (t0 + t) * N : nullptr;
      int64_t n = 0;
#pragma GCC unroll 8
      for (; n + 1 < N; n += 2) {
        const V b0 = kVarB ? splat<V>(Brow[n]) : p.B[n], b1 = kVarB ? splat<V>(Brow[n + 1]) : p.B[n + 1];
        const V c0 = kVarC ? splat<V>(Crow[n]) : p.C[n], c1 = kVarC ? splat<V>(Crow[n + 1]) : p.C[n + 1];
        x[n] = simd::vexp2(dt * p.A2[n]) * x[n] + du * b0;
        x[n + 1] = simd::vexp2(dt * p.A2[n + 1]) * x[n + 1] + du * b1;
        y0 += c0 * x[n];
        y1 += c1 * x[n + 1];
      }
      if (n < N) {
        const V bn = kVarB ? splat<V>(Brow[n]) : p.B[n];
        const V cn = kVarC ? splat<V>(Crow[n]) : p.C[n];
        x[n] = simd::vexp2(dt * p.A2[n]) * x[n] + du * bn;
        y0 += cn * x[n];
      }
      const V y = y0 + y1;
      yb[t] = op.z.defined() ? y * zb[t] : y;
    }
    cpu::scatter_chunk<S>(yb, blk, t0, T, out);
  }
  if (last) cpu::scatter_param<S>(x, blk, N, N, last + blk.b * op.geo.dim * N);
}

template <typename S>
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_impl(const ScanOperands<S>& op, bool return_last_state,
                                                            bool save_checkpoints) {
  const ScanGeometry& g = op.geo;
  constexpr auto cd = c10::CppTypeToScalarType<S>::value;
  const auto sopt = op.u.options().dtype(cd);
  at::Tensor out = new_output(op.u.sizes(), op.u.options());
  at::Tensor last = return_last_state ? new_output({g.batch, g.dim, g.dstate}, sopt) : at::empty({0}, sopt);
  at::Tensor ck =
      save_checkpoints ? new_output({g.batch, g.dim, num_segments(g.seqlen), g.dstate}, sopt) : at::empty({0}, sopt);
  S* last_ptr = return_last_state ? last.mutable_data_ptr<S>() : nullptr;
  S* ck_ptr = save_checkpoints ? ck.mutable_data_ptr<S>() : nullptr;
  const int64_t bpg = cpu::blocks_per_group(g.dim, g.groups);
  auto* fn = g.var_B ? (g.var_C ? &forward_block<S, true, true, 0> : &forward_block<S, true, false, 0>)
                     : (g.var_C ? &forward_block<S, false, true, 0> : &forward_block<S, false, false, 0>);
  if (g.var_B && g.var_C && g.dstate == 16) fn = &forward_block<S, true, true, 16>;  // Mamba's
  at::parallel_for(0, g.batch * g.groups * bpg, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const ChannelBlock blk = cpu::channel_block(i / (g.groups * bpg), (i / bpg) % g.groups, i % bpg, g.dim, g.groups);
      fn(op, blk, out, last_ptr, ck_ptr);
    }
  });
  return {out, last, ck};
}

// ---------------------------------------------------------------------------------------------------
// Backward
template <typename S>
struct ScanGradBuffers {
  at::Tensor dout, dlast, ck;               // (B, D, L) out dtype; (B, D, N) or undefined; (B, D, nseg, N) or undefined
  at::Tensor du, ddelta, dz;                // like u, delta, z
  at::Tensor dA_part, dD_part, dbias_part;  // (B, D, N), (B, D), (B, D): summed over batch at the end
  at::Tensor dB_part, dC_part;              // time-varying: (slices, B, G, L, N); invariant: (B, D, N)
  at::Tensor dinit;                         // (B, D, N)
  int64_t slices = 1;
};

// What one channel block carries from segment to segment (segments are visited last to first).
template <typename S>
struct BlockAdjoint {
  using V = Vec<S>;
  ChannelBlock blk;
  BlockParams<S> p;
  std::vector<V> ck;                 // (nseg, N): state before each segment
  std::vector<V> carry, dA, dB, dC;  // (N): dLoss/dx carried backwards; sums of dA and invariant dB/dC
  V dD{}, dbias{};
  BlockAdjoint(const ScanOperands<S>& op, const ChannelBlock& b) : blk(b), p(op, b) {}
};

// The states before every segment, by a forward pass without outputs (when the forward did not save them).
template <typename S, bool kVarB>
void recompute_checkpoints(const ScanOperands<S>& op, BlockAdjoint<S>& a) {
  using V = Vec<S>;
  const int64_t N = op.geo.dstate, L = op.geo.seqlen, nseg = num_segments(L);
  const S* Bg = kVarB ? op.ptr(op.Bt) + op.row_offset(a.blk) : nullptr;
  const int32_t* sidx = op.seq_row(a.blk.b);
  std::vector<V> x(a.ck.begin(), a.ck.begin() + N);
  alignas(64) V ub[kChunk], dtb[kChunk];
  for (int64_t t0 = 0; t0 < (nseg - 1) * kSegment; t0 += kChunk) {
    load_u_dt(op, a.p, a.blk, t0, kChunk, ub, dtb, nullptr);
    for (int64_t t = 0; t < kChunk; ++t) {
      if (op.reset_at(sidx, t0 + t) || op.pad_at(sidx, t0 + t)) std::fill(x.begin(), x.end(), V{});
      if (op.pad_at(sidx, t0 + t)) continue;
      const V dt = dtb[t], du = dt * ub[t];
      const S* Brow = kVarB ? Bg + (t0 + t) * N : nullptr;
      for (int64_t n = 0; n < N; ++n) {
        x[n] = simd::vexp2(dt * a.p.A2[n]) * x[n] + du * (kVarB ? splat<V>(Brow[n]) : a.p.B[n]);
      }
    }
    if ((t0 + kChunk) % kSegment == 0) std::copy(x.begin(), x.end(), a.ck.begin() + ((t0 + kChunk) / kSegment) * N);
  }
}

// Per-thread buffers for one segment of one block; dBv/dCv sum lane vectors over the slice's blocks so
// that the horizontal sums over lanes happen once per slice, not once per block.
template <typename S>
struct SegmentBuffers {
  using V = Vec<S>;
  std::vector<V> H, E, dBv, dCv;             // (steps, N)
  std::vector<V> ub, dtb, raw, zb, gob, yb;  // (steps)
  // steps = min(kSegment, seqlen): short sequences do not pay for a whole segment.
  SegmentBuffers(int64_t N, int64_t steps)
      : H(steps * N),
        E(steps * N),
        dBv(steps * N),
        dCv(steps * N),
        ub(steps),
        dtb(steps),
        raw(steps),
        zb(steps),
        gob(steps),
        yb(steps) {}
};

// Backward of one block over steps [t0, t0 + T) of segment `s`, given the adjoint carried from later
// segments: recompute states and exp(delta A), then run the adjoint recurrence t descending.
// kN as in forward_block: with N known, the carried adjoint lives in registers during the segment.
template <typename S, bool kVarB, bool kVarC, int kN>
void backward_segment(const ScanOperands<S>& op, ScanGradBuffers<S>& gb, BlockAdjoint<S>& a, int64_t s, int64_t t0,
                      int64_t T, SegmentBuffers<S>& w) {
  using V = Vec<S>;
  const int64_t N = kN > 0 ? kN : op.geo.dstate;
  const ChannelBlock& blk = a.blk;
  const BlockParams<S>& p = a.p;
  const S* Bg = kVarB ? op.ptr(op.Bt) + op.row_offset(blk) : nullptr;
  const S* Cg = kVarC ? op.ptr(op.Ct) + op.row_offset(blk) : nullptr;
  const int32_t* sidx = op.seq_row(blk.b);
  const bool has_z = op.z.defined();
  V *ub = w.ub.data(), *dtb = w.dtb.data(), *raw = w.raw.data(), *zb = w.zb.data(), *gob = w.gob.data(),
    *yb = w.yb.data(), *H = w.H.data(), *E = w.E.data();
  for (int64_t c0 = 0; c0 < T; c0 += kChunk) {  // loads in chunks: the gather helpers work on <= kChunk rows
    const int64_t n = std::min(kChunk, T - c0);
    load_u_dt(op, p, blk, t0 + c0, n, ub + c0, dtb + c0, raw + c0);
    if (has_z) cpu::gather_chunk<S>(op.z, blk, t0 + c0, n, zb + c0);
    cpu::gather_chunk<S>(gb.dout, blk, t0 + c0, n, gob + c0);
  }
  // Recompute states, exp(delta A) and the pre-gate output inside the segment.
  const V* xprev = &a.ck[s * N];
  for (int64_t t = 0; t < T; ++t) {
    if (op.pad_at(sidx, t0 + t)) {  // state 0, output 0
      std::fill(&E[t * N], &E[t * N] + N, V{});
      std::fill(&H[t * N], &H[t * N] + N, V{});
      yb[t] = V{};
      xprev = &H[t * N];
      continue;
    }
    const V dt = dtb[t], du = dt * ub[t];
    const S* Brow = kVarB ? Bg + (t0 + t) * N : nullptr;
    const S* Crow = kVarC ? Cg + (t0 + t) * N : nullptr;
    V* __restrict Et = &E[t * N];
    V* __restrict Ht = &H[t * N];
    const V* __restrict pB = kVarB ? nullptr : p.B.data();
    const V* __restrict pC = kVarC ? nullptr : p.C.data();
    const V* __restrict pA2 = p.A2.data();
    const V* __restrict prev = xprev;
    // Unswitched on the document reset, and y summed in two chains (even and odd n).
    auto states = [&](auto is_reset) {
      constexpr bool kReset = decltype(is_reset)::value;
      V y0 = p.D * ub[t], y1{};
      for (int64_t n = 0; n < N; ++n) {
        const V bn = kVarB ? splat<V>(Brow[n]) : pB[n];
        const V cn = kVarC ? splat<V>(Crow[n]) : pC[n];
        const V e = simd::vexp2(dt * pA2[n]);
        const V h = kReset ? du * bn : e * prev[n] + du * bn;
        Et[n] = e;
        Ht[n] = h;
        if (n % 2 == 0)
          y0 += cn * h;
        else
          y1 += cn * h;
      }
      return y0 + y1;
    };
    yb[t] = op.reset_at(sidx, t0 + t) ? states(std::true_type{}) : states(std::false_type{});
    xprev = &H[t * N];
  }
  // Adjoint recurrence, t descending. ub/dtb/zb slots take du, ddelta, dz once read.
  V carry_regs[kN > 0 ? kN : 1];
  if constexpr (kN > 0) std::copy(a.carry.begin(), a.carry.end(), carry_regs);
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t tt = t0 + t;
    if (op.pad_at(sidx, tt)) {  // the state there is constant 0: nothing flows back through it
      V* carry = kN > 0 ? carry_regs : a.carry.data();
      std::fill(carry, carry + N, V{});
      ub[t] = dtb[t] = V{};
      if (has_z) zb[t] = V{};
      continue;
    }
    const bool reset = op.reset_at(sidx, tt);
    V dy = gob[t];
    if (has_z) {
      const V zt = zb[t], sg = simd::vsigmoid(zt);
      dy = gob[t] * (zt * sg);
      zb[t] = gob[t] * yb[t] * sg * (S(1) + zt * (S(1) - sg));  // dz
    }
    const V dt = dtb[t], uv = ub[t], dtu = dt * uv;
    a.dD += dy * uv;
    const V* hprev = t > 0 ? &H[(t - 1) * N] : &a.ck[s * N];
    const S* Brow = kVarB ? Bg + tt * N : nullptr;
    const S* Crow = kVarC ? Cg + tt * N : nullptr;
    // Every array the state loop touches as a local restrict pointer, and the loop unswitched on
    // `reset`: otherwise GCC reloads the vectors' data pointers and tests the flag at every n.
    V* __restrict dBrow = &w.dBv[t * N];
    V* __restrict dCrow = &w.dCv[t * N];
    V* __restrict carry = kN > 0 ? carry_regs : a.carry.data();
    V* __restrict dAa = a.dA.data();
    V* __restrict dBa = kVarB ? nullptr : a.dB.data();
    V* __restrict dCa = kVarC ? nullptr : a.dC.data();
    const V* __restrict Ht = &H[t * N];
    const V* __restrict Et = &E[t * N];
    const V* __restrict pB = kVarB ? nullptr : p.B.data();
    const V* __restrict pC = kVarC ? nullptr : p.C.data();
    const V* __restrict pA = p.A.data();
    // With G = dLoss/dx_t: du and ddelta both need sum_n G B_n (times delta and u), so it is summed
    // once; ddelta's other part sum_n G exp(delta A) x_{t-1} A is the other sum. Both in two chains
    // (even and odd n) to halve the dependent additions.
    V gb0{}, gb1{}, ahA0{}, ahA1{};
    auto states = [&](auto is_reset) {
      constexpr bool kReset = decltype(is_reset)::value;
      auto state = [&](int64_t n, V & gsum, V & asum) __attribute__((always_inline)) {
        const V bn = kVarB ? splat<V>(Brow[n]) : pB[n];
        const V cn = kVarC ? splat<V>(Crow[n]) : pC[n];
        const V G = carry[n] + dy * cn;
        const V dyh = dy * Ht[n];
        if constexpr (kVarC)
          dCrow[n] += dyh;
        else
          dCa[n] += dyh;
        gsum += G * bn;
        if constexpr (kVarB)
          dBrow[n] += G * dtu;
        else
          dBa[n] += G * dtu;
        if constexpr (kReset) {
          carry[n] = V{};
        } else {
          const V ge = G * Et[n];
          const V ah = ge * hprev[n];  // dLoss/d(delta A) through x_{t-1}
          asum += ah * pA[n];
          dAa[n] += ah * dt;
          carry[n] = ge;
        }
      };
      int64_t n = 0;
#pragma GCC unroll 8
      for (; n + 1 < N; n += 2) {  // even and odd n in separate chains (locals: arrays went through memory)
        state(n, gb0, ahA0);
        state(n + 1, gb1, ahA1);
      }
      if (n < N) state(n, gb0, ahA0);
    };
    if (reset)
      states(std::true_type{});
    else
      states(std::false_type{});
    const V gbs = gb0 + gb1;
    const V du = dy * p.D + dt * gbs;
    V ddt = uv * gbs + (ahA0 + ahA1);
    if (op.softplus) {
      const V r = raw[t];
      ddt = ddt * softplus_derivative(r);
    }
    a.dbias += ddt;
    ub[t] = du;
    dtb[t] = ddt;
  }
  if constexpr (kN > 0) std::copy(carry_regs, carry_regs + kN, a.carry.begin());
  for (int64_t c0 = 0; c0 < T; c0 += kChunk) {
    const int64_t n = std::min(kChunk, T - c0);
    cpu::scatter_chunk<S>(ub + c0, blk, t0 + c0, n, gb.du);
    cpu::scatter_chunk<S>(dtb + c0, blk, t0 + c0, n, gb.ddelta);
    if (has_z) cpu::scatter_chunk<S>(zb + c0, blk, t0 + c0, n, gb.dz);
  }
}

// Backward of the channel blocks [j0, j1) of one (batch, group), segments last to first.
template <typename S, bool kVarB, bool kVarC>
void backward_slice(const ScanOperands<S>& op, ScanGradBuffers<S>& gb, int64_t b, int64_t group, int64_t slice,
                    int64_t j0, int64_t j1) {
  using V = Vec<S>;
  const ScanGeometry& g = op.geo;
  const int64_t N = g.dstate, L = g.seqlen, nseg = num_segments(L);
  std::vector<BlockAdjoint<S>> blocks;
  blocks.reserve(j1 - j0);
  for (int64_t j = j0; j < j1; ++j) {
    BlockAdjoint<S>& a = blocks.emplace_back(op, cpu::channel_block(b, group, j, g.dim, g.groups));
    a.carry.assign(N, V{});
    a.dA.assign(N, V{});
    a.dB.assign(kVarB ? 0 : N, V{});
    a.dC.assign(kVarC ? 0 : N, V{});
    a.ck.assign(nseg * N, V{});
    if (gb.dlast.defined()) {
      cpu::gather_param<S>(gb.dlast.template const_data_ptr<S>() + b * g.dim * N, a.blk, N, N, a.carry.data());
    }
    if (gb.ck.defined()) {
      const S* ck = gb.ck.template const_data_ptr<S>() + b * g.dim * nseg * N;
      for (int64_t s = 0; s < nseg; ++s) cpu::gather_param<S>(ck + s * N, a.blk, N, nseg * N, &a.ck[s * N]);
    } else {
      cpu::gather_param<S>(op.ptr(op.init) ? op.ptr(op.init) + b * g.dim * N : nullptr, a.blk, N, N, a.ck.data());
      recompute_checkpoints<S, kVarB>(op, a);
    }
  }
  SegmentBuffers<S> w(N, std::min(kSegment, L));
  const int64_t part_offset = (slice * g.batch * g.groups + b * g.groups + group) * L * N;
  for (int64_t s = nseg - 1; s >= 0; --s) {
    const int64_t t0 = s * kSegment, T = std::min(kSegment, L - t0);
    std::fill(w.dBv.begin(), w.dBv.begin() + T * N, V{});
    std::fill(w.dCv.begin(), w.dCv.begin() + T * N, V{});
    for (auto& a : blocks) {
      if (N == 16)  // Mamba's state size
        backward_segment<S, kVarB, kVarC, 16>(op, gb, a, s, t0, T, w);
      else
        backward_segment<S, kVarB, kVarC, 0>(op, gb, a, s, t0, T, w);
    }
    // One horizontal sum per (t, n) for the whole slice.
    if constexpr (kVarB) {
      S* dB = gb.dB_part.template mutable_data_ptr<S>() + part_offset + t0 * N;
      for (int64_t i = 0; i < T * N; ++i) dB[i] = simd::hsum(w.dBv[i]);
    }
    if constexpr (kVarC) {
      S* dC = gb.dC_part.template mutable_data_ptr<S>() + part_offset + t0 * N;
      for (int64_t i = 0; i < T * N; ++i) dC[i] = simd::hsum(w.dCv[i]);
    }
  }
  for (auto& a : blocks) {
    const int64_t bN = b * g.dim * N;
    if (gb.dinit.defined())
      cpu::scatter_param<S>(a.carry.data(), a.blk, N, N, gb.dinit.template mutable_data_ptr<S>() + bN);
    cpu::scatter_param<S>(a.dA.data(), a.blk, N, N, gb.dA_part.template mutable_data_ptr<S>() + bN);
    if (!kVarB) cpu::scatter_param<S>(a.dB.data(), a.blk, N, N, gb.dB_part.template mutable_data_ptr<S>() + bN);
    if (!kVarC) cpu::scatter_param<S>(a.dC.data(), a.blk, N, N, gb.dC_part.template mutable_data_ptr<S>() + bN);
    cpu::scatter_param<S>(&a.dD, a.blk, 1, 1, gb.dD_part.template mutable_data_ptr<S>() + b * g.dim);
    cpu::scatter_param<S>(&a.dbias, a.blk, 1, 1, gb.dbias_part.template mutable_data_ptr<S>() + b * g.dim);
  }
}

// dB/dC partials (slices, B, G, L, N) or (B, D, N) -> the layout and dtype of the input B/C.
at::Tensor finish_bc_grad(const at::Tensor& part, const at::Tensor& like, bool var) {
  if (!var) return part.sum(0).to(like.scalar_type());  // (D, N)
  at::Tensor g = part.sum(0).transpose(2, 3);           // (B, G, N, L)
  if (like.dim() == 3) g = g.squeeze(1);
  return g.to(like.scalar_type()).contiguous();
}

template <typename S>
ScanGrads backward_impl(const ScanOperands<S>& op, const at::Tensor& dout, const OptTensor& dlast,
                        const OptTensor& checkpoints, const at::Tensor& B, const at::Tensor& C) {
  const ScanGeometry& g = op.geo;
  constexpr auto cd = c10::CppTypeToScalarType<S>::value;
  const auto sopt = op.u.options().dtype(cd);
  ScanGradBuffers<S> gb;
  gb.dout = dout.contiguous();
  if (dlast && dlast->defined() && dlast->numel() > 0) gb.dlast = dlast->to(cd).contiguous();
  if (checkpoints && checkpoints->defined() && checkpoints->numel() > 0) gb.ck = checkpoints->contiguous();
  gb.du = new_output_like(op.u);
  gb.ddelta = new_output_like(op.delta);
  if (op.z.defined()) gb.dz = new_output_like(op.z);
  if (op.init.defined()) gb.dinit = new_output({g.batch, g.dim, g.dstate}, sopt);
  gb.dA_part = new_output({g.batch, g.dim, g.dstate}, sopt);
  gb.dD_part = new_output({g.batch, g.dim}, sopt);
  gb.dbias_part = new_output({g.batch, g.dim}, sopt);
  const int64_t bpg = cpu::blocks_per_group(g.dim, g.groups);
  gb.slices = std::clamp<int64_t>((kTargetTasks + g.batch * g.groups - 1) / (g.batch * g.groups), 1, bpg);
  auto part = [&](bool var) {
    return var ? new_output({gb.slices, g.batch, g.groups, g.seqlen, g.dstate}, sopt)
               : new_output({g.batch, g.dim, g.dstate}, sopt);
  };
  gb.dB_part = part(g.var_B);
  gb.dC_part = part(g.var_C);

  auto* fn = g.var_B ? (g.var_C ? &backward_slice<S, true, true> : &backward_slice<S, true, false>)
                     : (g.var_C ? &backward_slice<S, false, true> : &backward_slice<S, false, false>);
  const int64_t slices = gb.slices;
  at::parallel_for(0, g.batch * g.groups * slices, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (g.groups * slices), group = (i / slices) % g.groups, s = i % slices;
      fn(op, gb, b, group, s, s * bpg / slices, (s + 1) * bpg / slices);
    }
  });
  at::Tensor dD = op.D.defined() ? gb.dD_part.sum(0) : at::Tensor();
  at::Tensor dbias = op.bias.defined() ? gb.dbias_part.sum(0) : at::Tensor();
  return {gb.du,
          gb.ddelta,
          gb.dA_part.sum(0),
          finish_bc_grad(gb.dB_part, B, g.var_B),
          finish_bc_grad(gb.dC_part, C, g.var_C),
          dD,
          gb.dz,
          dbias,
          gb.dinit};
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> scan_forward(const at::Tensor& u, const at::Tensor& delta,
                                                            const at::Tensor& A, const at::Tensor& B,
                                                            const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                                            const OptTensor& delta_bias, bool delta_softplus,
                                                            const OptTensor& initial_state, bool return_last_state,
                                                            const OptTensor& seq_idx, const ScanGeometry& g,
                                                            bool save_checkpoints) {
  if (compute_dtype(u) == at::kDouble) {
    return forward_impl(
        ScanOperands<double>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g),
        return_last_state, save_checkpoints);
  }
  return forward_impl(
      ScanOperands<float>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g),
      return_last_state, save_checkpoints);
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> selective_scan_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                                      const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                                      const OptTensor& z, const OptTensor& delta_bias,
                                                      bool delta_softplus, const OptTensor& initial_state,
                                                      bool return_last_state, const OptTensor& seq_idx) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx);
  auto [out, last, ck] = scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                      return_last_state, seq_idx, g, false);
  return {out, last};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> selective_scan_fwd_cpu(
    const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
    const OptTensor& D, const OptTensor& z, const OptTensor& delta_bias, bool delta_softplus,
    const OptTensor& initial_state, bool return_last_state, const OptTensor& seq_idx) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx);
  return scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx, g,
                      true);
}

ScanGrads selective_scan_backward_cpu(const at::Tensor& dout, const OptTensor& dlast_state, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                      const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                      const OptTensor& delta_bias, bool delta_softplus, const OptTensor& initial_state,
                                      const OptTensor& seq_idx, const OptTensor& checkpoints) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx);
  constexpr const char* kOp = "selective_scan_backward";
  if (checkpoints && checkpoints->numel() > 0) {
    check_sizes(*checkpoints, {g.batch, g.dim, num_segments(g.seqlen), g.dstate}, kOp, "checkpoints",
                "(batch, dim, ceil(seqlen / 256), dstate) from selective_scan_fwd");
    check_dtype(*checkpoints, compute_dtype(u), kOp, "checkpoints");
    check_device(*checkpoints, u, kOp, "checkpoints");
  }
  check_sizes(dout, u.sizes(), kOp, "dout", "(batch, dim, seqlen) like u");
  check_floating(dout, kOp, "dout");
  check_device(dout, u, kOp, "dout");
  if (dlast_state && dlast_state->defined() && dlast_state->numel() > 0) {
    check_sizes(*dlast_state, {g.batch, g.dim, g.dstate}, kOp, "dlast_state", "(batch, dim, dstate)");
    check_device(*dlast_state, u, kOp, "dlast_state");
  }
  if (compute_dtype(u) == at::kDouble) {
    return backward_impl(
        ScanOperands<double>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g), dout,
        dlast_state, checkpoints, B, C);
  }
  return backward_impl(
      ScanOperands<float>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g), dout,
      dlast_state, checkpoints, B, C);
}

}  // namespace mft
