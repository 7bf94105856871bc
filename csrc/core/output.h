#pragma once
// Allocation of op outputs. Tests switch on poisoning so that every output starts as NaN: an element a
// kernel forgets to write then fails the comparison instead of passing by luck.
#include <ATen/core/Tensor.h>

namespace mft {

// at::empty, or at::full(NaN) while poisoning is on (set_poison_outputs or env MFT_POISON_OUTPUTS=1).
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);
at::Tensor new_output_like(const at::Tensor& like);

void set_poison_outputs(bool on);
bool poison_outputs();

}  // namespace mft
