// Autograd and Autocast registrations of mft::mamba_inner.
// Autograd: saves the inputs, x_dbl, the scan output y and the scan's state checkpoints (checkpoint
// level 1: the conv output and dt are recomputed in backward); asks mamba_inner_backward only for the
// gradients of inputs that required grad, so frozen base weights cost no weight-gradient GEMM.
// Autocast: xz, the conv, the projection weights and biases and the LoRA factors in the autocast dtype
// (as lora_linear; frozen weights and biases from the cast cache); A, D and dt_bias stay fp32.
#include "core/cast_cache.h"
#include "ops/lora_linear.h"
#include "ops/mamba_inner_kernels.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace mft {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class MambaInnerFunction : public torch::autograd::Function<MambaInnerFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, MFT_MAMBA_INNER_PARAMS) {
    if (lora_dropout_active(lora_dropout, training) && !dropout_seed) dropout_seed = draw_lora_dropout_seed();
    const std::vector<OptTensor> inputs = {
        xz,      conv_weight,   conv_bias,     x_proj_weight,  dt_proj_weight, out_proj_weight, out_proj_bias,  A, D,
        dt_bias, x_proj_lora_A, x_proj_lora_B, dt_proj_lora_A, dt_proj_lora_B, out_proj_lora_A, out_proj_lora_B};
    int64_t needs = 0;  // which differentiable inputs get a gradient, one bit each
    for (size_t i = 0; i < inputs.size(); ++i) needs |= int64_t(inputs[i] && inputs[i]->requires_grad()) << i;
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto fwd =
        c10::Dispatcher::singleton().findSchemaOrThrow("mft::mamba_inner_fwd", "").typed<MambaInnerFwdSignature>();
    auto [out, x_dbl, y, checkpoints] = fwd.call(MFT_MAMBA_INNER_ARGS);
    std::vector<at::Tensor> saved;
    for (const auto& t : inputs) saved.push_back(or_undefined(t));
    for (const auto& t : {or_undefined(seq_idx), x_dbl, y, checkpoints}) saved.push_back(t);
    ctx->save_for_backward(saved);
    ctx->saved_data["lora_scales"] = lora_scales.vec();
    ctx->saved_data["lora_dropout"] = lora_dropout;
    ctx->saved_data["training"] = training;
    ctx->saved_data["seed"] = dropout_seed ? c10::IValue(*dropout_seed) : c10::IValue();
    ctx->saved_data["needs"] = needs;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(), "mamba_inner: double backward (create_graph=True) is not supported");
    const auto s = ctx->get_saved_variables();
    const int64_t needs = ctx->saved_data["needs"].toInt();
    std::array<bool, kMambaInnerGrads> mask{};
    for (int i = 0; i < kMambaInnerGrads; ++i) mask[i] = (needs >> i) & 1;
    const std::vector<double> scales = ctx->saved_data["lora_scales"].toDoubleVector();
    const c10::IValue& seed = ctx->saved_data["seed"];
    auto o = [&](int i) { return or_none(s[i]); };
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mft::mamba_inner_backward", "")
                         .typed<MambaInnerBackwardSignature>();
    const at::Tensor& dout = grads[0];
    std::vector<at::Tensor> g = op.call(
        dout, s[17], s[18], s[19], s[0], s[1], o(2), s[3], s[4], s[5], o(6), s[7], o(8), o(9), o(10), o(11), o(12),
        o(13), o(14), o(15), scales, ctx->saved_data["lora_dropout"].toDouble(), ctx->saved_data["training"].toBool(),
        seed.isNone() ? std::nullopt : std::optional<int64_t>(seed.toInt()), o(16), mask);
    variable_list out(kMambaInnerGrads + 5);  // none for lora_scales, lora_dropout, training, seed, seq_idx
    for (int i = 0; i < kMambaInnerGrads; ++i) {
      if (mask[i]) out[i] = g[i];
    }
    return out;
  }
};

at::Tensor mamba_inner_autograd(MFT_MAMBA_INNER_PARAMS) {
  return MambaInnerFunction::apply(MFT_MAMBA_INNER_ARGS);
}

template <c10::DeviceType kDevice>
at::Tensor mamba_inner_autocast(MFT_MAMBA_INNER_PARAMS) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType act = at::autocast::get_autocast_dtype(kDevice);
  auto low = [&](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? t.to(act) : t;
  };
  auto low_opt = [&](const OptTensor& t) { return t ? OptTensor(low(*t)) : std::nullopt; };
  // Frozen base weights keep their low-precision copy from step to step (core/cast_cache.h).
  auto low_weight = [&](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? cached_cast(t, act) : t;
  };
  auto low_weight_opt = [&](const OptTensor& t) { return t ? OptTensor(low_weight(*t)) : std::nullopt; };
  return mamba_inner(low(xz), low_weight(conv_weight), low_weight_opt(conv_bias), low_weight(x_proj_weight),
                     low_weight(dt_proj_weight), low_weight(out_proj_weight), low_weight_opt(out_proj_bias), A, D,
                     dt_bias, low_opt(x_proj_lora_A), low_opt(x_proj_lora_B), low_opt(dt_proj_lora_A),
                     low_opt(dt_proj_lora_B), low_opt(out_proj_lora_A), low_opt(out_proj_lora_B), lora_scales,
                     lora_dropout, training, dropout_seed, seq_idx);
}
}  // namespace

TORCH_LIBRARY_IMPL(mft, Autograd, m) {
  m.impl("mamba_inner", &mamba_inner_autograd);
}
TORCH_LIBRARY_IMPL(mft, AutocastCPU, m) {
  m.impl("mamba_inner", &mamba_inner_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(mft, AutocastCUDA, m) {
  m.impl("mamba_inner", &mamba_inner_autocast<c10::DeviceType::CUDA>);
}

}  // namespace mft
