// Optimised CPU kernels of mft::selective_scan (forward and backward).
//
// Work unit: one ChannelBlock = kLanes channels of one batch row sharing B/C. The state x (dstate lane
// vectors) lives in a small local array; time runs in chunks of kChunk steps whose inputs are first
// converted to fp32 lane vectors. The inner loop does, per (t, n), one vectorised exp and three FMAs:
// no per-timestep ATen calls, no (B, D, L, N) tensor.
// Backward: per block, a forward pass keeps the state at every chunk start (L/kChunk states per block,
// local to the task); chunks are then processed in reverse, recomputing states and exp(delta A) inside
// the chunk, and running the adjoint recurrence G_t = dy_t C_t + exp(delta_{t+1} A) G_{t+1}.
// dB/dC (shared by the channels of a group) are summed into per-slice buffers in a fixed order, so the
// result is deterministic and independent of the thread count; no atomics.
#include "core/check.h"
#include "core/output.h"
#include "ops/scan_blocks.h"
#include "ops/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

namespace mft {
namespace {
using cpu::ChannelBlock;
using simd::kLanes;
using simd::splat;
using simd::Vec;

// Timesteps per chunk: 64 steps x dstate 16 x 64 B = 64 KiB of states per chunk buffer, L2-resident.
constexpr int64_t kChunk = 64;
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
  at::Tensor u, delta, z;   // (B, D, L), their own dtypes
  at::Tensor A;             // (D, N)
  at::Tensor Bt, Ct;        // time-varying: (B, G, L, N) compute dtype; time-invariant: (D, N)
  at::Tensor D, bias, init, seq_idx;
  bool softplus = false;

  ScanOperands(const at::Tensor& u_, const at::Tensor& delta_, const at::Tensor& A_, const at::Tensor& B_,
               const at::Tensor& C_, const OptTensor& D_, const OptTensor& z_, const OptTensor& bias_,
               bool softplus_, const OptTensor& init_, const OptTensor& seq_idx_, const ScanGeometry& g)
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
  const int32_t* seq_row(int64_t b) const {
    return seq_idx.defined() ? seq_idx.const_data_ptr<int32_t>() + b * geo.seqlen : nullptr;
  }
};

// Per-block constants: A, time-invariant B/C, D and delta_bias as lane vectors.
template <typename S>
struct BlockParams {
  using V = Vec<S>;
  std::vector<V> A, B, C;
  V D{}, bias{};
  BlockParams(const ScanOperands<S>& op, const ChannelBlock& blk) {
    const int64_t N = op.geo.dstate;
    A.resize(N);
    cpu::gather_param<S>(op.ptr(op.A), blk, N, N, A.data());
    if (!op.geo.var_B) { B.resize(N); cpu::gather_param<S>(op.ptr(op.Bt), blk, N, N, B.data()); }
    if (!op.geo.var_C) { C.resize(N); cpu::gather_param<S>(op.ptr(op.Ct), blk, N, N, C.data()); }
    cpu::gather_param<S>(op.ptr(op.D), blk, 1, 1, &D);
    cpu::gather_param<S>(op.ptr(op.bias), blk, 1, 1, &bias);
  }
};

// Loads u and delta' = softplus(delta + bias) for one chunk; raw keeps delta + bias (for the backward).
template <typename S>
void load_u_dt(const ScanOperands<S>& op, const BlockParams<S>& p, const ChannelBlock& blk, int64_t t0,
               int64_t T, Vec<S>* ub, Vec<S>* dtb, Vec<S>* raw) {
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
template <typename S, bool kVarB, bool kVarC>
void forward_block(const ScanOperands<S>& op, const ChannelBlock& blk, at::Tensor& out, S* last) {
  using V = Vec<S>;
  const int64_t N = op.geo.dstate, L = op.geo.seqlen;
  const BlockParams<S> p(op, blk);
  std::vector<V> x(N);
  cpu::gather_param<S>(op.ptr(op.init) ? op.ptr(op.init) + blk.b * op.geo.dim * N : nullptr, blk, N, N, x.data());
  const S* Bg = kVarB ? op.ptr(op.Bt) + op.row_offset(blk) : nullptr;  // (L, N)
  const S* Cg = kVarC ? op.ptr(op.Ct) + op.row_offset(blk) : nullptr;
  const int32_t* sidx = op.seq_row(blk.b);
  alignas(64) V ub[kChunk], dtb[kChunk], zb[kChunk], yb[kChunk];
  for (int64_t t0 = 0; t0 < L; t0 += kChunk) {
    const int64_t T = std::min(kChunk, L - t0);
    load_u_dt(op, p, blk, t0, T, ub, dtb, nullptr);
    if (op.z.defined()) {
      cpu::gather_chunk<S>(op.z, blk, t0, T, zb);
      for (int64_t t = 0; t < T; ++t) zb[t] = simd::vsilu(zb[t]);
    }
    for (int64_t t = 0; t < T; ++t) {
      if (op.reset_at(sidx, t0 + t)) std::fill(x.begin(), x.end(), V{});
      const V dt = dtb[t], du = dt * ub[t];
      V y = p.D * ub[t];
      const S* Brow = kVarB ? Bg + (t0 + t) * N : nullptr;
      const S* Crow = kVarC ? Cg + (t0 + t) * N : nullptr;
      for (int64_t n = 0; n < N; ++n) {
        const V bn = kVarB ? splat<V>(Brow[n]) : p.B[n];
        const V cn = kVarC ? splat<V>(Crow[n]) : p.C[n];
        x[n] = simd::vexp(dt * p.A[n]) * x[n] + du * bn;
        y += cn * x[n];
      }
      yb[t] = op.z.defined() ? y * zb[t] : y;
    }
    cpu::scatter_chunk<S>(yb, blk, t0, T, out);
  }
  if (last) cpu::scatter_param<S>(x.data(), blk, N, N, last + blk.b * op.geo.dim * N);
}

template <typename S>
std::tuple<at::Tensor, at::Tensor> forward_impl(const ScanOperands<S>& op, bool return_last_state) {
  const ScanGeometry& g = op.geo;
  at::Tensor out = new_output(op.u.sizes(), op.u.options());
  constexpr auto cd = c10::CppTypeToScalarType<S>::value;
  at::Tensor last = return_last_state ? new_output({g.batch, g.dim, g.dstate}, op.u.options().dtype(cd))
                                      : at::empty({0}, op.u.options().dtype(cd));
  S* last_ptr = return_last_state ? last.mutable_data_ptr<S>() : nullptr;
  const int64_t bpg = cpu::blocks_per_group(g.dim, g.groups);
  auto* fn = g.var_B ? (g.var_C ? &forward_block<S, true, true> : &forward_block<S, true, false>)
                     : (g.var_C ? &forward_block<S, false, true> : &forward_block<S, false, false>);
  at::parallel_for(0, g.batch * g.groups * bpg, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const ChannelBlock blk = cpu::channel_block(i / (g.groups * bpg), (i / bpg) % g.groups, i % bpg, g.dim, g.groups);
      fn(op, blk, out, last_ptr);
    }
  });
  return {out, last};
}

// ---------------------------------------------------------------------------------------------------
// Backward
template <typename S>
struct ScanGradBuffers {
  at::Tensor dout, dlast;                  // (B, D, L) out dtype; (B, D, N) or undefined
  at::Tensor du, ddelta, dz;               // like u, delta, z
  at::Tensor dA_part, dD_part, dbias_part; // (B, D, N), (B, D), (B, D): summed over batch at the end
  at::Tensor dB_part, dC_part;             // time-varying: (slices, B, G, L, N); invariant: (B, D, N)
  at::Tensor dinit;                        // (B, D, N)
  int64_t slices = 1;
};

template <typename S, bool kVarB, bool kVarC>
void backward_block(const ScanOperands<S>& op, const ChannelBlock& blk, int64_t slice, ScanGradBuffers<S>& gb) {
  using V = Vec<S>;
  const ScanGeometry& g = op.geo;
  const int64_t N = g.dstate, L = g.seqlen, nchunks = (L + kChunk - 1) / kChunk;
  const BlockParams<S> p(op, blk);
  const S* Bg = kVarB ? op.ptr(op.Bt) + op.row_offset(blk) : nullptr;
  const S* Cg = kVarC ? op.ptr(op.Ct) + op.row_offset(blk) : nullptr;
  const int64_t part_offset = (slice * g.batch * g.groups) * L * N + op.row_offset(blk);
  S* dBg = kVarB ? gb.dB_part.template mutable_data_ptr<S>() + part_offset : nullptr;  // (L, N)
  S* dCg = kVarC ? gb.dC_part.template mutable_data_ptr<S>() + part_offset : nullptr;
  const int32_t* sidx = op.seq_row(blk.b);
  const bool has_z = op.z.defined();

  // Pass 1: the state before every chunk.
  std::vector<V> ck(nchunks * N);
  cpu::gather_param<S>(op.ptr(op.init) ? op.ptr(op.init) + blk.b * g.dim * N : nullptr, blk, N, N, ck.data());
  alignas(64) V ub[kChunk], dtb[kChunk], raw[kChunk], zb[kChunk], gob[kChunk], yb[kChunk];
  {
    std::vector<V> x(ck.begin(), ck.begin() + N);
    for (int64_t c = 0; c + 1 < nchunks; ++c) {
      const int64_t t0 = c * kChunk;
      load_u_dt(op, p, blk, t0, kChunk, ub, dtb, nullptr);
      for (int64_t t = 0; t < kChunk; ++t) {
        if (op.reset_at(sidx, t0 + t)) std::fill(x.begin(), x.end(), V{});
        const V dt = dtb[t], du = dt * ub[t];
        const S* Brow = kVarB ? Bg + (t0 + t) * N : nullptr;
        for (int64_t n = 0; n < N; ++n) {
          const V bn = kVarB ? splat<V>(Brow[n]) : p.B[n];
          x[n] = simd::vexp(dt * p.A[n]) * x[n] + du * bn;
        }
      }
      std::copy(x.begin(), x.end(), ck.begin() + (c + 1) * N);
    }
  }

  // Pass 2: chunks in reverse.
  std::vector<V> H(kChunk * N), E(kChunk * N), carry(N), dA(N), dBc(kVarB ? 0 : N), dCc(kVarC ? 0 : N);
  if (gb.dlast.defined()) cpu::gather_param<S>(gb.dlast.template const_data_ptr<S>() + blk.b * g.dim * N, blk, N, N, carry.data());
  V dD{}, dbias{};
  for (int64_t c = nchunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk, T = std::min(kChunk, L - t0);
    load_u_dt(op, p, blk, t0, T, ub, dtb, raw);
    if (has_z) cpu::gather_chunk<S>(op.z, blk, t0, T, zb);
    cpu::gather_chunk<S>(gb.dout, blk, t0, T, gob);
    // Recompute states, exp(delta A) and the pre-gate output inside the chunk.
    {
      const V* xprev = &ck[c * N];
      for (int64_t t = 0; t < T; ++t) {
        const bool reset = op.reset_at(sidx, t0 + t);
        const V dt = dtb[t], du = dt * ub[t];
        V y = p.D * ub[t];
        const S* Brow = kVarB ? Bg + (t0 + t) * N : nullptr;
        const S* Crow = kVarC ? Cg + (t0 + t) * N : nullptr;
        for (int64_t n = 0; n < N; ++n) {
          const V bn = kVarB ? splat<V>(Brow[n]) : p.B[n];
          const V cn = kVarC ? splat<V>(Crow[n]) : p.C[n];
          const V e = simd::vexp(dt * p.A[n]);
          const V h = e * (reset ? V{} : xprev[n]) + du * bn;
          E[t * N + n] = e;
          H[t * N + n] = h;
          y += cn * h;
        }
        yb[t] = y;
        xprev = &H[t * N];
      }
    }
    // Adjoint recurrence, t descending. Reuses ub/dtb/zb/gob slots for du, ddelta, dz once read.
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t tt = t0 + t;
      const bool reset = op.reset_at(sidx, tt);
      V dy = gob[t];
      if (has_z) {
        const V zt = zb[t], sg = simd::vsigmoid(zt);
        dy = gob[t] * (zt * sg);
        zb[t] = gob[t] * yb[t] * sg * (S(1) + zt * (S(1) - sg));  // dz
      }
      const V dt = dtb[t], uv = ub[t];
      V du = dy * p.D, ddt{};
      dD += dy * uv;
      const V* hprev = t > 0 ? &H[(t - 1) * N] : &ck[c * N];
      const S* Brow = kVarB ? Bg + tt * N : nullptr;
      const S* Crow = kVarC ? Cg + tt * N : nullptr;
      for (int64_t n = 0; n < N; ++n) {
        const V bn = kVarB ? splat<V>(Brow[n]) : p.B[n];
        const V cn = kVarC ? splat<V>(Crow[n]) : p.C[n];
        const V G = carry[n] + dy * cn;  // dLoss/dx_t
        const V dyh = dy * H[t * N + n];
        if constexpr (kVarC) dCg[tt * N + n] += simd::hsum(dyh); else dCc[n] += dyh;
        const V gdt = G * dt;
        du += gdt * bn;
        if constexpr (kVarB) dBg[tt * N + n] += simd::hsum(gdt * uv); else dBc[n] += gdt * uv;
        ddt += G * uv * bn;
        if (reset) {
          carry[n] = V{};
        } else {
          const V e = E[t * N + n];
          const V ah = G * e * hprev[n];  // dLoss/d(delta A) through x_{t-1}
          ddt += ah * p.A[n];
          dA[n] += ah * dt;
          carry[n] = G * e;
        }
      }
      if (op.softplus) {
        const V r = raw[t];
        const V sg = simd::vsigmoid(r);
        ddt = ddt * (r > S(kSoftplusThreshold) ? splat<V>(S(1)) : sg);
      }
      dbias += ddt;
      ub[t] = du;
      dtb[t] = ddt;
    }
    cpu::scatter_chunk<S>(ub, blk, t0, T, gb.du);
    cpu::scatter_chunk<S>(dtb, blk, t0, T, gb.ddelta);
    if (has_z) cpu::scatter_chunk<S>(zb, blk, t0, T, gb.dz);
  }
  const int64_t bN = blk.b * g.dim * N;
  if (gb.dinit.defined()) cpu::scatter_param<S>(carry.data(), blk, N, N, gb.dinit.template mutable_data_ptr<S>() + bN);
  cpu::scatter_param<S>(dA.data(), blk, N, N, gb.dA_part.template mutable_data_ptr<S>() + bN);
  if (!kVarB) cpu::scatter_param<S>(dBc.data(), blk, N, N, gb.dB_part.template mutable_data_ptr<S>() + bN);
  if (!kVarC) cpu::scatter_param<S>(dCc.data(), blk, N, N, gb.dC_part.template mutable_data_ptr<S>() + bN);
  cpu::scatter_param<S>(&dD, blk, 1, 1, gb.dD_part.template mutable_data_ptr<S>() + blk.b * g.dim);
  cpu::scatter_param<S>(&dbias, blk, 1, 1, gb.dbias_part.template mutable_data_ptr<S>() + blk.b * g.dim);
}

// dB/dC partials (slices, B, G, L, N) or (B, D, N) -> the layout and dtype of the input B/C.
at::Tensor finish_bc_grad(const at::Tensor& part, const at::Tensor& like, bool var) {
  if (!var) return part.sum(0).to(like.scalar_type());                   // (D, N)
  at::Tensor g = part.sum(0).transpose(2, 3);                            // (B, G, N, L)
  if (like.dim() == 3) g = g.squeeze(1);
  return g.to(like.scalar_type()).contiguous();
}

template <typename S>
ScanGrads backward_impl(const ScanOperands<S>& op, const at::Tensor& dout, const OptTensor& dlast,
                        const at::Tensor& B, const at::Tensor& C) {
  const ScanGeometry& g = op.geo;
  constexpr auto cd = c10::CppTypeToScalarType<S>::value;
  const auto sopt = op.u.options().dtype(cd);
  ScanGradBuffers<S> gb;
  gb.dout = dout.contiguous();
  if (dlast && dlast->defined() && dlast->numel() > 0) gb.dlast = dlast->to(cd).contiguous();
  gb.du = new_output_like(op.u);
  gb.ddelta = new_output_like(op.delta);
  if (op.z.defined()) gb.dz = new_output_like(op.z);
  if (op.init.defined()) gb.dinit = new_output({g.batch, g.dim, g.dstate}, sopt);
  gb.dA_part = at::empty({g.batch, g.dim, g.dstate}, sopt);
  gb.dD_part = at::empty({g.batch, g.dim}, sopt);
  gb.dbias_part = at::empty({g.batch, g.dim}, sopt);
  const int64_t bpg = cpu::blocks_per_group(g.dim, g.groups);
  gb.slices = std::clamp<int64_t>((kTargetTasks + g.batch * g.groups - 1) / (g.batch * g.groups), 1, bpg);
  auto part = [&](bool var) {
    return var ? at::zeros({gb.slices, g.batch, g.groups, g.seqlen, g.dstate}, sopt)
               : at::empty({g.batch, g.dim, g.dstate}, sopt);
  };
  gb.dB_part = part(g.var_B);
  gb.dC_part = part(g.var_C);

  auto* fn = g.var_B ? (g.var_C ? &backward_block<S, true, true> : &backward_block<S, true, false>)
                     : (g.var_C ? &backward_block<S, false, true> : &backward_block<S, false, false>);
  const int64_t slices = gb.slices;
  at::parallel_for(0, g.batch * g.groups * slices, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (g.groups * slices), group = (i / slices) % g.groups, s = i % slices;
      for (int64_t j = s * bpg / slices; j < (s + 1) * bpg / slices; ++j) {
        fn(op, cpu::channel_block(b, group, j, g.dim, g.groups), s, gb);
      }
    }
  });
  at::Tensor dD = op.D.defined() ? gb.dD_part.sum(0) : at::Tensor();
  at::Tensor dbias = op.bias.defined() ? gb.dbias_part.sum(0) : at::Tensor();
  return {gb.du, gb.ddelta, gb.dA_part.sum(0), finish_bc_grad(gb.dB_part, B, g.var_B),
          finish_bc_grad(gb.dC_part, C, g.var_C), dD, gb.dz, dbias, gb.dinit};
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> selective_scan_cpu(const at::Tensor& u, const at::Tensor& delta,
                                                      const at::Tensor& A, const at::Tensor& B,
                                                      const at::Tensor& C, const OptTensor& D,
                                                      const OptTensor& z, const OptTensor& delta_bias,
                                                      bool delta_softplus, const OptTensor& initial_state,
                                                      bool return_last_state, const OptTensor& seq_idx) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx);
  if (compute_dtype(u) == at::kDouble) {
    return forward_impl(ScanOperands<double>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g),
                        return_last_state);
  }
  return forward_impl(ScanOperands<float>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g),
                      return_last_state);
}

ScanGrads selective_scan_backward_cpu(const at::Tensor& dout, const OptTensor& dlast_state, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                      const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                      const OptTensor& delta_bias, bool delta_softplus,
                                      const OptTensor& initial_state, const OptTensor& seq_idx) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx);
  check_sizes(dout, u.sizes(), "selective_scan_backward", "dout", "(batch, dim, seqlen) like u");
  if (dlast_state && dlast_state->defined() && dlast_state->numel() > 0) {
    check_sizes(*dlast_state, {g.batch, g.dim, g.dstate}, "selective_scan_backward", "dlast_state",
                "(batch, dim, dstate)");
  }
  if (compute_dtype(u) == at::kDouble) {
    return backward_impl(ScanOperands<double>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g),
                         dout, dlast_state, B, C);
  }
  return backward_impl(ScanOperands<float>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, seq_idx, g),
                       dout, dlast_state, B, C);
}

}  // namespace mft
