#include "helpers.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>

namespace mft::test {

double unit_roundoff(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::ldexp(1.0, -53);
    case at::kFloat:
      return std::ldexp(1.0, -24);
    case at::kBFloat16:
      return std::ldexp(1.0, -8);
    case at::kHalf:
      return std::ldexp(1.0, -11);
    default:
      return 1.0;
  }
}

double normalised_error(const at::Tensor& x, const at::Tensor& ref) {
  TORCH_CHECK(x.sizes() == ref.sizes(), "normalised_error: shapes differ: ", x.sizes(), " vs ", ref.sizes());
  const at::Tensor a = x.to(at::kDouble), b = ref.to(at::kDouble);
  if (!at::isfinite(a).all().item<bool>()) return std::numeric_limits<double>::infinity();
  const double scale = b.numel() ? b.abs().max().item<double>() : 0.0;
  const double diff = a.numel() ? (a - b).abs().max().item<double>() : 0.0;
  if (scale == 0.0) return diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return diff / scale;
}

double fp32_bound(int64_t depth, int64_t width) {
  return 4.0 * unit_roundoff(at::kFloat) * double(depth + width);
}

double low_precision_bound(double same_precision_reference_error, int64_t depth, int64_t width) {
  return 2.0 * same_precision_reference_error + fp32_bound(depth, width);
}

at::Tensor randn(at::IntArrayRef sizes, at::ScalarType dtype, double scale) {
  return (at::randn(sizes, at::kDouble) * scale).to(dtype);
}

at::Tensor non_contiguous(const at::Tensor& t) {
  // Store as (B, L, D) and view back as (B, D, L).
  return t.transpose(1, 2).contiguous().transpose(1, 2);
}

void check_within_bound(const std::string& what, const at::Tensor& x, const at::Tensor& ref64,
                        const at::Tensor& ref_plain, int64_t depth, int64_t width) {
  INFO(what);
  REQUIRE(x.defined());
  REQUIRE(x.sizes() == ref64.sizes());
  const double err = normalised_error(x, ref64);
  const double bound = ref_plain.defined() ? low_precision_bound(normalised_error(ref_plain, ref64), depth, width)
                                           : fp32_bound(depth, width);
  INFO("normalised error " << err << " bound " << bound);
  CHECK(err <= bound);
}

at::Tensor packed_seq_idx(int64_t batch, int64_t seqlen, double start_prob) {
  at::Tensor starts = at::rand({batch, seqlen}) < start_prob;
  starts.select(1, 0).fill_(false);
  at::Tensor seq = starts.to(at::kInt).cumsum(1).to(at::kInt);  // (B, L)
  if (seqlen < 6) return seq;
  for (int64_t r = 0; r < batch; ++r) {
    at::Tensor row = seq.select(0, r);
    if (r == 0) row.narrow(0, 0, 2).fill_(-1);
    if (r == batch - 1) row.narrow(0, seqlen - 2, 2).fill_(-1);
    if (r > 0 && r < batch - 1) {
      const int64_t mid = seqlen / 2;
      row.narrow(0, mid + 2, seqlen - mid - 2).add_(1);  // a new document after the run
      row.narrow(0, mid, 2).fill_(-1);
    }
  }
  return seq;
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  TORCH_CHECK(mkdtemp(tmpl.data()) != nullptr, "TempDir: cannot create ", tmpl);
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

bool have_python() {
  if (std::getenv("MFT_PYTHON") != nullptr) return true;
  WARN("MFT_PYTHON not set (ctest sets it): skipped");
  return false;
}

at::Tensor finite_difference(const std::function<double()>& loss, at::Tensor& input, double h) {
  TORCH_CHECK(input.scalar_type() == at::kDouble && input.is_contiguous(), "finite_difference: needs contiguous fp64");
  at::Tensor grad = at::zeros_like(input);
  double* p = input.data_ptr<double>();
  double* g = grad.data_ptr<double>();
  for (int64_t i = 0; i < input.numel(); ++i) {
    const double keep = p[i];
    p[i] = keep + h;
    const double up = loss();
    p[i] = keep - h;
    const double down = loss();
    p[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return grad;
}

}  // namespace mft::test
