#pragma once
// Learning-rate schedules: linear warmup from 0 over `warmup_steps`, then constant, linear decay or
// cosine decay to min_lr_ratio * lr at `total_steps`.
#include <cstdint>
#include <string>

namespace mft::train {

struct Schedule {
  std::string name = "cosine";  // constant | linear | cosine
  double lr = 2e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;

  // Learning rate for optimizer step `step` (0-based).
  double lr_at(int64_t step) const;
};

}  // namespace mft::train
