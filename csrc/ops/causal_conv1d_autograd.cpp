// Autograd and Autocast registrations of mft::causal_conv1d. The backward recomputes the
// pre-activation from the saved inputs instead of storing it.
#include "ops/causal_conv1d.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace mft {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class CausalConv1dFunction : public torch::autograd::Function<CausalConv1dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                            const OptTensor& initial_states, bool silu, const OptTensor& seq_idx) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, weight, or_undefined(bias), or_undefined(initial_states), or_undefined(seq_idx)});
    ctx->saved_data["silu"] = silu;
    return causal_conv1d(x, weight, bias, initial_states, silu, seq_idx);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // The backward op has no derivative of its own: refuse create_graph=True rather than return
    // gradients that silently lack a graph.
    TORCH_CHECK(!at::GradMode::is_enabled(), "causal_conv1d: double backward (create_graph=True) is not supported");
    const auto s = ctx->get_saved_variables();
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mft::causal_conv1d_backward", "")
                         .typed<ConvGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
                                          const OptTensor&, bool, const OptTensor&)>();
    auto [dx, dw, db, dinit] =
        op.call(grads[0], s[0], s[1], or_none(s[2]), or_none(s[3]), ctx->saved_data["silu"].toBool(), or_none(s[4]));
    return {dx, dw, db, dinit, at::Tensor(), at::Tensor()};
  }
};

at::Tensor causal_conv1d_autograd(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                                  const OptTensor& initial_states, bool silu, const OptTensor& seq_idx) {
  return CausalConv1dFunction::apply(x, weight, bias, initial_states, silu, seq_idx);
}

// Under autocast the convolution runs like F.conv1d: input, weight, bias and states in the autocast
// dtype (accumulation stays fp32 inside the kernel).
template <c10::DeviceType kDevice>
at::Tensor causal_conv1d_autocast(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                                  const OptTensor& initial_states, bool silu, const OptTensor& seq_idx) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType act = at::autocast::get_autocast_dtype(kDevice);
  auto low = [&](const at::Tensor& t) { return t.scalar_type() == at::kDouble ? t : t.to(act); };
  auto low_opt = [&](const OptTensor& t) { return t ? OptTensor(low(*t)) : std::nullopt; };
  return causal_conv1d(low(x), low(weight), low_opt(bias), low_opt(initial_states), silu, seq_idx);
}
}  // namespace

TORCH_LIBRARY_IMPL(mft, Autograd, m) {
  m.impl("causal_conv1d", &causal_conv1d_autograd);
}
TORCH_LIBRARY_IMPL(mft, AutocastCPU, m) {
  m.impl("causal_conv1d", &causal_conv1d_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(mft, AutocastCUDA, m) {
  m.impl("causal_conv1d", &causal_conv1d_autocast<c10::DeviceType::CUDA>);
}

}  // namespace mft
