// mamba_inner forward and backward composed from the other mft ops (causal_conv1d, selective_scan) and
// ATen batched GEMMs, registered CompositeExplicitAutograd so they run on any backend. Projections run
// in the channel-major layout the conv and the scan read: W (out, in) times x (B, in, L), one GEMM per
// batch row with transposed operands and no copies; out_proj writes (B, L, Dm) directly.
#include "core/check.h"
#include "ops/causal_conv1d.h"
#include "ops/lora_linear.h"
#include "ops/mamba_inner_kernels.h"
#include "ops/selective_scan.h"
#include "ops/thin_gemm.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace mft {
namespace {

// m (r, c) seen as (B, r, c) without copying.
at::Tensor batched(const at::Tensor& m, int64_t batch) {
  return m.unsqueeze(0).expand({batch, m.size(0), m.size(1)});
}

// The batched products below with a matrix shared by the batch. At batch 1 they are one at::mm /
// at::addmm on the matrices: mm takes transposed operands as they are in every dtype, where bf16 bmm
// first copies a transposed weight (mamba-130m lora-bf16 trace: 72 weight copies, about 40 ms a step).
// w (m, k) times x (B, k, n) -> (B, m, n).
at::Tensor wx(const at::Tensor& w, const at::Tensor& x) {
  if (x.size(0) == 1) return at::mm(w, x.select(0, 0)).unsqueeze(0);
  return at::bmm(batched(w, x.size(0)), x);
}

// x (B, n, k) times w (k, m) -> (B, n, m).
at::Tensor xw(const at::Tensor& x, const at::Tensor& w) {
  if (x.size(0) == 1) return at::mm(x.select(0, 0), w).unsqueeze(0);
  return at::bmm(x, batched(w, x.size(0)));
}

// c (B, m, n) += alpha · w (m, k) x (B, k, n), in place; returns c.
at::Tensor& add_wx_(at::Tensor& c, const at::Tensor& w, const at::Tensor& x, double alpha) {
  if (x.size(0) == 1) {
    c.select(0, 0).addmm_(w, x.select(0, 0), /*beta=*/1, alpha);
    return c;
  }
  return c.baddbmm_(batched(w, x.size(0)), x, /*beta=*/1, alpha);
}

// c (B, n, m) += alpha · x (B, n, k) w (k, m), in place; returns c.
at::Tensor& add_xw_(at::Tensor& c, const at::Tensor& x, const at::Tensor& w, double alpha) {
  if (x.size(0) == 1) {
    c.select(0, 0).addmm_(x.select(0, 0), w, /*beta=*/1, alpha);
    return c;
  }
  return c.baddbmm_(x, batched(w, x.size(0)), /*beta=*/1, alpha);
}

// (B, C, L) -> (C, B * L): a view when B = 1, else one copy. Weight gradients are sums over batch and
// positions, i.e. one GEMM over the flattened (B * L) axis.
at::Tensor flat_channels(const at::Tensor& t) {
  if (t.size(0) == 1) return t.select(0, 0);
  return t.transpose(0, 1).reshape({t.size(1), -1});
}

at::ScalarType lora_dtype_for(const LoraFactors& l) {
  return l.A.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// The dropout multiplier of adapter k's input x (B, in, L), or undefined when dropout is off.
at::Tensor dropout_mask(const MambaInnerArgs& a, int k, const at::Tensor& x, const LoraFactors& l) {
  if (!l.defined() || !lora_dropout_active(a.lora_dropout, a.training)) return {};
  TORCH_CHECK(a.dropout_seed, "mamba_inner: dropout needs dropout_seed (the Autograd layer draws one when None)");
  return lora_dropout_mask(x.sizes(), a.lora_dropout, *a.dropout_seed + k, lora_dtype_for(l), x.device());
}

// The adapter's input: x in the LoRA compute dtype, times the dropout mask when there is one.
at::Tensor lora_input(const at::Tensor& x, const LoraFactors& l, const at::Tensor& drop) {
  const at::Tensor xl = x.to(lora_dtype_for(l));
  return drop.defined() ? xl * drop : xl;
}

// Whether the adapter's products run in ops/thin_gemm.h (fp32 sums, the activations read in their own
// dtype and layout, no casts): CPU, fp32/bf16/fp16, no dropout mask (which the fallback materialises
// with xl), every batch slice of `ts` (3-D) a matrix the kernels take.
bool thin_path(const LoraFactors& l, const at::Tensor& drop, std::initializer_list<at::Tensor> ts) {
  if (!l.defined() || drop.defined() || l.A.scalar_type() == at::kDouble) return false;
  for (const auto& t : ts) {
    if (!thin::supported(t.select(0, 0))) return false;
  }
  return true;
}

// y (B, out, L) = W x + s · B (A xl): the base GEMM in x's dtype, the update in fp32, one rounding.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const LoraFactors& l, const at::Tensor& drop) {
  at::Tensor y = wx(w, x);
  if (!l.defined()) return y;
  if (thin_path(l, drop, {x, y})) {
    const at::Tensor A = l.A.to(at::kFloat), B = l.B.to(at::kFloat);
    for (int64_t b = 0; b < x.size(0); ++b) thin::add_b_u_(y.select(0, b), B, thin::w_x(A, x.select(0, b)), l.scale);
    return y;
  }
  const at::ScalarType cd = lora_dtype_for(l);
  const at::Tensor u = wx(l.A.to(cd), lora_input(x, l, drop));  // (B, r, L)
  if (y.scalar_type() == cd) return add_wx_(y, l.B.to(cd), u, l.scale);
  // Low precision: cast, add in place, round once. (A mixed-dtype add_ would save the casts but runs
  // unvectorised: 3x slower in the lora-bf16 trace.)
  at::Tensor y32 = y.to(cd);
  return add_wx_(y32, l.B.to(cd), u, l.scale).to(x.scalar_type());
}

// out (B, L, out) = (W x + s · B (A xl))ᵀ + bias, written row-major directly.
at::Tensor project_rows(const at::Tensor& x, const at::Tensor& w, const OptTensor& bias, const LoraFactors& l,
                        const at::Tensor& drop) {
  const int64_t b = x.size(0);
  const at::Tensor xt = x.transpose(1, 2);  // (B, L, in), a view
  at::Tensor y;
  if (!bias) {
    y = xw(xt, w.t());
  } else if (b == 1) {
    y = at::addmm(*bias, xt.select(0, 0), w.t()).unsqueeze(0);
  } else {
    y = at::baddbmm(bias->view({1, 1, -1}), xt, batched(w.t(), b));
  }
  if (!l.defined()) return y;
  if (thin_path(l, drop, {x, y.transpose(1, 2)})) {
    const at::Tensor A = l.A.to(at::kFloat), B = l.B.to(at::kFloat);
    for (int64_t i = 0; i < b; ++i) {
      thin::add_b_u_(y.select(0, i).t(), B, thin::w_x(A, x.select(0, i)), l.scale);  // y[i] (L, out) as (out, L)
    }
    return y;
  }
  const at::ScalarType cd = lora_dtype_for(l);
  const at::Tensor u = xw(lora_input(x, l, drop).transpose(1, 2), l.A.to(cd).t());  // (B, L, r)
  if (y.scalar_type() == cd) return add_xw_(y, u, l.B.to(cd).t(), l.scale);
  at::Tensor y32 = y.to(cd);  // as in project()
  return add_xw_(y32, u, l.B.to(cd).t(), l.scale).to(x.scalar_type());
}

struct ProjectionGrads {
  at::Tensor dx, dw, dA, dB;
};

// The adapter's part of project_backward on the thin path, batch slices summed in order.
void project_backward_thin(const at::Tensor& dy, const at::Tensor& x, const LoraFactors& l, bool need_dx, bool need_dA,
                           bool need_dB, ProjectionGrads& out) {
  const at::Tensor A = l.A.to(at::kFloat), B = l.B.to(at::kFloat);
  at::Tensor dA, dBt;  // (r, in), (r, out) / s
  for (int64_t b = 0; b < x.size(0); ++b) {
    auto [da, dbt] = thin::update_backward(dy.select(0, b), x.select(0, b), A, B, l.scale,
                                           need_dx ? out.dx.select(0, b) : at::Tensor(), need_dA, need_dB);
    if (need_dA) dA = dA.defined() ? dA.add_(da) : da;
    if (need_dB) dBt = dBt.defined() ? dBt.add_(dbt) : dbt;
  }
  if (need_dA) out.dA = dA.to(l.A.scalar_type());
  if (need_dB) out.dB = dBt.t().mul(l.scale).to(l.B.scalar_type()).contiguous();
}

// Backward of project(): dy (B, out, L) in any strides. Computes only what is asked.
ProjectionGrads project_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w, const LoraFactors& l,
                                 const at::Tensor& drop, bool need_dx, bool need_dw, bool need_dA, bool need_dB) {
  ProjectionGrads g;
  if (need_dx) g.dx = wx(w.t(), dy);                                    // (B, in, L)
  if (need_dw) g.dw = at::mm(flat_channels(dy), flat_channels(x).t());  // (out, in)
  if (!l.defined() || !(need_dx || need_dA || need_dB)) return g;
  if (thin_path(l, drop, {dy, x}) && (!need_dx || thin::supported(g.dx.select(0, 0)))) {
    project_backward_thin(dy, x, l, need_dx, need_dA, need_dB, g);
    return g;
  }
  const at::ScalarType cd = lora_dtype_for(l), ad = l.A.scalar_type();
  const at::Tensor A = l.A.to(cd), B = l.B.to(cd), dyl = dy.to(cd);
  at::Tensor xl;
  if (need_dA || need_dB) xl = lora_input(x, l, drop);
  if (need_dx || need_dA) {
    const at::Tensor gu = wx(B.t(), dyl).mul_(l.scale);  // (B, r, L): gradient of u = A xl
    if (need_dA) g.dA = at::mm(flat_channels(gu), flat_channels(xl).t()).to(ad);
    if (need_dx) {
      at::Tensor gx = wx(A.t(), gu);  // (B, in, L)
      if (drop.defined()) gx.mul_(drop);
      g.dx = g.dx.scalar_type() == cd ? g.dx.add_(gx) : g.dx.to(cd).add_(gx).to(x.scalar_type());
    }
  }
  if (need_dB) {
    const at::Tensor u = wx(A, xl);  // (B, r, L)
    g.dB = at::mm(flat_channels(dyl), flat_channels(u).t()).mul_(l.scale).to(ad);
  }
  return g;
}

at::Tensor conv_output(const MambaInnerArgs& a, const at::Tensor& x_in) {
  return causal_conv1d(x_in, a.conv_weight, a.conv_bias, std::nullopt, /*silu=*/true, a.seq_idx);
}

// dt (B, E, L) from x_dbl's first dt_rank channels.
at::Tensor delta(const MambaInnerArgs& a, const MambaInnerGeometry& g, const at::Tensor& x_dbl) {
  const at::Tensor dt_in = x_dbl.narrow(1, 0, g.dt_rank);
  return project(dt_in, a.dt_proj_weight, a.dt_proj_lora, dropout_mask(a, 1, dt_in, a.dt_proj_lora));
}

const auto& scan_fwd_op() {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mft::selective_scan_fwd", "")
          .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
              const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
              const OptTensor&, const OptTensor&, const OptTensor&, bool, const OptTensor&, bool, const OptTensor&)>();
  return op;
}

const auto& scan_backward_op() {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mft::selective_scan_backward", "")
          .typed<ScanGrads(const at::Tensor&, const OptTensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&, const OptTensor&,
                           bool, const OptTensor&, const OptTensor&, const OptTensor&)>();
  return op;
}

const auto& conv_backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mft::causal_conv1d_backward", "")
                       .typed<ConvGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
                                        const OptTensor&, bool, const OptTensor&)>();
  return op;
}

// rows (B, L, ...) with the padding positions (seq_idx < 0) set to 0.
at::Tensor zero_padding_rows(const at::Tensor& rows, const at::Tensor& seq_idx) {
  return at::where(seq_idx.lt(0).unsqueeze(-1), at::zeros({}, rows.options()), rows);
}

MambaInnerFwdResult forward(const MambaInnerArgs& a) {
  const MambaInnerGeometry g = check_mamba_inner_args(a);
  const int64_t E = g.inner, R = g.dt_rank, N = g.dstate;
  const at::Tensor x_in = a.xz.narrow(1, 0, E), z = a.xz.narrow(1, E, E);  // (B, E, L)
  const at::Tensor xc = conv_output(a, x_in);                              // (B, E, L)
  const at::Tensor x_dbl =
      project(xc, a.x_proj_weight, a.x_proj_lora, dropout_mask(a, 0, xc, a.x_proj_lora));  // (B, R + 2N, L)
  const at::Tensor dt = delta(a, g, x_dbl);                                                // (B, E, L)
  auto [y, last, checkpoints] = scan_fwd_op().call(xc, dt, a.A, x_dbl.narrow(1, R, N), x_dbl.narrow(1, R + N, N), a.D,
                                                   z, a.dt_bias, /*delta_softplus=*/true, std::nullopt,
                                                   /*return_last_state=*/false, a.seq_idx);
  at::Tensor out = project_rows(y, a.out_proj_weight, a.out_proj_bias, a.out_proj_lora,
                                dropout_mask(a, 2, y, a.out_proj_lora));  // (B, L, Dm)
  // y is 0 at padding (seq_idx < 0); so is the output there, bias and all.
  if (a.seq_idx && a.out_proj_bias) out = zero_padding_rows(out, *a.seq_idx);
  return {out, x_dbl, y, checkpoints};
}
}  // namespace

at::Tensor mamba_inner_composed(MFT_MAMBA_INNER_PARAMS) {
  return std::get<0>(forward(mamba_inner_args(MFT_MAMBA_INNER_ARGS)));
}

MambaInnerFwdResult mamba_inner_fwd_composed(MFT_MAMBA_INNER_PARAMS) {
  return forward(mamba_inner_args(MFT_MAMBA_INNER_ARGS));
}

std::vector<at::Tensor> mamba_inner_backward_composed(const at::Tensor& dout_in, const at::Tensor& x_dbl,
                                                      const at::Tensor& y, const at::Tensor& scan_checkpoints,
                                                      MFT_MAMBA_INNER_PARAMS, std::array<bool, kMambaInnerGrads> mask) {
  const MambaInnerArgs a = mamba_inner_args(MFT_MAMBA_INNER_ARGS);
  const MambaInnerGeometry g = check_mamba_inner_args(a);
  const int64_t E = g.inner, R = g.dt_rank, N = g.dstate;
  TORCH_CHECK(
      dout_in.dim() == 3 && dout_in.size(0) == g.batch && dout_in.size(1) == g.seqlen && dout_in.size(2) == g.model_dim,
      "mamba_inner_backward: dout must be (batch, seqlen, model_dim) = ", shape_str({g.batch, g.seqlen, g.model_dim}),
      "; got ", shape_str(dout_in.sizes()));
  // Outputs at padding are constant 0: their gradient goes nowhere (not into the bias either).
  const at::Tensor dout = a.seq_idx ? zero_padding_rows(dout_in, *a.seq_idx) : dout_in;
  const at::Tensor x_in = a.xz.narrow(1, 0, E), z = a.xz.narrow(1, E, E);
  // Order of gradients and mask entries: the first 16 schema inputs.
  enum { kXz, kConvW, kConvB, kXW, kDtW, kOutW, kOutB, kA, kD, kDtBias, kXA, kXB, kDtA, kDtB, kOutA, kOutB2 };

  // out_proj: dout (B, L, Dm) seen as (B, Dm, L).
  const ProjectionGrads go = project_backward(dout.transpose(1, 2), y, a.out_proj_weight, a.out_proj_lora,
                                              dropout_mask(a, 2, y, a.out_proj_lora), /*need_dx=*/true, mask[kOutW],
                                              mask[kOutA], mask[kOutB2]);
  // Recompute the conv output and dt (checkpoint level 1), then the scan's backward.
  const at::Tensor xc = conv_output(a, x_in);
  const at::Tensor dt = delta(a, g, x_dbl);
  auto [dxc, ddt, dA, dBm, dCm, dD, dz, ddt_bias, dinit] =
      scan_backward_op().call(go.dx, std::nullopt, xc, dt, a.A, x_dbl.narrow(1, R, N), x_dbl.narrow(1, R + N, N), a.D,
                              z, a.dt_bias, /*delta_softplus=*/true, std::nullopt, a.seq_idx, scan_checkpoints);
  const at::Tensor dt_in = x_dbl.narrow(1, 0, R);
  const ProjectionGrads gdt =
      project_backward(ddt, dt_in, a.dt_proj_weight, a.dt_proj_lora, dropout_mask(a, 1, dt_in, a.dt_proj_lora),
                       /*need_dx=*/true, mask[kDtW], mask[kDtA], mask[kDtB]);
  const at::Tensor dx_dbl = at::cat({gdt.dx, dBm.to(gdt.dx.scalar_type()), dCm.to(gdt.dx.scalar_type())}, 1);
  const ProjectionGrads gx =
      project_backward(dx_dbl, xc, a.x_proj_weight, a.x_proj_lora, dropout_mask(a, 0, xc, a.x_proj_lora),
                       /*need_dx=*/true, mask[kXW], mask[kXA], mask[kXB]);
  dxc.add_(gx.dx);
  auto [dx_in, dconv_w, dconv_b, dconv_init] =
      conv_backward_op().call(dxc, x_in, a.conv_weight, a.conv_bias, std::nullopt, /*silu=*/true, a.seq_idx);

  std::vector<at::Tensor> grads(kMambaInnerGrads);
  grads[kXz] = at::cat({dx_in, dz.to(dx_in.scalar_type())}, 1);
  grads[kConvW] = dconv_w;
  grads[kConvB] = dconv_b;
  grads[kXW] = gx.dw;
  grads[kDtW] = gdt.dw;
  grads[kOutW] = go.dw;
  if (a.out_proj_bias && mask[kOutB]) grads[kOutB] = dout.sum(at::IntArrayRef{0, 1}).to(a.out_proj_bias->scalar_type());
  grads[kA] = dA;
  grads[kD] = dD;
  grads[kDtBias] = ddt_bias;
  grads[kXA] = gx.dA;
  grads[kXB] = gx.dB;
  grads[kDtA] = gdt.dA;
  grads[kDtB] = gdt.dB;
  grads[kOutA] = go.dA;
  grads[kOutB2] = go.dB;
  // The schema returns Tensor[]: an empty tensor stands for "no gradient".
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!mask[i] || !grads[i].defined()) grads[i] = at::empty({0}, a.xz.options());
  }
  return grads;
}

}  // namespace mft
