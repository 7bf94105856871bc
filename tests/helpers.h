#pragma once
// Shared test helpers: normalised errors, tolerance derivations, finite differences.
#include "ops/ops.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mft::test {

// An optional op argument from a possibly undefined tensor.
inline OptTensor opt(const at::Tensor& t) {
  return or_none(t);
}

// Unit roundoff of a dtype (half the distance from 1 to the next representable number).
double unit_roundoff(at::ScalarType dtype);

// max|x - ref| / max|ref|, in fp64 (0 when both are all-zero). Non-finite values in x give +inf.
double normalised_error(const at::Tensor& x, const at::Tensor& ref);

// Bound on the normalised error of an fp32 computation with recurrence depth `depth` and reductions of
// length `width`: each step of a contracting recurrence adds a few roundings (exp within 2 ulp, one
// multiply, one FMA) and the errors grow at most linearly (the gamma_n bound of Higham), so
// 4 roundings per step x (depth + width) steps. (The op grid's worst case is 0.2 roundings per step.)
double fp32_bound(int64_t depth, int64_t width);

// Low precision: at most 2x the error of the same-precision plain reference, plus the fp32 compute
// error (both compute in fp32 and round to the low-precision output).
double low_precision_bound(double same_precision_reference_error, int64_t depth, int64_t width);

// Random tensor that is never zero-filled: normal values scaled by `scale`, then cast.
at::Tensor randn(at::IntArrayRef sizes, at::ScalarType dtype, double scale = 1.0);

// A (B, D, L)-shaped tensor with the same values as `t` but non-contiguous memory (a transposed view).
at::Tensor non_contiguous(const at::Tensor& t);

// Catch2 check: `x` is within the derived bound of the fp64 reference `ref64`. With `ref_plain` (the
// same computation by the plain reference in x's low precision) the bound is low_precision_bound of its
// error, otherwise (fp32) fp32_bound(depth, width). `what` names the tensor in the failure message.
void check_within_bound(const std::string& what, const at::Tensor& x, const at::Tensor& ref64,
                        const at::Tensor& ref_plain, int64_t depth, int64_t width);

// seq_idx (batch, seqlen) int32 of packed rows as training batches have them: documents starting at random
// (probability start_prob per step, never at t = 0), and padding (-1) when seqlen >= 6: 2 leading steps
// in row 0, 2 trailing steps in the last row (row 0 too when it is the only one), and a 2-step run between
// two documents in the rows between.
at::Tensor packed_seq_idx(int64_t batch, int64_t seqlen, double start_prob = 0.15);

// A fresh folder /tmp/<prefix>-XXXXXX, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "mft-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// True when MFT_PYTHON names the .venv python (ctest sets it); otherwise warns that the test is skipped.
bool have_python();

// Central finite differences of scalar loss() w.r.t. every element of `input` (fp64, modified in place
// and restored).
at::Tensor finite_difference(const std::function<double()>& loss, at::Tensor& input, double h = 1e-6);

}  // namespace mft::test
