#pragma once
// Random inputs for selective_scan tests, in any precision, with their fp64 twins.
#include "ops/selective_scan.h"

#include <ATen/ATen.h>

#include <string>

namespace mft::test {

enum class BcKind { Variable, Grouped, Invariant };

struct ScanCase {
  int64_t batch = 2, dim = 20, dstate = 4, seqlen = 8, groups = 2;  // dim 20: one full + one partial 16-lane block
  BcKind bc = BcKind::Variable;
  bool has_D = true, has_z = true, has_bias = true, softplus = true, has_init = true, last = true;
  bool has_seq_idx = false, non_contiguous = false;
  at::ScalarType dtype = at::kFloat;  // u, delta, z and time-varying B/C
  std::string describe() const;
};

struct ScanInputs {
  at::Tensor u, delta, A, B, C, D, z, bias, init, seq_idx;
  bool softplus = false, last = false;

  static ScanInputs make(const ScanCase& c);
  // The same values with every floating tensor cast to fp64 (exact for fp32/bf16/fp16 inputs).
  ScanInputs to_double() const;
  // Floating tensors that can take a gradient.
  std::vector<at::Tensor*> leaves();
  std::vector<std::string> leaf_names() const;
};

// out, last_state and gradients of loss = sum(w_out * out) + sum(w_last * last) for every leaf.
struct ScanResult {
  at::Tensor out, last;
  std::vector<at::Tensor> grads;
};
enum class Impl { Ops, Reference };
ScanResult run_scan(ScanInputs in, Impl impl, const at::Tensor& w_out, const at::Tensor& w_last);

}  // namespace mft::test
