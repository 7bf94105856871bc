// mft::causal_conv1d: schema, validation, C++ entry point, cost formula.
#include "ops/causal_conv1d.h"

#include "core/check.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace mft {
namespace {
constexpr const char* kOp = "causal_conv1d";

void check_same_precision(const at::Tensor& t, const at::Tensor& x, const char* name) {
  check_floating(t, kOp, name);
  TORCH_CHECK((t.scalar_type() == at::kDouble) == (x.scalar_type() == at::kDouble), kOp, ": ", name,
              " must be float64 exactly when x is; got ", t.scalar_type(), " with x ", x.scalar_type());
  check_device(t, x, kOp, name);
}
}  // namespace

ConvGeometry check_causal_conv1d_args(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                                      const OptTensor& initial_states, const OptTensor& seq_idx) {
  check_floating(x, kOp, "x");
  check_dim(x, 3, kOp, "x", "(batch, dim, seqlen)");
  ConvGeometry g{x.size(0), x.size(1), x.size(2), 0};
  TORCH_CHECK(g.batch > 0 && g.dim > 0 && g.seqlen > 0, kOp, ": x must have batch, dim and seqlen >= 1; got ",
              shape_str(x.sizes()));
  check_dim(weight, 2, kOp, "weight", "(dim, width)");
  g.width = weight.size(1);
  TORCH_CHECK(g.width >= 1, kOp, ": weight width must be >= 1; got ", shape_str(weight.sizes()));
  check_sizes(weight, {g.dim, g.width}, kOp, "weight", "(dim, width)");
  check_same_precision(weight, x, "weight");
  if (bias) {
    check_sizes(*bias, {g.dim}, kOp, "bias", "(dim,)");
    check_same_precision(*bias, x, "bias");
  }
  if (initial_states) {
    check_sizes(*initial_states, {g.batch, g.dim, g.width - 1}, kOp, "initial_states", "(batch, dim, width - 1)");
    check_same_precision(*initial_states, x, "initial_states");
  }
  if (seq_idx) {
    check_sizes(*seq_idx, {g.batch, g.seqlen}, kOp, "seq_idx", "(batch, seqlen)");
    check_dtype(*seq_idx, at::kInt, kOp, "seq_idx");
    check_device(*seq_idx, x, kOp, "seq_idx");
  }
  return g;
}

double causal_conv1d_fwd_bytes(const at::Tensor& x, const at::Tensor& weight) {
  return 2.0 * x.nbytes() + weight.nbytes();
}

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                         const OptTensor& initial_states, bool silu, const OptTensor& seq_idx) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mft::causal_conv1d", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&, bool,
                                         const OptTensor&)>();
  return op.call(x, weight, bias, initial_states, silu, seq_idx);
}

TORCH_LIBRARY_FRAGMENT(mft, m) {
  m.def(
      "causal_conv1d(Tensor x, Tensor weight, Tensor? bias=None, Tensor? initial_states=None, bool silu=False, "
      "Tensor? seq_idx=None) -> Tensor");
  m.def(
      "causal_conv1d_backward(Tensor dout, Tensor x, Tensor weight, Tensor? bias, Tensor? initial_states, "
      "bool silu, Tensor? seq_idx) -> (Tensor dx, Tensor dweight, Tensor dbias, Tensor dinitial_states)");
}

TORCH_LIBRARY_IMPL(mft, CPU, m) {
  m.impl("causal_conv1d", &causal_conv1d_cpu);
  m.impl("causal_conv1d_backward", &causal_conv1d_backward_cpu);
}

}  // namespace mft
