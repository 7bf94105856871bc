#include "train/loss_scaler.h"

#include <ATen/ATen.h>

namespace mft::train {

bool LossScaler::unscale_and_check(const std::vector<at::Tensor>& params) const {
  at::NoGradGuard no_grad;
  bool finite = true;
  for (const auto& p : params) {
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    if (enabled) g.mul_(1.0 / scale);
    finite = finite && at::isfinite(g).all().item<bool>();
  }
  return finite;
}

void LossScaler::update(bool finite) {
  if (!finite) {
    ++skipped_steps;
    good_steps = 0;
    if (enabled) scale *= backoff_factor;
    return;
  }
  if (enabled && ++good_steps >= growth_interval) {
    scale *= growth_factor;
    good_steps = 0;
  }
}

}  // namespace mft::train
