// Autograd and Autocast registrations of mft::ssd_scan.
// Autograd: saves only the inputs; ssd_scan_backward recomputes the chunked forward and differentiates
// it, so training memory is the inputs plus one chunk pass, never one state per step.
// Autocast: activations (x, dt, z, B, C) in the autocast dtype; A, D, dt_bias and the initial states
// stay fp32.
#include "ops/ssd_scan.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace mft {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using DtLimit = std::optional<at::ArrayRef<double>>;

class SsdScanFunction : public torch::autograd::Function<SsdScanFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                               const at::Tensor& B, const at::Tensor& C, int64_t chunk_size, const OptTensor& D,
                               const OptTensor& z, const OptTensor& dt_bias, const OptTensor& initial_states,
                               const OptTensor& seq_idx, bool dt_softplus, DtLimit dt_limit, bool return_final_states) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, final_states] = ssd_scan(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, seq_idx, dt_softplus,
                                        dt_limit, return_final_states);
    ctx->save_for_backward({x, dt, A, B, C, or_undefined(D), or_undefined(z), or_undefined(dt_bias),
                            or_undefined(initial_states), or_undefined(seq_idx)});
    ctx->saved_data["chunk_size"] = chunk_size;
    ctx->saved_data["dt_softplus"] = dt_softplus;
    ctx->saved_data["dt_limit"] = dt_limit ? c10::IValue(dt_limit->vec()) : c10::IValue();
    if (!return_final_states) ctx->mark_non_differentiable({final_states});
    return {out, final_states};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(), "ssd_scan: double backward (create_graph=True) is not supported");
    const auto s = ctx->get_saved_variables();
    at::Tensor dout = grads[0].defined() ? grads[0] : at::zeros_like(s[0]);
    const c10::IValue& lim = ctx->saved_data["dt_limit"];
    std::vector<double> lim_values = lim.isNone() ? std::vector<double>() : lim.toDoubleVector();
    const DtLimit dt_limit = lim.isNone() ? DtLimit() : DtLimit(lim_values);
    static auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("mft::ssd_scan_backward", "")
            .typed<SsdGrads(const at::Tensor&, const OptTensor&, const at::Tensor&, const at::Tensor&,
                            const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, const OptTensor&,
                            const OptTensor&, const OptTensor&, const OptTensor&, const OptTensor&, bool, DtLimit)>();
    auto [dx, ddt, dA, dB, dC, dD, dz, dbias, dinit] = op.call(
        dout, or_none(grads[1]), s[0], s[1], s[2], s[3], s[4], ctx->saved_data["chunk_size"].toInt(), or_none(s[5]),
        or_none(s[6]), or_none(s[7]), or_none(s[8]), or_none(s[9]), ctx->saved_data["dt_softplus"].toBool(), dt_limit);
    // One gradient per forward argument; none for chunk_size, seq_idx, the bools and dt_limit.
    return {dx, ddt,   dA,    dB,           dC,           at::Tensor(), dD,
            dz, dbias, dinit, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> ssd_scan_autograd(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                                     const at::Tensor& B, const at::Tensor& C, int64_t chunk_size,
                                                     const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                                     const OptTensor& initial_states, const OptTensor& seq_idx,
                                                     bool dt_softplus, DtLimit dt_limit, bool return_final_states) {
  auto r = SsdScanFunction::apply(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, seq_idx, dt_softplus,
                                  dt_limit, return_final_states);
  return {r[0], r[1]};
}

template <c10::DeviceType kDevice>
std::tuple<at::Tensor, at::Tensor> ssd_scan_autocast(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                                     const at::Tensor& B, const at::Tensor& C, int64_t chunk_size,
                                                     const OptTensor& D, const OptTensor& z, const OptTensor& dt_bias,
                                                     const OptTensor& initial_states, const OptTensor& seq_idx,
                                                     bool dt_softplus, DtLimit dt_limit, bool return_final_states) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType act = at::autocast::get_autocast_dtype(kDevice);
  auto low = [&](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? t.to(act) : t;
  };
  OptTensor zl = z ? OptTensor(low(*z)) : std::nullopt;
  return ssd_scan(low(x), low(dt), A, low(B), low(C), chunk_size, D, zl, dt_bias, initial_states, seq_idx, dt_softplus,
                  dt_limit, return_final_states);
}
}  // namespace

TORCH_LIBRARY_IMPL(mft, Autograd, m) {
  m.impl("ssd_scan", &ssd_scan_autograd);
}
TORCH_LIBRARY_IMPL(mft, AutocastCPU, m) {
  m.impl("ssd_scan", &ssd_scan_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(mft, AutocastCUDA, m) {
  m.impl("ssd_scan", &ssd_scan_autocast<c10::DeviceType::CUDA>);
}

}  // namespace mft
