// mft::ssd_scan and mft::ssd_state_update: schemas, argument validation, C++ entry points, and the
// decode step (expressed through selective_state_update's vectorised CPU kernel).
#include "ops/ssd_scan.h"

#include "core/check.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

namespace mft {
namespace {
constexpr const char* kOp = "ssd_scan";
constexpr const char* kStepOp = "ssd_state_update";

void check_param(const at::Tensor& t, at::ScalarType cd, at::IntArrayRef sizes, const char* op, const char* name,
                 const char* layout) {
  check_sizes(t, sizes, op, name, layout);
  TORCH_CHECK(t.scalar_type() == cd, op, ": ", name, " must be ", cd,
              cd == at::kFloat ? "" : " (float64 because x is float64)", "; got ", t.scalar_type());
}

void check_activation_dtype(const at::Tensor& t, at::ScalarType cd, const char* op, const char* name) {
  check_floating(t, op, name);
  TORCH_CHECK((t.scalar_type() == at::kDouble) == (cd == at::kDouble), op, ": ", name,
              " must be float64 exactly when x is; got ", t.scalar_type());
}

// D: (heads,) or (heads, headdim).
void check_D(const at::Tensor& D, at::ScalarType cd, int64_t heads, int64_t headdim, const char* op) {
  if (D.dim() == 1) {
    check_param(D, cd, {heads}, op, "D", "(heads,) or (heads, headdim)");
  } else {
    check_param(D, cd, {heads, headdim}, op, "D", "(heads,) or (heads, headdim)");
  }
}

std::pair<double, double> resolve_dt_limit(std::optional<at::ArrayRef<double>> dt_limit, const char* op) {
  if (!dt_limit) return {0.0, std::numeric_limits<double>::infinity()};
  TORCH_CHECK(dt_limit->size() == 2, op, ": dt_limit must be (min, max); got ", dt_limit->size(), " values");
  const double lo = (*dt_limit)[0], hi = (*dt_limit)[1];
  TORCH_CHECK(!std::isnan(lo) && !std::isnan(hi) && lo <= hi, op, ": dt_limit must satisfy min <= max; got (", lo, ", ",
              hi, ")");
  return {lo, hi};
}
}  // namespace

SsdGeometry check_ssd_scan_args(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                                const at::Tensor& C, int64_t chunk_size, const OptTensor& D, const OptTensor& z,
                                const OptTensor& dt_bias, const OptTensor& initial_states, const OptTensor& seq_idx,
                                std::optional<at::ArrayRef<double>> dt_limit) {
  check_floating(x, kOp, "x");
  check_dim(x, 4, kOp, "x", "(batch, seqlen, heads, headdim)");
  SsdGeometry g;
  g.batch = x.size(0);
  g.seqlen = x.size(1);
  g.heads = x.size(2);
  g.headdim = x.size(3);
  TORCH_CHECK(g.batch > 0 && g.seqlen > 0 && g.heads > 0 && g.headdim > 0, kOp,
              ": x must have batch, seqlen, heads and headdim >= 1; got ", shape_str(x.sizes()));
  TORCH_CHECK(chunk_size >= 1, kOp, ": chunk_size must be >= 1; got ", chunk_size);
  const at::ScalarType cd = compute_dtype(x);
  check_activation_dtype(dt, cd, kOp, "dt");
  check_sizes(dt, {g.batch, g.seqlen, g.heads}, kOp, "dt", "(batch, seqlen, heads)");
  check_param(A, cd, {g.heads}, kOp, "A", "(heads,)");
  check_dim(B, 4, kOp, "B", "(batch, seqlen, groups, dstate)");
  g.groups = B.size(2);
  g.dstate = B.size(3);
  TORCH_CHECK(g.groups >= 1 && g.heads % g.groups == 0, kOp, ": heads (", g.heads,
              ") must be divisible by the groups of B (", g.groups, ")");
  TORCH_CHECK(g.dstate >= 1, kOp, ": B must have dstate >= 1; got ", shape_str(B.sizes()));
  for (const auto& [t, name] : {std::pair{&B, "B"}, {&C, "C"}}) {
    check_activation_dtype(*t, cd, kOp, name);
    check_sizes(*t, {g.batch, g.seqlen, g.groups, g.dstate}, kOp, name, "(batch, seqlen, groups, dstate)");
  }
  if (D) check_D(*D, cd, g.heads, g.headdim, kOp);
  if (z) {
    check_activation_dtype(*z, cd, kOp, "z");
    check_sizes(*z, x.sizes(), kOp, "z", "(batch, seqlen, heads, headdim) like x");
  }
  if (dt_bias) {
    check_param(*dt_bias, cd, {g.heads}, kOp, "dt_bias", "(heads,)");
    check_finite(*dt_bias, kOp, "dt_bias");
  }
  if (initial_states) {
    check_param(*initial_states, cd, {g.batch, g.heads, g.headdim, g.dstate}, kOp, "initial_states",
                "(batch, heads, headdim, dstate)");
  }
  if (seq_idx) {
    check_sizes(*seq_idx, {g.batch, g.seqlen}, kOp, "seq_idx", "(batch, seqlen)");
    check_dtype(*seq_idx, at::kInt, kOp, "seq_idx");
  }
  for (const auto& [t, name] : {std::pair{&dt, "dt"}, {&A, "A"}, {&B, "B"}, {&C, "C"}}) check_device(*t, x, kOp, name);
  for (const auto& [t, name] : {std::pair{&D, "D"},
                                {&z, "z"},
                                {&dt_bias, "dt_bias"},
                                {&initial_states, "initial_states"},
                                {&seq_idx, "seq_idx"}}) {
    if (*t) check_device(**t, x, kOp, name);
  }
  std::tie(g.dt_min, g.dt_max) = resolve_dt_limit(dt_limit, kOp);
  return g;
}

at::Tensor ssd_effective_dt(const at::Tensor& dt, const OptTensor& dt_bias, bool dt_softplus, double dt_min,
                            double dt_max, at::ScalarType cd) {
  at::Tensor d = dt.to(cd);
  if (dt_bias) d = d + dt_bias->to(cd);
  if (dt_softplus) d = at::softplus(d);
  return std::isinf(dt_max) ? at::clamp_min(d, dt_min) : at::clamp(d, dt_min, dt_max);
}

void check_ssd_state_update_args(const at::Tensor& state, const at::Tensor& x, const at::Tensor& dt,
                                 const at::Tensor& A, const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                 const OptTensor& z, const OptTensor& dt_bias) {
  check_floating(x, kStepOp, "x");
  check_dim(x, 3, kStepOp, "x", "(batch, heads, headdim)");
  const int64_t batch = x.size(0), heads = x.size(1), headdim = x.size(2);
  const at::ScalarType cd = compute_dtype(x);
  check_dim(state, 4, kStepOp, "state", "(batch, heads, headdim, dstate)");
  const int64_t dstate = state.size(3);
  check_param(state, cd, {batch, heads, headdim, dstate}, kStepOp, "state", "(batch, heads, headdim, dstate)");
  check_activation_dtype(dt, cd, kStepOp, "dt");
  check_sizes(dt, {batch, heads}, kStepOp, "dt", "(batch, heads)");
  check_param(A, cd, {heads}, kStepOp, "A", "(heads,)");
  check_dim(B, 3, kStepOp, "B", "(batch, groups, dstate)");
  const int64_t groups = B.size(1);
  TORCH_CHECK(groups >= 1 && heads % groups == 0, kStepOp, ": heads (", heads,
              ") must be divisible by the groups of B (", groups, ")");
  for (const auto& [t, name] : {std::pair{&B, "B"}, {&C, "C"}}) {
    check_activation_dtype(*t, cd, kStepOp, name);
    check_sizes(*t, {batch, groups, dstate}, kStepOp, name, "(batch, groups, dstate)");
    check_device(*t, x, kStepOp, name);
  }
  if (D) {
    check_D(*D, cd, heads, headdim, kStepOp);
    check_device(*D, x, kStepOp, "D");
  }
  if (z) {
    check_activation_dtype(*z, cd, kStepOp, "z");
    check_sizes(*z, x.sizes(), kStepOp, "z", "(batch, heads, headdim) like x");
    check_device(*z, x, kStepOp, "z");
  }
  if (dt_bias) {
    check_param(*dt_bias, cd, {heads}, kStepOp, "dt_bias", "(heads,)");
    check_device(*dt_bias, x, kStepOp, "dt_bias");
  }
  check_device(state, x, kStepOp, "state");
  check_device(dt, x, kStepOp, "dt");
  check_device(A, x, kStepOp, "A");
}

namespace {
// One token of Mamba-2 is one token of Mamba-1 over dim = heads * headdim channels whose A, dt, D and
// dt_bias are constant within a head: reuse selective_state_update's vectorised kernel. dt' (softplus,
// clamp) is computed here so the clamp matches ssd_scan exactly.
at::Tensor ssd_state_update_impl(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                 const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                 const OptTensor& dt_bias, bool dt_softplus,
                                 std::optional<at::ArrayRef<double>> dt_limit) {
  check_ssd_state_update_args(state, x, dt, A, B, C, D, z, dt_bias);
  const auto [lo, hi] = resolve_dt_limit(dt_limit, kStepOp);
  const int64_t batch = x.size(0), heads = x.size(1), headdim = x.size(2), dstate = state.size(3);
  const int64_t dim = heads * headdim;
  const at::ScalarType cd = compute_dtype(x);
  const at::Tensor dtc = ssd_effective_dt(dt, dt_bias, dt_softplus, lo, hi, cd);  // (b, h)
  const at::Tensor dt_ch = dtc.unsqueeze(-1).expand({batch, heads, headdim}).reshape({batch, dim});
  const at::Tensor A_ch = A.view({heads, 1, 1}).expand({heads, headdim, dstate}).reshape({dim, dstate});
  OptTensor D_ch;
  if (D) D_ch = (D->dim() == 1 ? D->unsqueeze(-1).expand({heads, headdim}) : *D).reshape({dim});
  OptTensor z_ch;
  if (z) z_ch = z->reshape({batch, dim});
  TORCH_CHECK(state.is_contiguous(), kStepOp, ": state must be contiguous (it is updated in place)");
  at::Tensor st = state.view({batch, dim, dstate});
  at::Tensor out = selective_state_update(st, x.reshape({batch, dim}), dt_ch, A_ch, B, C, D_ch, z_ch);
  return out.view({batch, heads, headdim});
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> ssd_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                            const at::Tensor& B, const at::Tensor& C, int64_t chunk_size,
                                            const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                            const OptTensor& initial_states, const OptTensor& seq_idx, bool dt_softplus,
                                            std::optional<at::ArrayRef<double>> dt_limit, bool return_final_states) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mft::ssd_scan", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, int64_t, const OptTensor&, const OptTensor&, const OptTensor&,
                           const OptTensor&, const OptTensor&, bool, std::optional<at::ArrayRef<double>>, bool)>();
  return op.call(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, seq_idx, dt_softplus, dt_limit,
                 return_final_states);
}

at::Tensor ssd_state_update(at::Tensor& state, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                            const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                            const OptTensor& dt_bias, bool dt_softplus, std::optional<at::ArrayRef<double>> dt_limit) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mft::ssd_state_update", "")
                       .typed<at::Tensor(at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&,
                                         const OptTensor&, bool, std::optional<at::ArrayRef<double>>)>();
  return op.call(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus, dt_limit);
}

TORCH_LIBRARY_FRAGMENT(mft, m) {
  m.def(
      "ssd_scan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, int chunk_size=256, Tensor? D=None, "
      "Tensor? z=None, Tensor? dt_bias=None, Tensor? initial_states=None, Tensor? seq_idx=None, "
      "bool dt_softplus=False, float[]? dt_limit=None, bool return_final_states=False) "
      "-> (Tensor out, Tensor final_states)");
  m.def(
      "ssd_scan_backward(Tensor dout, Tensor? dfinal_states, Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, "
      "int chunk_size, Tensor? D, Tensor? z, Tensor? dt_bias, Tensor? initial_states, Tensor? seq_idx, "
      "bool dt_softplus, float[]? dt_limit) -> (Tensor dx, Tensor ddt, Tensor dA, Tensor dB, Tensor dC, "
      "Tensor dD, Tensor dz, Tensor ddt_bias, Tensor dinitial_states)");
  m.def(
      "ssd_state_update(Tensor(a!) state, Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D=None, "
      "Tensor? z=None, Tensor? dt_bias=None, bool dt_softplus=False, float[]? dt_limit=None) -> Tensor");
}

// The chunked forward/backward and the decode step are written with ATen ops, so one registration
// serves every backend (a hand-written CUDA kernel, when built, takes the CUDA key over).
TORCH_LIBRARY_IMPL(mft, CompositeExplicitAutograd, m) {
  m.impl("ssd_scan", &ssd_scan_chunked);
  m.impl("ssd_scan_backward", &ssd_scan_backward_chunked);
  m.impl("ssd_state_update", &ssd_state_update_impl);
}

}  // namespace mft
