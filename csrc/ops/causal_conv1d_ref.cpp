// Plain reference of mft::causal_conv1d: the test oracle. Differentiable through ATen's autograd.
#include "ops/causal_conv1d.h"

#include "core/check.h"

#include <ATen/ATen.h>

namespace mft::reference {

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                         const OptTensor& initial_states, bool silu, const OptTensor& seq_idx) {
  const ConvGeometry g = check_causal_conv1d_args(x, weight, bias, initial_states, seq_idx);
  const at::ScalarType cd = compute_dtype(x);
  const int64_t pad = g.width - 1;
  const at::Tensor head =
      initial_states ? initial_states->to(cd) : at::zeros({g.batch, g.dim, pad}, x.options().dtype(cd));
  const at::Tensor xp = at::cat({head, x.to(cd)}, 2);  // (B, D, W - 1 + L)
  // Document of every padded position: the initial states belong to the document of t = 0.
  at::Tensor seqp;
  if (seq_idx) seqp = at::cat({seq_idx->narrow(1, 0, 1).expand({g.batch, pad}), *seq_idx}, 1);  // (B, W - 1 + L)
  const at::Tensor w = weight.to(cd);
  at::Tensor out = at::zeros({g.batch, g.dim, g.seqlen}, x.options().dtype(cd));
  for (int64_t k = 0; k < g.width; ++k) {
    at::Tensor term = w.select(1, k).view({1, g.dim, 1}) * xp.narrow(2, k, g.seqlen);  // (B, D, L)
    if (seq_idx) term = term * seqp.narrow(1, k, g.seqlen).eq(*seq_idx).to(cd).unsqueeze(1);
    out = out + term;
  }
  if (bias) out = out + bias->to(cd).view({1, g.dim, 1});
  if (silu) out = at::silu(out);
  if (seq_idx) out = at::where(seq_idx->lt(0).unsqueeze(1), at::zeros({}, out.options()), out);  // padding: 0
  return out.to(x.scalar_type());
}

}  // namespace mft::reference
