// Plain references of the decode-step ops (test oracles), computing in fp32 (fp64 for fp64 inputs).
#include "core/check.h"
#include "ops/decode_step.h"

#include <ATen/ATen.h>

namespace mft::reference {

at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const OptTensor& bias, bool silu) {
  check_causal_conv1d_update_args(x, conv_state, weight, bias);
  const at::ScalarType cd = compute_dtype(x);
  const at::Tensor window = at::cat({conv_state.to(cd), x.to(cd).unsqueeze(-1)}, 2);  // (B, D, W)
  at::Tensor out = (window * weight.to(cd).unsqueeze(0)).sum(-1);                     // (B, D)
  if (bias) out = out + bias->to(cd);
  if (silu) out = at::silu(out);
  conv_state.copy_(window.narrow(2, 1, conv_state.size(2)));
  return out.to(x.scalar_type());
}

at::Tensor selective_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                  const OptTensor& dt_bias, bool dt_softplus) {
  check_selective_state_update_args(state, x, dt, A, B, C, D, z, dt_bias);
  const at::ScalarType cd = compute_dtype(x);
  const int64_t batch = x.size(0), dim = x.size(1), dstate = state.size(2);
  auto per_channel = [&](const at::Tensor& bc) {  // (B, N) or (B, G, N) -> (B, D, N)
    const at::Tensor b3 = bc.dim() == 2 ? bc.unsqueeze(1) : bc;
    const int64_t groups = b3.size(1);
    return b3.to(cd).unsqueeze(2).expand({batch, groups, dim / groups, dstate}).reshape({batch, dim, dstate});
  };
  at::Tensor d = dt.to(cd);
  if (dt_bias) d = d + dt_bias->to(cd);
  if (dt_softplus) d = at::softplus(d);
  const at::Tensor xc = x.to(cd);
  const at::Tensor next = at::exp(d.unsqueeze(-1) * A.to(cd)) * state + (d * xc).unsqueeze(-1) * per_channel(B);
  state.copy_(next);
  at::Tensor y = (next * per_channel(C)).sum(-1);
  if (D) y = y + D->to(cd) * xc;
  if (z) y = y * at::silu(z->to(cd));
  return y.to(x.scalar_type());
}

}  // namespace mft::reference
