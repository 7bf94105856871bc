// Chunked SSD (Mamba-2's "state space duality"): the sequence is cut into chunks of Q steps; inside a
// chunk the scan is a masked attention-like product computed with matmuls, and only one (p, n) state per
// head crosses each chunk boundary. Per chunk c, head i, positions t, s in the chunk, a = dt' A and
// cs = cumsum(a) within the chunk:
//   Y_diag[t]   = sum_{s<=t} (C_t . B_s) exp(cs_t - cs_s) dt'_s x_s        (intra-chunk, matmul)
//   states_c    = sum_s exp(cs_end - cs_s) dt'_s x_s B_s^T                   (chunk's own state, matmul)
//   S_c         = exp(cs_end) S_{c-1} + states_c                             (one step per chunk)
//   Y_off[t]    = exp(cs_t) S_{c-1} C_t                                      (carried state, matmul)
//   y = Y_diag + Y_off + D x, out = y * silu(z).
// Documents (seq_idx) become segments: every product above is masked to pairs in the same segment.
// Work is O(L Q (n + p)) in matmuls instead of the recurrence's O(L p n) sequential steps.
// Written with ATen ops, it runs on any device; run under autograd it is also the backward (which
// recomputes the forward from the saved inputs: memory beyond inputs and outputs is one chunk pass).
#include "ops/ssd_scan.h"

#include "core/check.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>

#include <cmath>

namespace mft {
namespace {
// Zero-pads dimension 1 (seqlen) of t up to `padded`.
at::Tensor pad_seq(const at::Tensor& t, int64_t padded) {
  const int64_t extra = padded - t.size(1);
  if (extra == 0) return t;
  std::vector<int64_t> pad(2 * (t.dim() - 1), 0);  // (last dim lo, hi), ..., (dim 1 lo, hi)
  pad.back() = extra;
  return at::constant_pad_nd(t, pad, 0);
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> ssd_scan_chunked(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                                    const at::Tensor& B, const at::Tensor& C, int64_t chunk_size,
                                                    const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                                    const OptTensor& initial_states, const OptTensor& seq_idx,
                                                    bool dt_softplus, std::optional<at::ArrayRef<double>> dt_limit,
                                                    bool return_final_states) {
  const SsdGeometry g =
      check_ssd_scan_args(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, seq_idx, dt_limit);
  const at::ScalarType cd = compute_dtype(x);
  const int64_t b = g.batch, L = g.seqlen, h = g.heads, p = g.headdim, ng = g.groups, n = g.dstate;
  const int64_t hpg = h / ng;  // heads per group
  const int64_t Q = std::min(chunk_size, L), nc = (L + Q - 1) / Q, Lp = nc * Q;
  const auto opts = x.options().dtype(cd);

  // Padding steps (seq_idx < 0) of the input: every input there is replaced by 0 (a select, so that
  // whatever they hold reaches nothing, in value or gradient), which with dt' = 0 makes the step change no
  // state; its own segment then keeps that state 0, and its output is set to 0 at the end.
  const OptTensor pad = seq_idx ? OptTensor(seq_idx->lt(0)) : std::nullopt;  // (b, L)
  const at::Tensor zero = at::zeros({}, opts);
  auto unpadded = [&](const at::Tensor& t) {  // t (b, L, ...) with padding steps zeroed
    if (!pad) return t;
    std::vector<int64_t> shape(t.dim(), 1);
    shape[0] = b, shape[1] = L;
    return at::where(pad->view(shape), zero, t);
  };
  // dt' (b, L, h); steps padded up to whole chunks get dt' = 0 too: no decay, no input. (dt is replaced
  // before the softplus as well: its derivative at a NaN would be NaN, and 0 x NaN is not 0.)
  const at::Tensor d = unpadded(ssd_effective_dt(unpadded(dt), dt_bias, dt_softplus, g.dt_min, g.dt_max, cd));
  // x converted once: autograd would otherwise round each use's gradient to x's dtype before summing.
  const at::Tensor xc = unpadded(x.to(cd));
  const at::Tensor xq = pad_seq(xc, Lp).view({b, nc, Q, h, p});
  const at::Tensor dq = pad_seq(d, Lp).view({b, nc, Q, h}).permute({0, 1, 3, 2});  // (b, nc, h, Q)
  const at::Tensor Bq = pad_seq(unpadded(B.to(cd)), Lp).view({b, nc, Q, ng, n}).permute({0, 1, 3, 2, 4});
  const at::Tensor Cq = pad_seq(unpadded(C.to(cd)), Lp).view({b, nc, Q, ng, n}).permute({0, 1, 3, 2, 4});
  const at::Tensor cs = (dq * A.to(cd).view({1, 1, h, 1})).cumsum(-1);  // (b, nc, h, Q)
  const at::Tensor cs_end = cs.narrow(-1, Q - 1, 1);                    // (b, nc, h, 1)

  // Segments: seg_t counts the document starts up to t; padding continues the last segment.
  at::Tensor seg, seg_before;  // (b, nc, Q), (b, nc, 1): segment of the step before each chunk
  if (seq_idx) {
    at::Tensor starts = seq_idx->narrow(1, 1, L - 1).ne(seq_idx->narrow(1, 0, L - 1)).to(at::kLong);
    at::Tensor s = at::cat({at::zeros({b, 1}, starts.options()), starts.cumsum(1)}, 1);  // (b, L)
    if (Lp > L) s = at::cat({s, s.narrow(1, L - 1, 1).expand({b, Lp - L})}, 1);
    seg = s.view({b, nc, Q});
    seg_before = at::cat({at::zeros({b, 1}, s.options()), s.view({b, nc, Q}).select(2, Q - 1).narrow(1, 0, nc - 1)}, 1)
                     .unsqueeze(-1);
  }

  // Intra-chunk: M[t, s] = (C_t . B_s) exp(cs_t - cs_s) dt'_s for s <= t in the same segment.
  at::Tensor keep = at::ones({Q, Q}, opts.dtype(at::kBool)).tril();  // (Q, Q), [t, s]
  at::Tensor keep_h = keep.view({1, 1, 1, Q, Q});
  if (seq_idx) keep_h = keep_h.logical_and(seg.unsqueeze(-1).eq(seg.unsqueeze(-2)).unsqueeze(2));  // (b,nc,1,Q,Q)
  const at::Tensor decay =
      at::exp((cs.unsqueeze(-1) - cs.unsqueeze(-2)).masked_fill(keep_h.logical_not(), -INFINITY));  // (b,nc,h,Q,Q)
  const at::Tensor CB = at::matmul(Cq, Bq.transpose(-1, -2));                                       // (b, nc, g, Q, Q)
  const at::Tensor M =
      (CB.unsqueeze(3) * (decay * dq.unsqueeze(-2)).view({b, nc, ng, hpg, Q, Q})).view({b, nc, h, Q, Q});
  const at::Tensor xh = xq.permute({0, 1, 3, 2, 4});  // (b, nc, h, Q, p)
  at::Tensor y = at::matmul(M, xh);                   // (b, nc, h, Q, p)

  // Each chunk's own final state: sum_s w_s x_s B_s^T, w_s = exp(cs_end - cs_s) dt'_s (same segment as
  // the chunk's last step).
  at::Tensor w = at::exp(cs_end - cs) * dq;  // (b, nc, h, Q)
  if (seq_idx) w = w * seg.eq(seg.narrow(-1, Q - 1, 1)).unsqueeze(2).to(cd);
  const at::Tensor xw = (xh * w.unsqueeze(-1)).view({b, nc, ng, hpg, Q, p}).permute({0, 1, 2, 3, 5, 4});
  const at::Tensor states =
      at::matmul(xw.reshape({b, nc, ng, hpg * p, Q}), Bq).view({b, nc, h, p, n});  // (b, nc, h, p, n)

  // Pass states across chunks (sequential, nc steps): S_c = exp(cs_end) S_{c-1} + states_c.
  at::Tensor carry = at::exp(cs_end.squeeze(-1));  // (b, nc, h)
  if (seq_idx) carry = carry * seg.narrow(-1, Q - 1, 1).eq(seg_before).to(cd);
  at::Tensor S = initial_states ? initial_states->to(cd) : at::zeros({b, h, p, n}, opts);
  // The initial state belongs to the document of t = 0: dropped when that is padding.
  if (initial_states && pad) S = at::where(pad->select(1, 0).view({b, 1, 1, 1}), zero, S);
  std::vector<at::Tensor> before;  // state entering each chunk
  before.reserve(nc);
  for (int64_t c = 0; c < nc; ++c) {
    before.push_back(S);
    S = S * carry.select(1, c).view({b, h, 1, 1}) + states.select(1, c);
  }
  const at::Tensor S_in = at::stack(before, 1);  // (b, nc, h, p, n)

  // Carried state read by every step: exp(cs_t) S_in C_t (steps in the chunk's first segment only).
  at::Tensor in_scale = at::exp(cs);  // (b, nc, h, Q)
  if (seq_idx) in_scale = in_scale * seg.eq(seg_before).unsqueeze(2).to(cd);
  const at::Tensor y_off = at::matmul(Cq, S_in.view({b, nc, ng, hpg * p, n}).transpose(-1, -2))  // (b,nc,g,Q,hpg*p)
                               .view({b, nc, ng, Q, hpg, p})
                               .permute({0, 1, 2, 4, 3, 5})
                               .reshape({b, nc, h, Q, p});
  y = y + y_off * in_scale.unsqueeze(-1);

  y = y.permute({0, 1, 3, 2, 4}).reshape({b, Lp, h, p}).narrow(1, 0, L);  // (b, L, h, p)
  if (D) y = y + (D->dim() == 1 ? D->to(cd).unsqueeze(-1) : D->to(cd)) * xc;
  if (z) y = y * at::silu(unpadded(z->to(cd)));
  y = unpadded(y);
  at::Tensor final_states = return_final_states ? S : at::empty({0}, opts);
  return {y.to(x.scalar_type()).contiguous(), final_states};
}

SsdGrads ssd_scan_backward_chunked(const at::Tensor& dout, const OptTensor& dfinal_states, const at::Tensor& x,
                                   const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                                   int64_t chunk_size, const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                   const OptTensor& initial_states, const OptTensor& seq_idx, bool dt_softplus,
                                   std::optional<at::ArrayRef<double>> dt_limit) {
  TORCH_CHECK(dout.sizes() == x.sizes(), "ssd_scan_backward: dout must have the shape of x ", shape_str(x.sizes()),
              "; got ", shape_str(dout.sizes()));
  // Recompute the forward with autograd recording (the dispatcher may have excluded the autograd keys
  // on the way here) and differentiate it; autocast stays off so the recomputation matches the forward.
  c10::impl::ForceDispatchKeyGuard keys(c10::impl::tls_local_dispatch_key_set().included_,
                                        c10::autocast_dispatch_keyset);
  at::AutoGradMode grad_mode(true);
  auto leaf = [](const at::Tensor& t) { return t.detach().requires_grad_(true); };
  auto opt_leaf = [&](const OptTensor& t) { return t ? OptTensor(leaf(*t)) : std::nullopt; };
  const at::Tensor xl = leaf(x), dtl = leaf(dt), Al = leaf(A), Bl = leaf(B), Cl = leaf(C);
  const OptTensor Dl = opt_leaf(D), zl = opt_leaf(z), biasl = opt_leaf(dt_bias), initl = opt_leaf(initial_states);
  const bool want_final = dfinal_states && dfinal_states->defined() && dfinal_states->numel() > 0;
  auto [out, final_states] = ssd_scan_chunked(xl, dtl, Al, Bl, Cl, chunk_size, Dl, zl, biasl, initl, seq_idx,
                                              dt_softplus, dt_limit, want_final);
  std::vector<at::Tensor> outputs{out}, grads{dout};
  if (want_final) {
    outputs.push_back(final_states);
    grads.push_back(*dfinal_states);
  }
  std::vector<at::Tensor> inputs{xl, dtl, Al, Bl, Cl};
  for (const OptTensor* t : {&Dl, &zl, &biasl, &initl}) {
    if (*t) inputs.push_back(**t);
  }
  const auto gi = torch::autograd::grad(outputs, inputs, grads, /*retain_graph=*/false, /*create_graph=*/false,
                                        /*allow_unused=*/true);
  size_t k = 5;
  auto next = [&](const OptTensor& t) { return t ? gi[k++] : at::Tensor(); };
  at::Tensor dD = next(Dl), dz = next(zl), dbias = next(biasl), dinit = next(initl);
  return {gi[0], gi[1], gi[2], gi[3], gi[4], dD, dz, dbias, dinit};
}

}  // namespace mft
