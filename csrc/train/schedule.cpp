#include "train/schedule.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace mft::train {

double Schedule::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  if (name == "constant") return lr;
  const double span = double(std::max<int64_t>(total_steps - warmup_steps, 1));
  const double progress = std::clamp(double(step - warmup_steps) / span, 0.0, 1.0);
  const double floor = lr * min_lr_ratio;
  if (name == "linear") return floor + (lr - floor) * (1.0 - progress);
  TORCH_CHECK(name == "cosine", "schedule: unknown name \"", name, "\" (constant, linear, cosine)");
  return floor + (lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace mft::train
