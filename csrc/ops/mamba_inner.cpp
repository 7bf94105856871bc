// mft::mamba_inner: schema, argument validation and the C++ entry points.
#include "ops/mamba_inner.h"

#include "core/check.h"
#include "ops/mamba_inner_kernels.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

namespace mft {
namespace {
constexpr const char* kOp = "mamba_inner";

void check_lora(const LoraFactors& l, const at::Tensor& xz, int64_t in, int64_t out, const char* a_name,
                const char* b_name) {
  if (!l.defined()) {
    TORCH_CHECK(!l.B.defined(), kOp, ": ", b_name, " is given without ", a_name);
    return;
  }
  TORCH_CHECK(l.B.defined(), kOp, ": ", a_name, " is given without ", b_name);
  check_floating(l.A, kOp, a_name);
  check_dim(l.A, 2, kOp, a_name, "(rank, in_features)");
  const int64_t r = l.A.size(0);
  TORCH_CHECK(r >= 1, kOp, ": ", a_name, " must have rank >= 1; got ", shape_str(l.A.sizes()));
  check_sizes(l.A, {r, in}, kOp, a_name, "(rank, in_features) of its projection");
  check_sizes(l.B, {out, r}, kOp, b_name, "(out_features, rank) of its projection");
  check_dtype(l.B, l.A.scalar_type(), kOp, b_name);
  TORCH_CHECK((xz.scalar_type() == at::kDouble) == (l.A.scalar_type() == at::kDouble), kOp, ": ", a_name,
              " must be float64 exactly when xz is; got ", l.A.scalar_type(), " with xz ", xz.scalar_type());
  check_device(l.A, xz, kOp, a_name);
  check_device(l.B, xz, kOp, b_name);
  TORCH_CHECK(std::isfinite(l.scale), kOp, ": the LoRA scale of ", a_name, " must be finite; got ", l.scale);
}

LoraFactors factors(const OptTensor& A, const OptTensor& B, double scale) {
  return {or_undefined(A), or_undefined(B), scale};
}
}  // namespace

MambaInnerGeometry check_mamba_inner_args(const MambaInnerArgs& a) {
  check_floating(a.xz, kOp, "xz");
  check_dim(a.xz, 3, kOp, "xz", "(batch, 2 * inner, seqlen)");
  MambaInnerGeometry g;
  g.batch = a.xz.size(0);
  g.seqlen = a.xz.size(2);
  TORCH_CHECK(g.batch >= 1 && g.seqlen >= 1 && a.xz.size(1) >= 2 && a.xz.size(1) % 2 == 0, kOp,
              ": xz must be (batch, 2 * inner, seqlen) with every size >= 1; got ", shape_str(a.xz.sizes()));
  g.inner = a.xz.size(1) / 2;
  const at::ScalarType act = a.xz.scalar_type(), cd = compute_dtype(a.xz);
  check_dim(a.conv_weight, 2, kOp, "conv_weight", "(inner, width)");
  g.width = a.conv_weight.size(1);
  check_sizes(a.conv_weight, {g.inner, g.width}, kOp, "conv_weight", "(inner, width) with inner = xz.size(1) / 2");
  check_dim(a.dt_proj_weight, 2, kOp, "dt_proj_weight", "(inner, dt_rank)");
  g.dt_rank = a.dt_proj_weight.size(1);
  check_sizes(a.dt_proj_weight, {g.inner, g.dt_rank}, kOp, "dt_proj_weight", "(inner, dt_rank)");
  check_dim(a.A, 2, kOp, "A", "(inner, dstate)");
  g.dstate = a.A.size(1);
  check_state_param(a.A, cd, {g.inner, g.dstate}, kOp, "A", "(inner, dstate)", "xz");
  check_sizes(a.x_proj_weight, {g.dt_rank + 2 * g.dstate, g.inner}, kOp, "x_proj_weight",
              "(dt_rank + 2 * dstate, inner)");
  check_dim(a.out_proj_weight, 2, kOp, "out_proj_weight", "(model_dim, inner)");
  g.model_dim = a.out_proj_weight.size(0);
  check_sizes(a.out_proj_weight, {g.model_dim, g.inner}, kOp, "out_proj_weight", "(model_dim, inner)");
  for (const auto& [t, name] : {std::pair{&a.conv_weight, "conv_weight"},
                                {&a.x_proj_weight, "x_proj_weight"},
                                {&a.dt_proj_weight, "dt_proj_weight"},
                                {&a.out_proj_weight, "out_proj_weight"}}) {
    check_dtype(*t, act, kOp, name);
    check_device(*t, a.xz, kOp, name);
  }
  if (a.conv_bias) {
    check_sizes(*a.conv_bias, {g.inner}, kOp, "conv_bias", "(inner,)");
    check_dtype(*a.conv_bias, act, kOp, "conv_bias");
  }
  if (a.out_proj_bias) {
    check_sizes(*a.out_proj_bias, {g.model_dim}, kOp, "out_proj_bias", "(model_dim,)");
    check_dtype(*a.out_proj_bias, act, kOp, "out_proj_bias");
  }
  if (a.D) check_state_param(*a.D, cd, {g.inner}, kOp, "D", "(inner,)", "xz");
  if (a.dt_bias) {
    check_state_param(*a.dt_bias, cd, {g.inner}, kOp, "dt_bias", "(inner,)", "xz");
    check_finite(*a.dt_bias, kOp, "dt_bias");
  }
  if (a.seq_idx) {
    check_sizes(*a.seq_idx, {g.batch, g.seqlen}, kOp, "seq_idx", "(batch, seqlen)");
    check_dtype(*a.seq_idx, at::kInt, kOp, "seq_idx");
  }
  for (const auto& [t, name] : {std::pair{&a.conv_bias, "conv_bias"},
                                {&a.out_proj_bias, "out_proj_bias"},
                                {&a.D, "D"},
                                {&a.dt_bias, "dt_bias"},
                                {&a.seq_idx, "seq_idx"}}) {
    if (*t) check_device(**t, a.xz, kOp, name);
  }
  check_device(a.A, a.xz, kOp, "A");
  const int64_t R = g.dt_rank, N = g.dstate, E = g.inner;
  check_lora(a.x_proj_lora, a.xz, E, R + 2 * N, "x_proj_lora_A", "x_proj_lora_B");
  check_lora(a.dt_proj_lora, a.xz, R, E, "dt_proj_lora_A", "dt_proj_lora_B");
  check_lora(a.out_proj_lora, a.xz, E, g.model_dim, "out_proj_lora_A", "out_proj_lora_B");
  TORCH_CHECK(a.lora_dropout >= 0.0 && a.lora_dropout < 1.0, kOp, ": lora_dropout must be in [0, 1); got ",
              a.lora_dropout);
  return g;
}

MambaInnerArgs mamba_inner_args(const at::Tensor& xz, const at::Tensor& conv_weight, const OptTensor& conv_bias,
                                const at::Tensor& x_proj_weight, const at::Tensor& dt_proj_weight,
                                const at::Tensor& out_proj_weight, const OptTensor& out_proj_bias, const at::Tensor& A,
                                const OptTensor& D, const OptTensor& dt_bias, const OptTensor& x_proj_lora_A,
                                const OptTensor& x_proj_lora_B, const OptTensor& dt_proj_lora_A,
                                const OptTensor& dt_proj_lora_B, const OptTensor& out_proj_lora_A,
                                const OptTensor& out_proj_lora_B, at::ArrayRef<double> lora_scales, double lora_dropout,
                                bool training, std::optional<int64_t> dropout_seed, const OptTensor& seq_idx) {
  TORCH_CHECK(lora_scales.size() == 3, kOp, ": lora_scales must hold 3 values (x_proj, dt_proj, out_proj); got ",
              lora_scales.size());
  MambaInnerArgs a;
  a.xz = xz;
  a.conv_weight = conv_weight;
  a.conv_bias = conv_bias;
  a.x_proj_weight = x_proj_weight;
  a.dt_proj_weight = dt_proj_weight;
  a.out_proj_weight = out_proj_weight;
  a.out_proj_bias = out_proj_bias;
  a.A = A;
  a.D = D;
  a.dt_bias = dt_bias;
  a.x_proj_lora = factors(x_proj_lora_A, x_proj_lora_B, lora_scales[0]);
  a.dt_proj_lora = factors(dt_proj_lora_A, dt_proj_lora_B, lora_scales[1]);
  a.out_proj_lora = factors(out_proj_lora_A, out_proj_lora_B, lora_scales[2]);
  a.lora_dropout = lora_dropout;
  a.training = training;
  a.dropout_seed = dropout_seed;
  a.seq_idx = seq_idx;
  return a;
}

at::Tensor mamba_inner(const at::Tensor& xz, const at::Tensor& conv_weight, const OptTensor& conv_bias,
                       const at::Tensor& x_proj_weight, const at::Tensor& dt_proj_weight,
                       const at::Tensor& out_proj_weight, const OptTensor& out_proj_bias, const at::Tensor& A,
                       const OptTensor& D, const OptTensor& dt_bias, const OptTensor& x_proj_lora_A,
                       const OptTensor& x_proj_lora_B, const OptTensor& dt_proj_lora_A, const OptTensor& dt_proj_lora_B,
                       const OptTensor& out_proj_lora_A, const OptTensor& out_proj_lora_B,
                       at::ArrayRef<double> lora_scales, double lora_dropout, bool training,
                       std::optional<int64_t> dropout_seed, const OptTensor& seq_idx) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mft::mamba_inner", "").typed<MambaInnerSignature>();
  return op.call(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, out_proj_weight, out_proj_bias, A, D,
                 dt_bias, x_proj_lora_A, x_proj_lora_B, dt_proj_lora_A, dt_proj_lora_B, out_proj_lora_A,
                 out_proj_lora_B, lora_scales, lora_dropout, training, dropout_seed, seq_idx);
}

at::Tensor mamba_inner(const MambaInnerArgs& a) {
  const std::array<double, 3> scales = {a.x_proj_lora.scale, a.dt_proj_lora.scale, a.out_proj_lora.scale};
  auto opt = [](const at::Tensor& t) { return or_none(t); };
  return mamba_inner(a.xz, a.conv_weight, a.conv_bias, a.x_proj_weight, a.dt_proj_weight, a.out_proj_weight,
                     a.out_proj_bias, a.A, a.D, a.dt_bias, opt(a.x_proj_lora.A), opt(a.x_proj_lora.B),
                     opt(a.dt_proj_lora.A), opt(a.dt_proj_lora.B), opt(a.out_proj_lora.A), opt(a.out_proj_lora.B),
                     scales, a.lora_dropout, a.training, a.dropout_seed, a.seq_idx);
}

// The op's inputs in schema order, shared by the three definitions below.
#define MFT_MAMBA_INNER_INPUTS                                                                                  \
  "Tensor xz, Tensor conv_weight, Tensor? conv_bias, Tensor x_proj_weight, Tensor dt_proj_weight, "             \
  "Tensor out_proj_weight, Tensor? out_proj_bias, Tensor A, Tensor? D, Tensor? dt_bias, "                       \
  "Tensor? x_proj_lora_A, Tensor? x_proj_lora_B, Tensor? dt_proj_lora_A, Tensor? dt_proj_lora_B, "              \
  "Tensor? out_proj_lora_A, Tensor? out_proj_lora_B, float[3] lora_scales, float lora_dropout, bool training, " \
  "int? dropout_seed, Tensor? seq_idx"

TORCH_LIBRARY_FRAGMENT(mft, m) {
  m.def("mamba_inner(" MFT_MAMBA_INNER_INPUTS ") -> Tensor");
  // Internal pair used by the Autograd kernel: the forward also returns what the backward keeps (x_dbl,
  // the scan output y, the scan's state checkpoints); the backward returns one gradient per
  // differentiable input (an empty tensor where output_mask is false).
  m.def("mamba_inner_fwd(" MFT_MAMBA_INNER_INPUTS ") -> (Tensor out, Tensor x_dbl, Tensor y, Tensor scan_checkpoints)");
  m.def("mamba_inner_backward(Tensor dout, Tensor x_dbl, Tensor y, Tensor scan_checkpoints, " MFT_MAMBA_INNER_INPUTS
        ", bool[16] output_mask) -> Tensor[]");
}
#undef MFT_MAMBA_INNER_INPUTS

TORCH_LIBRARY_IMPL(mft, CompositeExplicitAutograd, m) {
  m.impl("mamba_inner", &mamba_inner_composed);
  m.impl("mamba_inner_fwd", &mamba_inner_fwd_composed);
  m.impl("mamba_inner_backward", &mamba_inner_backward_composed);
}

}  // namespace mft
