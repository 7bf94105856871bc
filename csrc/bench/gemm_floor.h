#pragma once
// Matmul floors: GEMMs timed alone at their shape, operand layout and dtype, in the same process and
// with the same threads as the work they bound. The model benchmarks sum them into a floor (prefill:
// the forward's GEMMs; training: forward + backward GEMMs) and divide the FLOPs by it for the machine's
// rate at those shapes.
#include "models/causal_lm.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace mft::bench {

// Shortest wall time of `repeats` calls of f, in seconds: a floor is what the machine does at its best.
double best_of(int repeats, const std::function<void()>& f);

// C (m, n) = op(A) (m, k) · op(B) (k, n) in `dtype` (fp32 accumulation). a_transposed: A is stored as
// (k, m) and read through a transposed view; b_transposed likewise for B stored as (n, k).
struct Gemm {
  int64_t m = 0, k = 0, n = 0;
  bool a_transposed = false, b_transposed = false;
  at::ScalarType dtype = at::kFloat;
  double flops() const { return 2.0 * double(m) * double(k) * double(n); }
};

// The three GEMMs of a linear layer y = x Wᵀ with x (tokens, in), W (out, in), as ATen runs them:
Gemm linear_forward(int64_t tokens, int64_t in, int64_t out, at::ScalarType dtype);      // x · Wᵀ
Gemm linear_input_grad(int64_t tokens, int64_t in, int64_t out, at::ScalarType dtype);   // dy · W
Gemm linear_weight_grad(int64_t tokens, int64_t in, int64_t out, at::ScalarType dtype);  // dyᵀ · x

// Times GEMMs once per distinct shape/layout/dtype (best of `repeats`, random operands), then answers
// from its table: a model's layers repeat the same few shapes.
class GemmTimer {
 public:
  explicit GemmTimer(int repeats) : repeats_(repeats) {}
  double seconds(const Gemm& g);

 private:
  int repeats_;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool, at::ScalarType>, double> table_;
};

// A weight the forward multiplies activations with: every linear layer's (out, in) matrix and the
// output head (the embedding matrix when tied). The input embedding is a row lookup unless tied;
// Mamba's A_log is elementwise. Not included: products of two activations (attention scores, SSD's
// intra-chunk products).
struct GemmWeight {
  std::string name;   // HF name
  at::Tensor weight;  // (out, in): the parameter itself (its requires_grad says whether it is trained)
};
std::vector<GemmWeight> gemm_weights(models::CausalLM& model, bool* head_tied = nullptr);

}  // namespace mft::bench
