// reference::lora_linear: the plain formula, one line per term.
#include "ops/lora_linear.h"

#include <ATen/ATen.h>

namespace mft::reference {

at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias, const at::Tensor& lora_A,
                       const at::Tensor& lora_B, double scale, double dropout_p, bool training,
                       std::optional<int64_t> dropout_seed) {
  check_lora_linear_args(x, weight, bias, lora_A, lora_B, scale, dropout_p);
  const at::ScalarType cd = lora_A.scalar_type();
  at::Tensor xd = x.to(cd);
  if (lora_dropout_active(dropout_p, training)) {
    TORCH_CHECK(dropout_seed, "reference::lora_linear: dropout needs a seed");
    xd = xd * lora_dropout_mask(x.sizes(), dropout_p, *dropout_seed, cd, x.device());
  }
  const at::Tensor base = at::linear(x.to(cd), weight.to(cd), bias ? bias->to(cd) : at::Tensor());
  return (base + scale * at::linear(at::linear(xd, lora_A), lora_B)).to(x.scalar_type());
}

}  // namespace mft::reference
