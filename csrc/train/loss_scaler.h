#pragma once
// Dynamic loss scaling for fp16 training (as torch.amp.GradScaler): the loss is multiplied by `scale`
// before backward; gradients are unscaled before clipping; a step whose gradients are not finite is
// skipped and the scale is multiplied by backoff_factor; after growth_interval good steps in a row the
// scale grows by growth_factor.
#include <cstdint>

namespace mft::train {

struct LossScaler {
  bool enabled = false;
  double scale = 65536.0, growth_factor = 2.0, backoff_factor = 0.5;
  int64_t growth_interval = 2000, good_steps = 0;
  int64_t skipped_steps = 0;

  // The loss is multiplied by this before backward; the gradients are divided by it before the step
  // (train::prepare_gradients, together with the finiteness check and clipping).
  double loss_factor() const { return enabled ? scale : 1.0; }
  // After a step attempt: `finite` false means the step was skipped.
  void update(bool finite);
};

}  // namespace mft::train
