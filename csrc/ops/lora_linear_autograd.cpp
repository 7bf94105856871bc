// Autograd and Autocast registrations of mft::lora_linear.
// Autograd: saves the inputs (no activations of the low-rank path, no dropout mask: the backward
// recomputes x Aᵀ, one thin GEMM, and the mask from its seed). W0 and the bias get gradients only when
// they required grad at forward time, so a frozen base costs no (out x in) GEMM.
// Autocast: x, W0, b, A, B in the autocast dtype (a frozen W0 and b from the cast cache); the GEMMs
// accumulate in fp32.
#include "ops/lora_linear.h"

#include "core/cast_cache.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace mft {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LoraLinearFunction : public torch::autograd::Function<LoraLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                            const at::Tensor& lora_A, const at::Tensor& lora_B, double scale, double dropout_p,
                            bool training, std::optional<int64_t> dropout_seed) {
    if (lora_dropout_active(dropout_p, training) && !dropout_seed) dropout_seed = draw_lora_dropout_seed();
    std::array<bool, 5> needs = {x.requires_grad(), weight.requires_grad(), bias && bias->requires_grad(),
                                 lora_A.requires_grad(), lora_B.requires_grad()};
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor y = lora_linear(x, weight, bias, lora_A, lora_B, scale, dropout_p, training, dropout_seed);
    ctx->save_for_backward({x, weight, lora_A, lora_B});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dropout_p"] = dropout_p;
    ctx->saved_data["training"] = training;
    ctx->saved_data["seed"] = dropout_seed ? c10::IValue(*dropout_seed) : c10::IValue();
    int64_t bits = 0;  // which inputs get a gradient, one bit each
    for (size_t i = 0; i < needs.size(); ++i) bits |= int64_t(needs[i]) << i;
    ctx->saved_data["needs"] = bits;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(), "lora_linear: double backward (create_graph=True) is not supported");
    const auto s = ctx->get_saved_variables();
    const int64_t bits = ctx->saved_data["needs"].toInt();
    std::array<bool, 5> mask{};
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = (bits >> i) & 1;
    const c10::IValue& seed = ctx->saved_data["seed"];
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mft::lora_linear_backward", "")
                         .typed<LoraLinearGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, const at::Tensor&, double, double, bool,
                                                std::optional<int64_t>, std::array<bool, 5>)>();
    auto [dx, dw, db, dA, dB] = op.call(grads[0], s[0], s[1], s[2], s[3], ctx->saved_data["scale"].toDouble(),
                                        ctx->saved_data["dropout_p"].toDouble(), ctx->saved_data["training"].toBool(),
                                        seed.isNone() ? std::nullopt : std::optional<int64_t>(seed.toInt()), mask);
    // One gradient per forward argument; none for scale, dropout_p, training and the seed.
    return {dx, dw, db, dA, dB, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor lora_linear_autograd(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                                const at::Tensor& lora_A, const at::Tensor& lora_B, double scale, double dropout_p,
                                bool training, std::optional<int64_t> dropout_seed) {
  return LoraLinearFunction::apply(x, weight, bias, lora_A, lora_B, scale, dropout_p, training, dropout_seed);
}

template <c10::DeviceType kDevice>
at::Tensor lora_linear_autocast(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                                const at::Tensor& lora_A, const at::Tensor& lora_B, double scale, double dropout_p,
                                bool training, std::optional<int64_t> dropout_seed) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType act = at::autocast::get_autocast_dtype(kDevice);
  auto low = [&](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? t.to(act) : t;
  };
  // Frozen base weights keep their low-precision copy from step to step (core/cast_cache.h).
  auto low_weight = [&](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? cached_cast(t, act) : t;
  };
  const OptTensor b = bias ? OptTensor(low_weight(*bias)) : std::nullopt;
  return lora_linear(low(x), low_weight(weight), b, low(lora_A), low(lora_B), scale, dropout_p, training, dropout_seed);
}
}  // namespace

TORCH_LIBRARY_IMPL(mft, Autograd, m) {
  m.impl("lora_linear", &lora_linear_autograd);
}
TORCH_LIBRARY_IMPL(mft, AutocastCPU, m) {
  m.impl("lora_linear", &lora_linear_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(mft, AutocastCUDA, m) {
  m.impl("lora_linear", &lora_linear_autocast<c10::DeviceType::CUDA>);
}

}  // namespace mft
