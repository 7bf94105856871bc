// mft::selective_scan: schema, argument validation, the C++ entry point and cost formulas.
#include "ops/selective_scan.h"

#include "core/check.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace mft {
namespace {
constexpr const char* kOp = "selective_scan";

// B or C: (D, N) time-invariant, (B, N, L), or (B, G, N, L). Returns groups (0 when time-invariant).
int64_t check_bc(const at::Tensor& t, const char* name, int64_t batch, int64_t dim, int64_t dstate, int64_t seqlen) {
  check_floating(t, kOp, name);
  if (t.dim() == 2) {
    check_sizes(t, {dim, dstate}, kOp, name, "time-invariant (dim, dstate)");
    return 0;
  }
  if (t.dim() == 3) {
    check_sizes(t, {batch, dstate, seqlen}, kOp, name, "(batch, dstate, seqlen)");
    return 1;
  }
  TORCH_CHECK(t.dim() == 4, kOp, ": ", name,
              " must be (dim, dstate), (batch, dstate, seqlen) or (batch, groups, dstate, seqlen); got shape ",
              shape_str(t.sizes()));
  const int64_t groups = t.size(1);
  TORCH_CHECK(groups >= 1 && dim % groups == 0, kOp, ": dim (", dim, ") must be divisible by the groups of ", name,
              " (", groups, ")");
  check_sizes(t, {batch, groups, dstate, seqlen}, kOp, name, "(batch, groups, dstate, seqlen)");
  return groups;
}
}  // namespace

ScanGeometry check_selective_scan_args(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                       const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                       const OptTensor& delta_bias, const OptTensor& initial_state,
                                       const OptTensor& seq_idx) {
  check_floating(u, kOp, "u");
  check_dim(u, 3, kOp, "u", "(batch, dim, seqlen)");
  ScanGeometry g;
  g.batch = u.size(0);
  g.dim = u.size(1);
  g.seqlen = u.size(2);
  TORCH_CHECK(g.batch > 0 && g.dim > 0 && g.seqlen > 0, kOp, ": u must have batch, dim and seqlen >= 1; got ",
              shape_str(u.sizes()));
  check_floating(delta, kOp, "delta");
  check_sizes(delta, u.sizes(), kOp, "delta", "(batch, dim, seqlen) like u");
  const at::ScalarType cd = compute_dtype(u);
  TORCH_CHECK((delta.scalar_type() == at::kDouble) == (cd == at::kDouble), kOp,
              ": u and delta must both be float64 or both be 16/32-bit; got ", u.scalar_type(), " and ",
              delta.scalar_type());
  check_dim(A, 2, kOp, "A", "(dim, dstate)");
  g.dstate = A.size(1);
  TORCH_CHECK(g.dstate >= 1, kOp, ": A must have dstate >= 1; got ", shape_str(A.sizes()));
  check_state_param(A, cd, {g.dim, g.dstate}, kOp, "A", "(dim, dstate)", "u");
  const int64_t gb = check_bc(B, "B", g.batch, g.dim, g.dstate, g.seqlen);
  const int64_t gc = check_bc(C, "C", g.batch, g.dim, g.dstate, g.seqlen);
  g.var_B = gb > 0;
  g.var_C = gc > 0;
  TORCH_CHECK(!(g.var_B && g.var_C) || gb == gc, kOp, ": B and C must have the same number of groups; got ", gb,
              " and ", gc);
  g.groups = std::max<int64_t>({gb, gc, 1});
  for (const auto* t : {&B, &C}) {
    TORCH_CHECK(t->dim() == 2 || (t->scalar_type() == at::kDouble) == (cd == at::kDouble), kOp,
                ": time-varying B and C must be float64 exactly when u is; got ", t->scalar_type());
    TORCH_CHECK(t->dim() != 2 || t->scalar_type() == cd, kOp, ": time-invariant B and C must be ", cd, "; got ",
                t->scalar_type());
  }
  if (D) check_state_param(*D, cd, {g.dim}, kOp, "D", "(dim,)", "u");
  if (delta_bias) {
    check_state_param(*delta_bias, cd, {g.dim}, kOp, "delta_bias", "(dim,)", "u");
    check_finite(*delta_bias, kOp, "delta_bias");
  }
  if (z) {
    check_floating(*z, kOp, "z");
    check_sizes(*z, u.sizes(), kOp, "z", "(batch, dim, seqlen) like u");
    TORCH_CHECK((z->scalar_type() == at::kDouble) == (cd == at::kDouble), kOp,
                ": z must be float64 exactly when u is; got ", z->scalar_type());
  }
  if (initial_state) {
    check_state_param(*initial_state, cd, {g.batch, g.dim, g.dstate}, kOp, "initial_state", "(batch, dim, dstate)",
                      "u");
  }
  if (seq_idx) {
    check_sizes(*seq_idx, {g.batch, g.seqlen}, kOp, "seq_idx", "(batch, seqlen)");
    check_dtype(*seq_idx, at::kInt, kOp, "seq_idx");
  }
  for (const auto& [t, name] : {std::pair{&delta, "delta"}, {&A, "A"}, {&B, "B"}, {&C, "C"}}) {
    check_device(*t, u, kOp, name);
  }
  for (const auto& [t, name] : {std::pair{&D, "D"},
                                {&z, "z"},
                                {&delta_bias, "delta_bias"},
                                {&initial_state, "initial_state"},
                                {&seq_idx, "seq_idx"}}) {
    if (*t) check_device(**t, u, kOp, name);
  }
  return g;
}

double selective_scan_fwd_bytes(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& B, const at::Tensor& C,
                                const OptTensor& z) {
  double bytes = 2.0 * u.nbytes() + delta.nbytes() + B.nbytes() + C.nbytes();  // u in, out
  if (z) bytes += z->nbytes();
  return bytes;
}

double selective_scan_exp_count(const ScanGeometry& g) {
  return double(g.batch) * double(g.dim) * double(g.seqlen) * double(g.dstate);
}

std::tuple<at::Tensor, at::Tensor> selective_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                                  const at::Tensor& B, const at::Tensor& C, const OptTensor& D,
                                                  const OptTensor& z, const OptTensor& delta_bias, bool delta_softplus,
                                                  const OptTensor& initial_state, bool return_last_state,
                                                  const OptTensor& seq_idx) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mft::selective_scan", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(
              const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
              const OptTensor&, const OptTensor&, const OptTensor&, bool, const OptTensor&, bool, const OptTensor&)>();
  return op.call(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx);
}

TORCH_LIBRARY_FRAGMENT(mft, m) {
  m.def(
      "selective_scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D=None, Tensor? z=None, "
      "Tensor? delta_bias=None, bool delta_softplus=False, Tensor? initial_state=None, "
      "bool return_last_state=False, Tensor? seq_idx=None) -> (Tensor out, Tensor last_state)");
  // Internal pair used by the Autograd kernel: the forward also returns the states every 256 steps
  // (checkpoints), which the backward takes (or recomputes when None).
  m.def(
      "selective_scan_fwd(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, "
      "Tensor? delta_bias, bool delta_softplus, Tensor? initial_state, bool return_last_state, Tensor? seq_idx) "
      "-> (Tensor out, Tensor last_state, Tensor checkpoints)");
  m.def(
      "selective_scan_backward(Tensor dout, Tensor? dlast_state, Tensor u, Tensor delta, Tensor A, Tensor B, "
      "Tensor C, Tensor? D, Tensor? z, Tensor? delta_bias, bool delta_softplus, Tensor? initial_state, "
      "Tensor? seq_idx, Tensor? checkpoints=None) -> (Tensor du, Tensor ddelta, Tensor dA, Tensor dB, Tensor dC, "
      "Tensor dD, Tensor dz, "
      "Tensor ddelta_bias, Tensor dinitial_state)");
}

TORCH_LIBRARY_IMPL(mft, CPU, m) {
  m.impl("selective_scan", &selective_scan_cpu);
  m.impl("selective_scan_fwd", &selective_scan_fwd_cpu);
  m.impl("selective_scan_backward", &selective_scan_backward_cpu);
}

}  // namespace mft
