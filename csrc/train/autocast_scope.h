#pragma once
// Mixed precision for a forward pass: CPU autocast in `dtype` for the scope's lifetime (fp32: none), its
// cast cache cleared at the end. What the trainer and the training benchmark run their forward under.
#include <ATen/autocast_mode.h>

namespace mft::train {

struct AutocastScope {
  bool on;
  explicit AutocastScope(at::ScalarType dtype) : on(dtype != at::kFloat) {
    if (!on) return;
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, dtype);
  }
  ~AutocastScope() {
    if (!on) return;
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
};

}  // namespace mft::train
