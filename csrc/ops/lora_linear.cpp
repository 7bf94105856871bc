// mft::lora_linear: schema, argument validation, the dropout mask, and the kernels. Forward and
// backward are GEMMs written with ATen (addmm/mm), so one CompositeExplicitAutograd registration serves
// every backend. The low-rank path is always two thin GEMMs (N x in x r, then N x r x out): forming
// W0 + s·B·A would cost an (out x in) temporary and out·in·r flops per call.
#include "ops/lora_linear.h"

#include "core/check.h"
#include "ops/thin_gemm.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <limits>

namespace mft {
namespace {
constexpr const char* kOp = "lora_linear";
}  // namespace

void check_lora_linear_args(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                            const at::Tensor& lora_A, const at::Tensor& lora_B, double scale, double dropout_p) {
  check_floating(x, kOp, "x");
  TORCH_CHECK(x.dim() >= 1, kOp, ": x must be (..., in_features); got a scalar");
  const int64_t in = x.size(-1);
  check_dim(weight, 2, kOp, "weight", "(out_features, in_features)");
  const int64_t out = weight.size(0);
  check_sizes(weight, {out, in}, kOp, "weight", "(out_features, in_features) with in_features = x.size(-1)");
  check_dtype(weight, x.scalar_type(), kOp, "weight");
  if (bias) {
    check_sizes(*bias, {out}, kOp, "bias", "(out_features,)");
    check_dtype(*bias, x.scalar_type(), kOp, "bias");
    check_device(*bias, x, kOp, "bias");
  }
  check_floating(lora_A, kOp, "lora_A");
  check_dim(lora_A, 2, kOp, "lora_A", "(rank, in_features)");
  const int64_t r = lora_A.size(0);
  TORCH_CHECK(r >= 1, kOp, ": lora_A must have rank >= 1; got ", shape_str(lora_A.sizes()));
  check_sizes(lora_A, {r, in}, kOp, "lora_A", "(rank, in_features) with in_features = x.size(-1)");
  check_sizes(lora_B, {out, r}, kOp, "lora_B", "(out_features, rank) matching weight and lora_A");
  check_dtype(lora_B, lora_A.scalar_type(), kOp, "lora_B");
  TORCH_CHECK((x.scalar_type() == at::kDouble) == (lora_A.scalar_type() == at::kDouble), kOp,
              ": lora_A and lora_B must be float64 exactly when x is; got x ", x.scalar_type(), ", lora_A ",
              lora_A.scalar_type());
  for (const auto& [t, name] : {std::pair{&weight, "weight"}, {&lora_A, "lora_A"}, {&lora_B, "lora_B"}}) {
    check_device(*t, x, kOp, name);
  }
  TORCH_CHECK(std::isfinite(scale), kOp, ": scale must be finite; got ", scale);
  TORCH_CHECK(dropout_p >= 0.0 && dropout_p < 1.0, kOp, ": dropout_p must be in [0, 1); got ", dropout_p);
}

at::Tensor lora_dropout_mask(at::IntArrayRef sizes, double p, int64_t seed, at::ScalarType dtype,
                             const c10::Device& device) {
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
  // A generator local to this call (ATen's kernels lock it themselves).
  at::Tensor keep = at::empty(sizes, at::TensorOptions().dtype(at::kFloat));
  keep.bernoulli_(1.0 - p, gen);
  return keep.mul_(1.0 / (1.0 - p)).to(device, dtype);
}

int64_t draw_lora_dropout_seed() {
  return at::randint(std::numeric_limits<int64_t>::max(), {1}, at::TensorOptions().dtype(at::kLong)).item<int64_t>();
}

namespace {
// The low-rank path computes in fp32 (fp64 for checks) whatever the adapters' dtype: its GEMMs are thin
// (rank r), so fp32 costs little, and the update is rounded once when added to the base output.
at::ScalarType lora_compute_dtype(const at::Tensor& lora_A) {
  return lora_A.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// The LoRA input in the compute dtype: x, or x times the dropout multiplier. (N, in)
at::Tensor lora_input(const at::Tensor& x2, at::ScalarType cd, double p, bool training, std::optional<int64_t> seed) {
  at::Tensor xl = x2.to(cd);
  if (!lora_dropout_active(p, training)) return xl;
  TORCH_CHECK(seed, kOp, ": dropout needs dropout_seed (the Autograd layer draws one when it is None)");
  return xl * lora_dropout_mask(x2.sizes(), p, *seed, cd, x2.device());
}

// Whether the low-rank products run in ops/thin_gemm.h (fp32 sums reading x in its own dtype: no fp32
// copy of x or of the output): CPU fp32/bf16/fp16 activations, fp32 (or bf16/fp16) adapters, no dropout.
bool thin_path(const at::Tensor& x2, const at::Tensor& lora_A, double p, bool training) {
  return lora_compute_dtype(lora_A) == at::kFloat && !lora_dropout_active(p, training) && thin::supported(x2.t());
}

at::Tensor lora_linear_kernel(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                              const at::Tensor& lora_A, const at::Tensor& lora_B, double scale, double dropout_p,
                              bool training, std::optional<int64_t> dropout_seed) {
  check_lora_linear_args(x, weight, bias, lora_A, lora_B, scale, dropout_p);
  const int64_t in = weight.size(1), out = weight.size(0);
  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes.back() = out;
  const at::Tensor x2 = x.reshape({-1, in});                                        // (N, in)
  at::Tensor y = bias ? at::addmm(*bias, x2, weight.t()) : at::mm(x2, weight.t());  // (N, out)
  if (thin_path(x2, lora_A, dropout_p, training)) {  // (N, out) seen as (out, N): y += s B (A x2ᵀ)
    thin::add_b_u_(y.t(), lora_B.to(at::kFloat), thin::w_x(lora_A.to(at::kFloat), x2.t()), scale);
    return y.view(out_sizes);
  }
  const at::ScalarType cd = lora_compute_dtype(lora_A);
  const at::Tensor u = at::mm(lora_input(x2, cd, dropout_p, training, dropout_seed), lora_A.to(cd).t());  // (N, r)
  if (y.scalar_type() == cd) {
    y.addmm_(u, lora_B.to(cd).t(), /*beta=*/1, /*alpha=*/scale);
  } else {  // low-precision base: add the update in fp32 (in place on the cast), round once
    y = y.to(cd).addmm_(u, lora_B.to(cd).t(), /*beta=*/1, /*alpha=*/scale).to(x.scalar_type());
  }
  return y.view(out_sizes);
}

LoraLinearGrads lora_linear_backward_kernel(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight,
                                            const at::Tensor& lora_A, const at::Tensor& lora_B, double scale,
                                            double dropout_p, bool training, std::optional<int64_t> dropout_seed,
                                            std::array<bool, 5> mask) {
  const int64_t in = weight.size(1), out = weight.size(0);
  const at::ScalarType cd = lora_compute_dtype(lora_A), ad = lora_A.scalar_type();
  const at::Tensor dy2 = dy.reshape({-1, out}), x2 = x.reshape({-1, in});  // (N, out), (N, in)
  at::Tensor dx, dw, db, dA, dB;
  if (thin_path(x2, lora_A, dropout_p, training) && thin::supported(dy2.t())) {
    // On the transposed views (out, N), (in, N); dx = dy2 W plus the adapter's part, rounded once.
    if (mask[0]) dx = at::mm(dy2, weight);  // (N, in)
    auto [da, dbt] = thin::update_backward(dy2.t(), x2.t(), lora_A.to(at::kFloat), lora_B.to(at::kFloat), scale,
                                           mask[0] ? dx.t() : at::Tensor(), mask[3], mask[4]);
    if (mask[0]) dx = dx.view(x.sizes());
    if (mask[3]) dA = da.to(ad);
    if (mask[4]) dB = dbt.t().mul(scale).to(ad).contiguous();
    if (mask[1]) dw = at::mm(dy2.t(), x2);
    if (mask[2]) db = dy2.sum(0);
    return {dx, dw, db, dA, dB};
  }
  const at::Tensor A = lora_A.to(cd), B = lora_B.to(cd);
  const at::Tensor dyl = dy2.to(cd);
  const bool need_g = mask[0] || mask[3];
  const bool dropout = lora_dropout_active(dropout_p, training);
  at::Tensor drop;  // (N, in) multiplier, only with dropout
  if (dropout && (mask[0] || mask[3] || mask[4])) {
    TORCH_CHECK(dropout_seed, kOp, "_backward: dropout needs dropout_seed");
    drop = lora_dropout_mask(x2.sizes(), dropout_p, *dropout_seed, cd, x.device());
  }
  at::Tensor xl;  // LoRA input (N, in)
  if (mask[3] || mask[4]) xl = drop.defined() ? x2.to(cd) * drop : x2.to(cd);
  if (need_g) {
    const at::Tensor g = at::mm(dyl, B).mul_(scale);  // (N, r): gradient of u = xl Aᵀ, times s
    if (mask[3]) dA = at::mm(g.t(), xl).to(ad);       // (r, in)
    if (mask[0]) {
      at::Tensor gx = at::mm(g, A);  // (N, in)
      if (drop.defined()) gx.mul_(drop);
      dx = gx.scalar_type() == x.scalar_type() ? gx.addmm_(dy2, weight)
                                               : at::mm(dy2, weight).to(cd).add_(gx).to(x.scalar_type());
      dx = dx.view(x.sizes());
    }
  }
  if (mask[4]) dB = at::mm(dyl.t(), at::mm(xl, A.t())).mul_(scale).to(ad);  // (out, r)
  if (mask[1]) dw = at::mm(dy2.t(), x2);                                    // (out, in)
  if (mask[2]) db = dy2.sum(0);                                             // (out,)
  return {dx, dw, db, dA, dB};
}
}  // namespace

at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias, const at::Tensor& lora_A,
                       const at::Tensor& lora_B, double scale, double dropout_p, bool training,
                       std::optional<int64_t> dropout_seed) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mft::lora_linear", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const OptTensor&, const at::Tensor&,
                                         const at::Tensor&, double, double, bool, std::optional<int64_t>)>();
  return op.call(x, weight, bias, lora_A, lora_B, scale, dropout_p, training, dropout_seed);
}

TORCH_LIBRARY_FRAGMENT(mft, m) {
  m.def(
      "lora_linear(Tensor x, Tensor weight, Tensor? bias, Tensor lora_A, Tensor lora_B, float scale, "
      "float dropout_p=0., bool training=False, int? dropout_seed=None) -> Tensor");
  m.def(
      "lora_linear_backward(Tensor dy, Tensor x, Tensor weight, Tensor lora_A, Tensor lora_B, float scale, "
      "float dropout_p, bool training, int? dropout_seed, bool[5] output_mask) "
      "-> (Tensor dx, Tensor dweight, Tensor dbias, Tensor dlora_A, Tensor dlora_B)");
}

TORCH_LIBRARY_IMPL(mft, CompositeExplicitAutograd, m) {
  m.impl("lora_linear", &lora_linear_kernel);
  m.impl("lora_linear_backward", &lora_linear_backward_kernel);
}

}  // namespace mft
