#include "core/output.h"

#include <ATen/ATen.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace mft {
namespace {
std::atomic<bool>& poison_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("MFT_POISON_OUTPUTS");
    return env != nullptr && std::strcmp(env, "0") != 0 && env[0] != '\0';
  }()};
  return flag;
}
}  // namespace

void set_poison_outputs(bool on) {
  poison_flag() = on;
}
bool poison_outputs() {
  return poison_flag();
}

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (poison_outputs() && at::isFloatingType(c10::typeMetaToScalarType(options.dtype()))) {
    return at::full(sizes, std::numeric_limits<double>::quiet_NaN(), options);
  }
  return at::empty(sizes, options);
}

at::Tensor new_output_like(const at::Tensor& like) {
  return new_output(like.sizes(), like.options());
}

}  // namespace mft
