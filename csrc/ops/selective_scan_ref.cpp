// Plain reference of mft::selective_scan: the test oracle and the eager baseline of the benchmark.
// Reads like the math; one loop over time of ATen ops. Differentiable through ATen's autograd.
#include "ops/selective_scan.h"

#include "core/check.h"

#include <ATen/ATen.h>

namespace mft::reference {
namespace {
// B or C at time t as (batch, dim, dstate), from (D, N), (B, N, L) or (B, G, N, L).
at::Tensor bc_at(const at::Tensor& bc, int64_t t, int64_t batch, int64_t dim) {
  if (bc.dim() == 2) return bc.unsqueeze(0).expand({batch, dim, bc.size(1)});
  const at::Tensor bc4 = bc.dim() == 3 ? bc.unsqueeze(1) : bc;  // (B, G, N, L)
  const int64_t groups = bc4.size(1), dstate = bc4.size(2);
  const at::Tensor now = bc4.select(3, t);  // (B, G, N)
  return now.unsqueeze(2).expand({batch, groups, dim / groups, dstate}).reshape({batch, dim, dstate});
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> selective_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                                  const OptTensor& z, const OptTensor& delta_bias, bool delta_softplus,
                                                  const OptTensor& initial_state, bool return_last_state,
                                                  const OptTensor& seq_idx) {
  const ScanGeometry g = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state, seq_idx);
  const at::ScalarType cd = compute_dtype(u);
  const at::Tensor uc = u.to(cd);  // (B, D, L)
  at::Tensor dt = delta.to(cd);    // (B, D, L)
  if (delta_bias) dt = dt + delta_bias->to(cd).unsqueeze(-1);
  if (delta_softplus) dt = at::softplus(dt);
  const at::Tensor Bc = B.to(cd), Cc = C.to(cd), Ac = A.to(cd);

  at::Tensor x = initial_state ? initial_state->to(cd)
                               : at::zeros({g.batch, g.dim, g.dstate}, u.options().dtype(cd));  // (B, D, N)
  std::vector<at::Tensor> ys;
  ys.reserve(g.seqlen);
  const at::Tensor zero = at::zeros({}, u.options().dtype(cd));
  for (int64_t t = 0; t < g.seqlen; ++t) {
    if (seq_idx && t > 0) {  // a new document starts: forget the state
      const at::Tensor same = seq_idx->select(1, t).eq(seq_idx->select(1, t - 1));  // (B,)
      x = x * same.to(cd).view({g.batch, 1, 1});
    }
    const at::Tensor dt_t = dt.select(2, t).unsqueeze(-1);                   // (B, D, 1)
    const at::Tensor u_t = uc.select(2, t).unsqueeze(-1);                    // (B, D, 1)
    x = at::exp(dt_t * Ac) * x + dt_t * u_t * bc_at(Bc, t, g.batch, g.dim);  // (B, D, N)
    // Padding: no state (the initial state too is dropped when t = 0 is padding).
    if (seq_idx) x = at::where(seq_idx->select(1, t).lt(0).view({g.batch, 1, 1}), zero, x);
    ys.push_back((x * bc_at(Cc, t, g.batch, g.dim)).sum(-1));  // (B, D)
  }
  at::Tensor y = at::stack(ys, 2);  // (B, D, L)
  if (D) y = y + D->to(cd).unsqueeze(-1) * uc;
  if (z) y = y * at::silu(z->to(cd));
  if (seq_idx) y = at::where(seq_idx->lt(0).unsqueeze(1), zero, y);  // padding outputs 0
  at::Tensor last = return_last_state ? x : at::empty({0}, u.options().dtype(cd));
  return {y.to(u.scalar_type()), last};
}

}  // namespace mft::reference
