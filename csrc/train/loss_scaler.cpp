#include "train/loss_scaler.h"

namespace mft::train {

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
