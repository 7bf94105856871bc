// reference::mamba_inner: the mixer's formulas one line each, with the reference conv and scan, in fp32
// (fp64 when xz is fp64). Differentiable by ATen's autograd.
#include "core/check.h"
#include "ops/causal_conv1d.h"
#include "ops/lora_linear.h"
#include "ops/mamba_inner.h"
#include "ops/selective_scan.h"

#include <ATen/ATen.h>

namespace mft::reference {
namespace {
// W x (+ b) + s · B (A (x · mask_k)) for x (B, in, L), in the compute dtype cd.
at::Tensor projection(const MambaInnerArgs& a, int k, const at::Tensor& x, const at::Tensor& w, const LoraFactors& l,
                      at::ScalarType cd) {
  at::Tensor y = at::matmul(w.to(cd), x);  // (B, out, L)
  if (!l.defined()) return y;
  at::Tensor xl = x;
  if (lora_dropout_active(a.lora_dropout, a.training)) {
    TORCH_CHECK(a.dropout_seed, "reference::mamba_inner: dropout needs a seed");
    xl = xl * lora_dropout_mask(x.sizes(), a.lora_dropout, *a.dropout_seed + k, cd, x.device());
  }
  return y + l.scale * at::matmul(l.B.to(cd), at::matmul(l.A.to(cd), xl));
}
}  // namespace

at::Tensor mamba_inner(const MambaInnerArgs& a) {
  const MambaInnerGeometry g = check_mamba_inner_args(a);
  const at::ScalarType cd = compute_dtype(a.xz);
  const int64_t E = g.inner, R = g.dt_rank, N = g.dstate;
  const at::Tensor xz = a.xz.to(cd);
  const at::Tensor x = xz.narrow(1, 0, E), z = xz.narrow(1, E, E);
  auto to_cd = [&](const OptTensor& t) { return t ? OptTensor(t->to(cd)) : std::nullopt; };
  const at::Tensor xc = causal_conv1d(x, a.conv_weight.to(cd), to_cd(a.conv_bias), std::nullopt, true, a.seq_idx);
  const at::Tensor x_dbl = projection(a, 0, xc, a.x_proj_weight, a.x_proj_lora, cd);  // (B, R + 2N, L)
  const at::Tensor dt = projection(a, 1, x_dbl.narrow(1, 0, R), a.dt_proj_weight, a.dt_proj_lora, cd);
  const at::Tensor y = std::get<0>(selective_scan(xc, dt, a.A, x_dbl.narrow(1, R, N), x_dbl.narrow(1, R + N, N), a.D, z,
                                                  a.dt_bias, /*delta_softplus=*/true, std::nullopt, false, a.seq_idx));
  at::Tensor out = projection(a, 2, y, a.out_proj_weight, a.out_proj_lora, cd).transpose(1, 2);  // (B, L, Dm)
  if (a.out_proj_bias) out = out + a.out_proj_bias->to(cd);
  if (a.seq_idx) out = at::where(a.seq_idx->lt(0).unsqueeze(-1), at::zeros({}, out.options()), out);  // padding: 0
  return out.to(a.xz.scalar_type());
}

}  // namespace mft::reference
