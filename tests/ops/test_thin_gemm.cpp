// ops/thin_gemm.h: the adapter's low-rank products against fp64 ATen over both layouts of the big
// operand, fp32/bf16/fp16, ranks 1..16, lengths around the kernels' 256-column blocks; the same bits at
// any thread count; bad input.
#include "helpers.h"

#include "ops/thin_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <catch2/catch.hpp>

using namespace mft::test;
using Catch::Matchers::Contains;

namespace {
// A (rows, cols) matrix of `dtype` with unit stride along cols (row-major) or along rows (a transposed
// view of a (cols, rows) buffer), values on the grid of `dtype`.
at::Tensor matrix(int64_t rows, int64_t cols, at::ScalarType dtype, bool row_major) {
  return row_major ? at::randn({rows, cols}).to(dtype) : at::randn({cols, rows}).to(dtype).t();
}

// fp32 result vs the fp64 product of the same (already rounded) inputs: a dot product of `width` terms.
void check_product(const std::string& what, const at::Tensor& got, const at::Tensor& ref64, int64_t width) {
  INFO(what);
  CHECK(got.scalar_type() == at::kFloat);
  check_within_bound(what, got, ref64, at::Tensor(), 1, width);
}
}  // namespace

TEST_CASE("thin products match fp64 ATen over layouts, dtypes, ranks and lengths", "[thin_gemm]") {
  at::manual_seed(11);
  int cases = 0;
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (bool row_major : {true, false}) {
      for (auto [K, L] : {std::pair<int64_t, int64_t>{7, 1}, {48, 300}, {1536, 257}, {5, 512}}) {
        for (int64_t r : {1, 8, 16}) {
          const std::string c = fmt::format("{} {} K{} L{} r{}", c10::toString(dtype),
                                            row_major ? "rows along L" : "columns along K", K, L, r);
          const at::Tensor x = matrix(K, L, dtype, row_major);
          const at::Tensor x64 = x.to(at::kDouble);
          const at::Tensor w = at::randn({r, K});
          check_product(c + " | w_x", mft::thin::w_x(w, x), at::mm(w.to(at::kDouble), x64), K);
          const at::Tensor p = at::randn({r, L});
          check_product(c + " | p_xt", mft::thin::p_xt(p, x), at::mm(p.to(at::kDouble), x64.t()), L);
          // y += s B u: one rounding of the fp32 result to y's dtype.
          const at::Tensor bm = at::randn({K, r}), u = at::randn({r, L});
          at::Tensor y = matrix(K, L, dtype, row_major);
          const at::Tensor y64 = y.to(at::kDouble) + 0.7 * at::mm(bm.to(at::kDouble), u.to(at::kDouble));
          mft::thin::add_b_u_(y, bm, u, 0.7);
          INFO(c << " | add_b_u_");
          CHECK(y.scalar_type() == dtype);
          const double err = normalised_error(y, y64);
          CHECK(err <= unit_roundoff(dtype) + fp32_bound(1, r + 1));
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 72);
}

TEST_CASE("thin products give the same bits at any thread count and refuse what they cannot take", "[thin_gemm]") {
  at::manual_seed(12);
  const at::Tensor x = matrix(700, 600, at::kBFloat16, true), xt = matrix(700, 600, at::kBFloat16, false);
  const at::Tensor w = at::randn({8, 700}), p = at::randn({8, 600}), bm = at::randn({700, 8}), u = at::randn({8, 600});
  auto run = [&](int threads) {
    const int before = at::get_num_threads();
    at::set_num_threads(threads);
    at::Tensor y = x.clone(), yt = xt.clone();
    mft::thin::add_b_u_(y, bm, u, 1.3);
    mft::thin::add_b_u_(yt, bm, u, 1.3);
    std::vector<at::Tensor> out = {
        mft::thin::w_x(w, x), mft::thin::w_x(w, xt), mft::thin::p_xt(p, x), mft::thin::p_xt(p, xt), y, yt};
    at::set_num_threads(before);
    return out;
  };
  const auto one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); ++i) CHECK(at::equal(one[i], two[i]));

  CHECK_FALSE(mft::thin::supported(at::randn({4, 6}, at::kDouble)));
  CHECK_FALSE(mft::thin::supported(at::randn({4, 6, 2}).select(2, 0)));  // no unit stride
  CHECK_FALSE(mft::thin::supported(at::randn({3, 4, 6})));
  CHECK_THROWS_WITH(mft::thin::w_x(w, at::randn({700, 5}, at::kDouble)), Contains("must be a CPU fp32/bf16/fp16"));
  CHECK_THROWS_WITH(mft::thin::w_x(at::randn({8, 699}), x), Contains("w must be fp32 (8, 700)"));
  CHECK_THROWS_WITH(mft::thin::p_xt(p.to(at::kBFloat16), x), Contains("p must be fp32 (8, 600)"));
  at::Tensor y = x.clone();
  CHECK_THROWS_WITH(mft::thin::add_b_u_(y, bm, at::randn({8, 5}), 1.0), Contains("u must be fp32 (8, 600)"));
}
