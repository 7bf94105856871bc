// Decode-step ops: schemas, validation, C++ entry points and CPU kernels.
// CPU kernels: causal_conv1d_update is one pass per (batch, channel); selective_state_update works on
// blocks of simd::kLanes channels like the scan (state lanes updated with one vectorised exp per n).
#include "ops/decode_step.h"

#include "core/check.h"
#include "core/output.h"
#include "ops/scan_blocks.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace mft {
namespace {
constexpr const char* kConvOp = "causal_conv1d_update";
constexpr const char* kSsmOp = "selective_state_update";

// (B, D) tensor as (B, D, 1): lets the scan's chunk helpers move one timestep.
at::Tensor as_seq(const at::Tensor& t) {
  return t.unsqueeze(-1);
}
}  // namespace

void check_causal_conv1d_update_args(const at::Tensor& x, const at::Tensor& conv_state, const at::Tensor& weight,
                                     const OptTensor& bias) {
  check_floating(x, kConvOp, "x");
  check_dim(x, 2, kConvOp, "x", "(batch, dim)");
  check_dim(weight, 2, kConvOp, "weight", "(dim, width)");
  check_floating(weight, kConvOp, "weight");
  const int64_t batch = x.size(0), dim = x.size(1), width = weight.size(1);
  TORCH_CHECK(width >= 1, kConvOp, ": weight width must be >= 1; got ", shape_str(weight.sizes()));
  check_sizes(weight, {dim, width}, kConvOp, "weight", "(dim, width)");
  check_floating(conv_state, kConvOp, "conv_state");
  check_sizes(conv_state, {batch, dim, width - 1}, kConvOp, "conv_state", "(batch, dim, width - 1)");
  if (bias) {
    check_floating(*bias, kConvOp, "bias");
    check_sizes(*bias, {dim}, kConvOp, "bias", "(dim,)");
    check_device(*bias, x, kConvOp, "bias");
  }
  check_device(conv_state, x, kConvOp, "conv_state");
  check_device(weight, x, kConvOp, "weight");
}

void check_selective_state_update_args(const at::Tensor& state, const at::Tensor& x, const at::Tensor& dt,
                                       const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                                       const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias) {
  check_floating(x, kSsmOp, "x");
  check_dim(x, 2, kSsmOp, "x", "(batch, dim)");
  const int64_t batch = x.size(0), dim = x.size(1);
  const at::ScalarType cd = compute_dtype(x);
  check_dim(state, 3, kSsmOp, "state", "(batch, dim, dstate)");
  const int64_t dstate = state.size(2);
  check_sizes(state, {batch, dim, dstate}, kSsmOp, "state", "(batch, dim, dstate)");
  check_dtype(state, cd, kSsmOp, "state");
  check_floating(dt, kSsmOp, "dt");
  check_sizes(dt, {batch, dim}, kSsmOp, "dt", "(batch, dim)");
  check_sizes(A, {dim, dstate}, kSsmOp, "A", "(dim, dstate)");
  check_dtype(A, cd, kSsmOp, "A");
  for (const auto& [t, name] : {std::pair{&B, "B"}, {&C, "C"}}) {
    check_floating(*t, kSsmOp, name);
    if (t->dim() == 2) {
      check_sizes(*t, {batch, dstate}, kSsmOp, name, "(batch, dstate)");
    } else {
      check_dim(*t, 3, kSsmOp, name, "(batch, dstate) or (batch, groups, dstate)");
      TORCH_CHECK(t->size(1) >= 1 && dim % t->size(1) == 0, kSsmOp, ": dim (", dim,
                  ") must be divisible by the groups of ", name, " (", t->size(1), ")");
      check_sizes(*t, {batch, t->size(1), dstate}, kSsmOp, name, "(batch, groups, dstate)");
    }
    check_device(*t, x, kSsmOp, name);
  }
  TORCH_CHECK(B.dim() == C.dim() && (B.dim() == 2 || B.size(1) == C.size(1)), kSsmOp,
              ": B and C must have the same groups; got ", shape_str(B.sizes()), " and ", shape_str(C.sizes()));
  if (D) {
    check_sizes(*D, {dim}, kSsmOp, "D", "(dim,)");
    check_dtype(*D, cd, kSsmOp, "D");
    check_device(*D, x, kSsmOp, "D");
  }
  if (dt_bias) {
    check_sizes(*dt_bias, {dim}, kSsmOp, "dt_bias", "(dim,)");
    check_dtype(*dt_bias, cd, kSsmOp, "dt_bias");
    check_device(*dt_bias, x, kSsmOp, "dt_bias");
    check_finite(*dt_bias, kSsmOp, "dt_bias");
  }
  if (z) {
    check_floating(*z, kSsmOp, "z");
    check_sizes(*z, {batch, dim}, kSsmOp, "z", "(batch, dim)");
    check_device(*z, x, kSsmOp, "z");
  }
  check_device(state, x, kSsmOp, "state");
  check_device(dt, x, kSsmOp, "dt");
  check_device(A, x, kSsmOp, "A");
}

namespace {
at::Tensor causal_conv1d_update_cpu(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                    const OptTensor& bias, bool silu) {
  check_causal_conv1d_update_args(x, conv_state, weight, bias);
  const int64_t batch = x.size(0), dim = x.size(1), width = weight.size(1), pad = width - 1;
  // Work on fp64 copies of the tiny per-token tensors; the window is [conv_state | x].
  const at::Tensor window = at::cat({conv_state.to(at::kDouble), x.to(at::kDouble).unsqueeze(-1)}, 2).contiguous();
  const at::Tensor w = weight.to(at::kDouble).contiguous();
  const at::Tensor b = bias ? bias->to(at::kDouble).contiguous() : at::Tensor();
  at::Tensor out = at::empty({batch, dim}, x.options().dtype(at::kDouble));
  const double* win = window.const_data_ptr<double>();
  const double* wp = w.const_data_ptr<double>();
  double* op = out.mutable_data_ptr<double>();
  at::parallel_for(0, batch * dim, 256, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t d = row % dim;
      double acc = b.defined() ? b.const_data_ptr<double>()[d] : 0.0;
      for (int64_t k = 0; k < width; ++k) acc += wp[d * width + k] * win[row * width + k];
      op[row] = silu ? acc / (1.0 + std::exp(-acc)) : acc;
    }
  });
  if (pad > 0) conv_state.copy_(window.narrow(2, 1, pad));
  return out.to(x.scalar_type());
}

template <typename S>
at::Tensor selective_state_update_impl(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt,
                                       const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                                       const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                       bool dt_softplus) {
  using V = simd::Vec<S>;
  const int64_t batch = x.size(0), dim = x.size(1), N = state.size(2);
  const int64_t groups = B.dim() == 3 ? B.size(1) : 1;
  constexpr auto cd = c10::CppTypeToScalarType<S>::value;
  const at::Tensor x3 = as_seq(x).contiguous(), dt3 = as_seq(dt).contiguous();
  const at::Tensor z3 = z ? as_seq(*z).contiguous() : at::Tensor();
  const at::Tensor Bc = B.to(cd).reshape({batch, groups, N}).contiguous();
  const at::Tensor Cc = C.to(cd).reshape({batch, groups, N}).contiguous();
  const at::Tensor Ac = A.contiguous();
  const at::Tensor Dc = D ? D->contiguous() : at::Tensor(), bc = dt_bias ? dt_bias->contiguous() : at::Tensor();
  at::Tensor st = state.contiguous();
  at::Tensor out = new_output({batch, dim, 1}, x.options());
  const int64_t bpg = cpu::blocks_per_group(dim, groups);
  at::parallel_for(0, batch * groups * bpg, 1, [&](int64_t begin, int64_t end) {
    std::vector<V> xs(N), Av(N);
    for (int64_t i = begin; i < end; ++i) {
      const cpu::ChannelBlock blk = cpu::channel_block(i / (groups * bpg), (i / bpg) % groups, i % bpg, dim, groups);
      S* sp = st.mutable_data_ptr<S>() + blk.b * dim * N;
      cpu::gather_param<S>(sp, blk, N, N, xs.data());
      cpu::gather_param<S>(Ac.const_data_ptr<S>(), blk, N, N, Av.data());
      for (auto& a : Av) a = a * simd::kLog2e<S>;  // exp(dt A) as 2^(dt A log2 e), like the scan
      V uv, dtv, zv, Dv{}, bv{};
      cpu::gather_chunk<S>(x3, blk, 0, 1, &uv);
      cpu::gather_chunk<S>(dt3, blk, 0, 1, &dtv);
      if (Dc.defined()) cpu::gather_param<S>(Dc.const_data_ptr<S>(), blk, 1, 1, &Dv);
      if (bc.defined()) cpu::gather_param<S>(bc.const_data_ptr<S>(), blk, 1, 1, &bv);
      dtv = dt_softplus ? simd::vsoftplus(dtv + bv) : dtv + bv;
      const S* Bp = Bc.const_data_ptr<S>() + (blk.b * groups + blk.group) * N;
      const S* Cp = Cc.const_data_ptr<S>() + (blk.b * groups + blk.group) * N;
      const V du = dtv * uv;
      V y = Dv * uv;
      for (int64_t n = 0; n < N; ++n) {
        xs[n] = simd::vexp2(dtv * Av[n]) * xs[n] + du * Bp[n];
        y += Cp[n] * xs[n];
      }
      if (z3.defined()) {
        cpu::gather_chunk<S>(z3, blk, 0, 1, &zv);
        y = y * simd::vsilu(zv);
      }
      cpu::scatter_param<S>(xs.data(), blk, N, N, sp);
      cpu::scatter_chunk<S>(&y, blk, 0, 1, out);
    }
  });
  if (!st.is_same(state)) state.copy_(st);
  return out.squeeze(-1);
}

at::Tensor selective_state_update_cpu(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                      const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                      const OptTensor& dt_bias, bool dt_softplus) {
  check_selective_state_update_args(state, x, dt, A, B, C, D, z, dt_bias);
  if (compute_dtype(x) == at::kDouble) {
    return selective_state_update_impl<double>(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus);
  }
  return selective_state_update_impl<float>(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus);
}
}  // namespace

at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const OptTensor& bias, bool silu) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mft::causal_conv1d_update", "")
                       .typed<at::Tensor(const at::Tensor&, at::Tensor&, const at::Tensor&, const OptTensor&, bool)>();
  return op.call(x, conv_state, weight, bias, silu);
}

at::Tensor selective_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                  const OptTensor& dt_bias, bool dt_softplus) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mft::selective_state_update", "")
          .typed<at::Tensor(at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const at::Tensor&, const OptTensor&, const OptTensor&, const OptTensor&, bool)>();
  return op.call(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus);
}

TORCH_LIBRARY_FRAGMENT(mft, m) {
  m.def(
      "causal_conv1d_update(Tensor x, Tensor(a!) conv_state, Tensor weight, Tensor? bias=None, bool silu=False) "
      "-> Tensor");
  m.def(
      "selective_state_update(Tensor(a!) state, Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, "
      "Tensor? D=None, Tensor? z=None, Tensor? dt_bias=None, bool dt_softplus=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(mft, CPU, m) {
  m.impl("causal_conv1d_update", &causal_conv1d_update_cpu);
  m.impl("selective_state_update", &selective_state_update_cpu);
}

}  // namespace mft
