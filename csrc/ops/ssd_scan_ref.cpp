// Plain reference of mft::ssd_scan and mft::ssd_state_update: the test oracle and the eager baseline.
// Reads like the math: one loop over time of ATen ops; differentiable through ATen's autograd.
#include "ops/ssd_scan.h"

#include "core/check.h"

#include <ATen/ATen.h>

#include <cmath>

namespace mft::reference {
namespace {
// dt' = clamp(softplus(dt + dt_bias)), any shape ending in heads. Written again here rather than calling
// ssd_effective_dt: the oracle shares no code with the kernels it checks.
at::Tensor effective_dt(const at::Tensor& dt, at::ScalarType cd, const OptTensor& dt_bias, bool dt_softplus, double lo,
                        double hi) {
  at::Tensor d = dt.to(cd);
  if (dt_bias) d = d + dt_bias->to(cd);
  if (dt_softplus) d = at::softplus(d);
  return std::isinf(hi) ? at::clamp_min(d, lo) : at::clamp(d, lo, hi);
}

// (..., groups, n) -> (..., heads, n): head i reads group i / (heads / groups).
at::Tensor per_head(const at::Tensor& bc, int64_t heads) {
  const int64_t groups = bc.size(-2);
  return bc.repeat_interleave(heads / groups, bc.dim() - 2);
}

// D (h,) or (h, p) as something that broadcasts against (..., h, p).
at::Tensor D_bcast(const at::Tensor& D, at::ScalarType cd) {
  return D.dim() == 1 ? D.to(cd).unsqueeze(-1) : D.to(cd);
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> ssd_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                            const at::Tensor& B, const at::Tensor& C, int64_t chunk_size,
                                            const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                            const OptTensor& initial_states, const OptTensor& seq_idx, bool dt_softplus,
                                            std::optional<at::ArrayRef<double>> dt_limit, bool return_final_states) {
  const SsdGeometry g =
      check_ssd_scan_args(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, seq_idx, dt_limit);
  const at::ScalarType cd = compute_dtype(x);
  const at::Tensor xc = x.to(cd);                                                       // (b, L, h, p)
  const at::Tensor d = effective_dt(dt, cd, dt_bias, dt_softplus, g.dt_min, g.dt_max);  // (b, L, h)
  const at::Tensor Bh = per_head(B.to(cd), g.heads), Ch = per_head(C.to(cd), g.heads);  // (b, L, h, n)
  const at::Tensor Ac = A.to(cd);                                                       // (h,)

  at::Tensor S = initial_states ? initial_states->to(cd)
                                : at::zeros({g.batch, g.heads, g.headdim, g.dstate}, x.options().dtype(cd));
  std::vector<at::Tensor> ys;
  ys.reserve(g.seqlen);
  const at::Tensor zero = at::zeros({}, x.options().dtype(cd));
  for (int64_t t = 0; t < g.seqlen; ++t) {
    if (seq_idx && t > 0) {  // a new document starts: forget the state
      const at::Tensor same = seq_idx->select(1, t).eq(seq_idx->select(1, t - 1));  // (b,)
      S = S * same.to(cd).view({g.batch, 1, 1, 1});
    }
    const at::Tensor d_t = d.select(1, t).view({g.batch, g.heads, 1, 1});
    const at::Tensor x_t = xc.select(1, t).unsqueeze(-1);                  // (b, h, p, 1)
    const at::Tensor B_t = Bh.select(1, t).unsqueeze(2);                   // (b, h, 1, n)
    S = at::exp(d_t * Ac.view({1, g.heads, 1, 1})) * S + d_t * x_t * B_t;  // (b, h, p, n)
    // Padding: no state (the initial state too is dropped when t = 0 is padding).
    if (seq_idx) S = at::where(seq_idx->select(1, t).lt(0).view({g.batch, 1, 1, 1}), zero, S);
    ys.push_back((S * Ch.select(1, t).unsqueeze(2)).sum(-1));  // (b, h, p)
  }
  at::Tensor y = at::stack(ys, 1);  // (b, L, h, p)
  if (D) y = y + D_bcast(*D, cd) * xc;
  if (z) y = y * at::silu(z->to(cd));
  if (seq_idx) y = at::where(seq_idx->lt(0).view({g.batch, g.seqlen, 1, 1}), zero, y);  // padding outputs 0
  at::Tensor final_states = return_final_states ? S : at::empty({0}, x.options().dtype(cd));
  return {y.to(x.scalar_type()), final_states};
}

at::Tensor ssd_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                            const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                            const OptTensor& dt_bias, bool dt_softplus, std::optional<at::ArrayRef<double>> dt_limit) {
  check_ssd_state_update_args(state, x, dt, A, B, C, D, z, dt_bias);
  const double lo = dt_limit ? (*dt_limit)[0] : 0.0;
  const double hi = dt_limit ? (*dt_limit)[1] : INFINITY;
  const at::ScalarType cd = compute_dtype(x);
  const int64_t heads = x.size(1);
  const at::Tensor d = effective_dt(dt, cd, dt_bias, dt_softplus, lo, hi).unsqueeze(-1).unsqueeze(-1);  // (b,h,1,1)
  const at::Tensor xc = x.to(cd);
  const at::Tensor Bh = per_head(B.to(cd), heads).unsqueeze(2), Ch = per_head(C.to(cd), heads).unsqueeze(2);
  state.copy_(at::exp(d * A.to(cd).view({1, heads, 1, 1})) * state + d * xc.unsqueeze(-1) * Bh);
  at::Tensor y = (state * Ch).sum(-1);  // (b, h, p)
  if (D) y = y + D_bcast(*D, cd) * xc;
  if (z) y = y * at::silu(z->to(cd));
  return y.to(x.scalar_type());
}

}  // namespace mft::reference
