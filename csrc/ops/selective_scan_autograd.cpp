// Autograd and Autocast registrations of mft::selective_scan.
// Autograd: saves the inputs and the state every 256 steps (selective_scan_fwd); the backward op
// recomputes the states in between (see selective_scan_cpu.cpp), so memory beyond inputs and outputs is
// batch * dim * dstate * ceil(seqlen / 256) floats, never one state per step.
// Autocast: activations (u, delta, z, time-varying B/C) in the autocast dtype; A, D, delta_bias,
// time-invariant B/C and the initial state stay fp32.
#include "ops/selective_scan.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace mft {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                               const at::Tensor& B, const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                               const OptTensor& delta_bias, bool delta_softplus, const OptTensor& initial_state,
                               bool return_last_state, const OptTensor& seq_idx) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto fwd = c10::Dispatcher::singleton()
                          .findSchemaOrThrow("mft::selective_scan_fwd", "")
                          .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                              const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, const OptTensor&, const OptTensor&, const OptTensor&, bool,
                              const OptTensor&, bool, const OptTensor&)>();
    auto [out, last, checkpoints] =
        fwd.call(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state, seq_idx);
    ctx->save_for_backward({u, delta, A, B, C, or_undefined(D), or_undefined(z), or_undefined(delta_bias),
                            or_undefined(initial_state), or_undefined(seq_idx), checkpoints});
    ctx->saved_data["delta_softplus"] = delta_softplus;
    if (!return_last_state) ctx->mark_non_differentiable({last});
    return {out, last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // The backward op has no derivative of its own: refuse create_graph=True rather than return
    // gradients that silently lack a graph.
    TORCH_CHECK(!at::GradMode::is_enabled(), "selective_scan: double backward (create_graph=True) is not supported");
    const auto s = ctx->get_saved_variables();
    const at::Tensor& u = s[0];
    at::Tensor dout = grads[0].defined() ? grads[0] : at::zeros_like(u);
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mft::selective_scan_backward", "")
                         .typed<ScanGrads(const at::Tensor&, const OptTensor&, const at::Tensor&, const at::Tensor&,
                                          const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
                                          const OptTensor&, const OptTensor&, bool, const OptTensor&, const OptTensor&,
                                          const OptTensor&)>();
    auto [du, ddelta, dA, dB, dC, dD, dz, dbias, dinit] =
        op.call(dout, or_none(grads[1]), u, s[1], s[2], s[3], s[4], or_none(s[5]), or_none(s[6]), or_none(s[7]),
                ctx->saved_data["delta_softplus"].toBool(), or_none(s[8]), or_none(s[9]), or_none(s[10]));
    // One gradient per forward argument; none for the bools and seq_idx.
    return {du, ddelta, dA, dB, dC, dD, dz, dbias, at::Tensor(), dinit, at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> selective_scan_autograd(const at::Tensor& u, const at::Tensor& delta,
                                                           const at::Tensor& A, const at::Tensor& B,
                                                           const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                                           const OptTensor& delta_bias, bool delta_softplus,
                                                           const OptTensor& initial_state, bool return_last_state,
                                                           const OptTensor& seq_idx) {
  auto r = SelectiveScanFunction::apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                        return_last_state, seq_idx);
  return {r[0], r[1]};
}

template <c10::DeviceType kDevice>
std::tuple<at::Tensor, at::Tensor> selective_scan_autocast(const at::Tensor& u, const at::Tensor& delta,
                                                           const at::Tensor& A, const at::Tensor& B,
                                                           const at::Tensor& C, const OptTensor& D, const OptTensor& z,
                                                           const OptTensor& delta_bias, bool delta_softplus,
                                                           const OptTensor& initial_state, bool return_last_state,
                                                           const OptTensor& seq_idx) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType act = at::autocast::get_autocast_dtype(kDevice);
  auto low = [&](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? t.to(act) : t;
  };
  auto bc = [&](const at::Tensor& t) { return t.dim() == 2 ? t : low(t); };
  OptTensor zl = z ? OptTensor(low(*z)) : std::nullopt;
  return selective_scan(low(u), low(delta), A, bc(B), bc(C), D, zl, delta_bias, delta_softplus, initial_state,
                        return_last_state, seq_idx);
}
}  // namespace

TORCH_LIBRARY_IMPL(mft, Autograd, m) {
  m.impl("selective_scan", &selective_scan_autograd);
}
TORCH_LIBRARY_IMPL(mft, AutocastCPU, m) {
  m.impl("selective_scan", &selective_scan_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(mft, AutocastCUDA, m) {
  m.impl("selective_scan", &selective_scan_autocast<c10::DeviceType::CUDA>);
}

}  // namespace mft
