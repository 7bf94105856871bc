#pragma once
// Argument checks shared by every op: each failure names the op, the argument, what was expected and
// what was found, e.g. "selective_scan: A must be float32; got BFloat16".
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>
#include <string>

namespace mft {

// "(2, 3, 4)" for messages.
std::string shape_str(at::IntArrayRef sizes);

// Throws unless t is fp32, fp16 or bf16 (or fp64, the checking precision).
void check_floating(const at::Tensor& t, const char* op, const char* name);

// Throws unless t has exactly `dims` dimensions; `layout` names them, e.g. "(batch, dim, seqlen)".
void check_dim(const at::Tensor& t, int64_t dims, const char* op, const char* name, const char* layout);

// Throws unless t.sizes() == expected.
void check_sizes(const at::Tensor& t, at::IntArrayRef expected, const char* op, const char* name, const char* layout);

// Throws unless t.scalar_type() == dtype.
void check_dtype(const at::Tensor& t, at::ScalarType dtype, const char* op, const char* name);

// Throws unless t lives on the same device as `like`.
void check_device(const at::Tensor& t, const at::Tensor& like, const char* op, const char* name);

// A state parameter (A, D, biases, states): `sizes` and the compute dtype cd (fp32, or fp64 when the op's
// main input `main_name` is fp64), e.g. "selective_scan: A must be Float; got BFloat16".
void check_state_param(const at::Tensor& t, at::ScalarType cd, at::IntArrayRef sizes, const char* op, const char* name,
                       const char* layout, const char* main_name);

// Throws unless every element of t is finite (small parameter tensors only: one reduction).
void check_finite(const at::Tensor& t, const char* op, const char* name);

// The precision in which a scan/conv kernel computes: fp64 when the main input is fp64 (used by the
// finite-difference checks), fp32 otherwise.
inline at::ScalarType compute_dtype(const at::Tensor& main_input) {
  return main_input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace mft
