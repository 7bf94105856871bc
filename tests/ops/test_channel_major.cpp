// channel_major: the blocked transpose copy equals contiguous() bit for bit (every element size),
// passes gradients through unchanged, leaves other layouts to contiguous(), rejects bad input.
#include "ops/channel_major.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

namespace {
// A (B, C, L) transposed view of a contiguous (B, L, C) tensor.
at::Tensor transposed_view(int64_t B, int64_t C, int64_t L, at::ScalarType dtype) {
  at::Tensor base = at::isFloatingType(dtype) ? at::randn({B, L, C}).to(dtype)
                                              : at::randint(-1000, 1000, {B, L, C}, at::TensorOptions().dtype(dtype));
  return base.transpose(1, 2);
}
}  // namespace

TEST_CASE("channel_major copies a transposed view exactly", "[channel_major]") {
  at::manual_seed(11);
  for (at::ScalarType dt : {at::kBFloat16, at::kHalf, at::kFloat, at::kDouble, at::kInt, at::kLong}) {
    for (auto [B, C, L] :
         {std::tuple<int64_t, int64_t, int64_t>{1, 3072, 512}, {2, 33, 65}, {3, 7, 1000}, {1, 64, 31}, {2, 2, 2}}) {
      INFO(c10::toString(dt) << " B" << B << " C" << C << " L" << L);
      const at::Tensor v = transposed_view(B, C, L, dt);
      REQUIRE(!v.is_contiguous());
      const at::Tensor fast = mft::transpose_copy(v);
      CHECK(fast.is_contiguous());
      CHECK(fast.sizes() == v.sizes());
      CHECK(fast.scalar_type() == dt);
      CHECK(at::equal(fast, v.contiguous()));
      CHECK(at::equal(mft::channel_major(v), v.contiguous()));
    }
  }
}

TEST_CASE("channel_major copies a channel slice of (B, L, C') rows exactly", "[channel_major]") {
  at::manual_seed(14);
  for (at::ScalarType dt : {at::kBFloat16, at::kFloat, at::kDouble}) {
    // Mamba-2's xBC: channels [E, E + CD) of the projection's (B, L, width) output; odd offsets too.
    for (auto [B, L, width, offset, C] :
         {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 512, 3352, 1536, 1792},
          {2, 70, 100, 3, 65},
          {3, 33, 40, 7, 33}}) {
      INFO(c10::toString(dt) << " B" << B << " L" << L << " width" << width << " offset" << offset << " C" << C);
      const at::Tensor v = at::randn({B, L, width}).to(dt).narrow(2, offset, C).transpose(1, 2);
      REQUIRE(!v.is_contiguous());
      CHECK(at::equal(mft::transpose_copy(v), v.contiguous()));
      const at::Tensor base = at::randn({B, L, width}).to(dt).requires_grad_();
      const at::Tensor w = at::randn({B, C, L}).to(dt);
      (mft::channel_major(base.narrow(2, offset, C).transpose(1, 2)) * w).sum().backward();
      const at::Tensor ours = base.grad().clone();
      base.mutable_grad() = at::Tensor();
      (base.narrow(2, offset, C).transpose(1, 2).contiguous() * w).sum().backward();
      CHECK(at::equal(ours, base.grad()));
    }
  }
}

TEST_CASE("channel_major keeps NaN payloads and signed zeros (a raw copy)", "[channel_major]") {
  const at::Tensor base = at::tensor({-0.0f, NAN, INFINITY, 1.0f, -2.0f, 3.0f}).view({1, 3, 2});
  const at::Tensor fast = mft::transpose_copy(base.transpose(1, 2));
  const at::Tensor ref = base.transpose(1, 2).contiguous();
  CHECK(at::equal(fast.view(at::kInt), ref.view(at::kInt)));
}

TEST_CASE("channel_major passes gradients through like contiguous()", "[channel_major]") {
  at::manual_seed(12);
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    const at::Tensor base = at::randn({2, 40, 70}).to(dt).requires_grad_();
    const at::Tensor w = at::randn({2, 70, 40}).to(dt);
    (mft::channel_major(base.transpose(1, 2)) * w).sum().backward();
    const at::Tensor ours = base.grad().clone();
    base.mutable_grad() = at::Tensor();
    (base.transpose(1, 2).contiguous() * w).sum().backward();
    CHECK(at::equal(ours, base.grad()));
  }
}

TEST_CASE("channel_major leaves other layouts to contiguous()", "[channel_major]") {
  at::manual_seed(13);
  const at::Tensor c = at::randn({2, 5, 7});
  CHECK(mft::channel_major(c).data_ptr() == c.data_ptr());  // already contiguous: no copy
  const at::Tensor sliced = at::randn({2, 9, 7}).narrow(1, 2, 5);
  CHECK(at::equal(mft::channel_major(sliced), sliced.contiguous()));
  const at::Tensor perm = at::randn({7, 2, 5}).permute({1, 2, 0});  // (2, 5, 7), not a (1, 2) transpose
  CHECK(at::equal(mft::channel_major(perm), perm.contiguous()));
  const at::Tensor two_d = at::randn({6, 4}).t();
  CHECK(at::equal(mft::channel_major(two_d), two_d.contiguous()));
}

TEST_CASE("transpose_copy rejects what it cannot copy", "[channel_major]") {
  CHECK_THROWS_WITH(mft::transpose_copy(at::randn({2, 5, 7})),
                    Catch::Contains("transpose_copy: x must be a CPU (B, C, L) view of (B, L, C) rows"));
  CHECK_THROWS_WITH(mft::transpose_copy(at::randn({6, 4}).t()), Catch::Contains("got sizes [4, 6]"));
}
