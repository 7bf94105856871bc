#include "core/check.h"

#include <ATen/ATen.h>

#include <sstream>

namespace mft {

std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << (sizes.size() == 1 ? ",)" : ")");
  return s.str();
}

void check_floating(const at::Tensor& t, const char* op, const char* name) {
  const auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kHalf || st == at::kBFloat16 || st == at::kDouble, op, ": ", name,
              " must be float32, float16 or bfloat16 (float64 for checks); got ", st);
}

void check_dim(const at::Tensor& t, int64_t dims, const char* op, const char* name, const char* layout) {
  TORCH_CHECK(t.dim() == dims, op, ": ", name, " must be ", layout, " (", dims, " dims); got shape ",
              shape_str(t.sizes()));
}

void check_sizes(const at::Tensor& t, at::IntArrayRef expected, const char* op, const char* name, const char* layout) {
  TORCH_CHECK(t.sizes() == expected, op, ": ", name, " must be ", layout, " = ", shape_str(expected), "; got ",
              shape_str(t.sizes()));
}

void check_dtype(const at::Tensor& t, at::ScalarType dtype, const char* op, const char* name) {
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype, "; got ", t.scalar_type());
}

void check_state_param(const at::Tensor& t, at::ScalarType cd, at::IntArrayRef sizes, const char* op, const char* name,
                       const char* layout, const char* main_name) {
  check_sizes(t, sizes, op, name, layout);
  TORCH_CHECK(t.scalar_type() == cd, op, ": ", name, " must be ", cd, cd == at::kFloat ? "" : " (float64 because ",
              cd == at::kFloat ? "" : main_name, cd == at::kFloat ? "" : " is float64)", "; got ", t.scalar_type());
}

void check_device(const at::Tensor& t, const at::Tensor& like, const char* op, const char* name) {
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " must be on ", like.device(),
              " like the other inputs; got ", t.device());
}

void check_finite(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(at::isfinite(t).all().item<bool>(), op, ": ", name, " must be finite; it holds NaN or Inf");
}

}  // namespace mft
