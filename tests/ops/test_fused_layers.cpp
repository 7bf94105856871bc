// The fused training layers: cross_entropy_sum against at::cross_entropy_loss, rms_norm against its
// composite reference (values and gradients over a grid, fp64 finite differences), bad input.
#include "helpers.h"
#include "models/tied_embeddings.h"
#include "ops/cross_entropy.h"
#include "ops/rms_norm.h"

#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/modules/embedding.h>

using namespace mft;
using namespace mft::test;

namespace {

// (loss, d logits) of f on a copy of logits that requires grad; dloss scales the loss first.
std::pair<at::Tensor, at::Tensor> loss_and_grad(const std::function<at::Tensor(const at::Tensor&)>& f,
                                                const at::Tensor& logits, double dloss) {
  at::Tensor x = logits.detach().clone().requires_grad_(true);
  at::Tensor loss = f(x);
  (loss * dloss).backward();
  return {loss.detach(), x.grad()};
}

}  // namespace

TEST_CASE("cross_entropy_sum matches at::cross_entropy_loss over a grid", "[fused_layers]") {
  at::manual_seed(3);
  for (int64_t n : {1, 7, 64}) {
    for (int64_t v : {1, 5, 16, 17, 1000}) {
      for (bool ignore : {false, true}) {
        INFO("N " << n << " V " << v << " ignore " << ignore);
        const at::Tensor logits64 = at::randn({n, v}, at::kDouble) * 3;
        at::Tensor labels = at::randint(0, v, {n}, at::kLong);
        if (ignore) labels.masked_fill_(at::rand({n}) < 0.4, -100);
        auto ref = [&](const at::Tensor& x) { return at::cross_entropy_loss(x, labels, {}, at::Reduction::Sum, -100); };
        auto ours = [&](const at::Tensor& x) { return cross_entropy_sum(x, labels, -100); };
        const auto [l64, g64] = loss_and_grad(ref, logits64, 0.7);
        const auto [o64, og64] = loss_and_grad(ours, logits64, 0.7);
        CHECK(normalised_error(o64, l64) < 1e-12);
        CHECK(normalised_error(og64, g64) < 1e-12);
        const auto [o32, og32] = loss_and_grad(ours, logits64.to(at::kFloat), 0.7);
        // fp32: a reduction over V (exp within 2 ulp) and one over N rows.
        check_within_bound("loss fp32", o32, l64, at::Tensor(), 1, v + n);
        check_within_bound("grad fp32", og32, g64, at::Tensor(), 1, v);
      }
    }
  }
}

TEST_CASE("cross_entropy_sum gives the same bits at any thread count and handles edge rows", "[fused_layers]") {
  at::manual_seed(4);
  const at::Tensor logits = at::randn({33, 300});
  const at::Tensor labels = at::randint(0, 300, {33}, at::kLong);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto [l1, g1] = loss_and_grad([&](const at::Tensor& x) { return cross_entropy_sum(x, labels); }, logits, 1);
  at::set_num_threads(2);
  const auto [l2, g2] = loss_and_grad([&](const at::Tensor& x) { return cross_entropy_sum(x, labels); }, logits, 1);
  at::set_num_threads(threads);
  CHECK(at::equal(l1, l2));
  CHECK(at::equal(g1, g2));
  // Every row ignored: loss 0, gradient 0. A row of -inf but the label: loss 0. A NaN logit: NaN loss.
  const at::Tensor all_ignored = at::full({33}, -100, at::kLong);
  const auto [l0, g0] =
      loss_and_grad([&](const at::Tensor& x) { return cross_entropy_sum(x, all_ignored); }, logits, 1);
  CHECK(l0.item<double>() == 0.0);
  CHECK(g0.abs().max().item<double>() == 0.0);
  at::Tensor peaked = at::full({1, 8}, -std::numeric_limits<float>::infinity());
  peaked[0][3] = 2.0f;
  CHECK(cross_entropy_sum(peaked, at::full({1}, 3, at::kLong)).item<double>() == 0.0);
  at::Tensor with_nan = at::zeros({1, 8});
  with_nan[0][5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(cross_entropy_sum(with_nan, at::full({1}, 3, at::kLong)).item<double>()));
}

TEST_CASE("cross_entropy_sum on bf16/fp16 logits equals the fp32 loss of their fp32 copy", "[fused_layers]") {
  // Read into fp32 row by row: the loss equals cross_entropy_sum(logits.to(fp32)) exactly, and the
  // gradient is that fp32 gradient rounded once to the logits' dtype (what autograd gives through the
  // cast), with no (N, V) fp32 copy. Odd V exercises the vector tails; ignored rows get zeros.
  at::manual_seed(6);
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    for (int64_t v : {1, 17, 1000}) {
      INFO(dtype << " V " << v);
      const at::Tensor logits = (at::randn({9, v}) * 3).to(dtype);
      at::Tensor labels = at::randint(0, v, {9}, at::kLong);
      labels[4] = -100;
      auto ours = [&](const at::Tensor& x) { return cross_entropy_sum(x, labels); };
      auto via_fp32 = [&](const at::Tensor& x) { return cross_entropy_sum(x.to(at::kFloat), labels); };
      const auto [lo, go] = loss_and_grad(ours, logits, 0.3);
      const auto [lr, gr] = loss_and_grad(via_fp32, logits, 0.3);
      CHECK(lo.scalar_type() == at::kFloat);
      CHECK(go.scalar_type() == dtype);
      CHECK(at::equal(lo, lr));
      CHECK(at::equal(go, gr));
      CHECK(go[4].abs().max().item<double>() == 0.0);
    }
  }
}

TEST_CASE("cross_entropy_sum rejects bad input", "[fused_layers]") {
  const at::Tensor logits = at::randn({4, 10});
  CHECK_THROWS_WITH(cross_entropy_sum(logits, at::tensor({1, 2, 10, 3}, at::kLong)),
                    Catch::Matchers::Contains("labels[2] = 10 is outside the vocabulary [0, 10)"));
  CHECK_THROWS_WITH(cross_entropy_sum(logits, at::tensor({1, 2, -5, 3}, at::kLong)),
                    Catch::Matchers::Contains("labels[2] = -5"));
  CHECK_THROWS_WITH(cross_entropy_sum(logits, at::tensor({1, 2, 3}, at::kLong)),
                    Catch::Matchers::Contains("labels must be (N,) with N = 4"));
  CHECK_THROWS_WITH(cross_entropy_sum(logits, at::tensor({1, 2, 3, 4}, at::kInt)),
                    Catch::Matchers::Contains("labels must be int64"));
  CHECK_THROWS_WITH(cross_entropy_sum(logits.to(at::kInt), at::tensor({1, 2, 3, 4}, at::kLong)),
                    Catch::Matchers::Contains("logits must be fp32, fp64, bf16 or fp16"));
  CHECK_THROWS_WITH(cross_entropy_sum(logits.view({2, 2, 10}), at::tensor({1, 2}, at::kLong)),
                    Catch::Matchers::Contains("logits must be (N, V)"));
}

TEST_CASE("rms_norm matches its composite reference over a grid", "[fused_layers]") {
  at::manual_seed(5);
  for (auto shape : std::vector<std::vector<int64_t>>{{1, 1, 3}, {2, 7, 16}, {3, 33, 17}, {1, 40, 768}}) {
    for (auto dtype : {at::kFloat, at::kDouble}) {
      INFO("shape " << at::IntArrayRef(shape) << " dtype " << dtype);
      const int64_t D = shape.back();
      const at::Tensor x64 = at::randn(shape, at::kDouble) * 2 + 0.3;
      const at::Tensor w64 = at::randn({D}, at::kDouble);
      const at::Tensor dy64 = at::randn(shape, at::kDouble);
      auto run = [&](bool fused, at::ScalarType dt) {
        at::Tensor x = x64.to(dt).clone().requires_grad_(true), w = w64.to(dt).clone().requires_grad_(true);
        at::Tensor y = fused ? rms_norm(x, w, 1e-5) : rms_norm_reference(x, w, 1e-5);
        (y * dy64.to(dt)).sum().backward();
        return std::make_tuple(y.detach(), x.grad(), w.grad());
      };
      const auto [y_ref, dx_ref, dw_ref] = run(false, at::kDouble);
      const auto [y, dx, dw] = run(true, dtype);
      if (dtype == at::kDouble) {
        CHECK(normalised_error(y, y_ref) < 1e-13);
        CHECK(normalised_error(dx, dx_ref) < 1e-12);
        CHECK(normalised_error(dw, dw_ref) < 1e-12);
      } else {
        check_within_bound("y", y, y_ref, at::Tensor(), 1, D);
        check_within_bound("dx", dx, dx_ref, at::Tensor(), 1, 2 * D);
        check_within_bound("dw", dw, dw_ref, at::Tensor(), 1, D + x64.numel() / D);
      }
    }
  }
}

TEST_CASE("rms_norm gradients match fp64 central finite differences", "[fused_layers][gradcheck]") {
  at::manual_seed(6);
  at::Tensor x = at::randn({2, 3, 5}, at::kDouble), w = at::randn({5}, at::kDouble);
  const at::Tensor dy = at::randn({2, 3, 5}, at::kDouble);
  at::Tensor xg = x.clone().requires_grad_(true), wg = w.clone().requires_grad_(true);
  (rms_norm(xg, wg, 1e-5) * dy).sum().backward();
  auto loss = [&] {
    at::NoGradGuard g;
    return (rms_norm(x, w, 1e-5) * dy).sum().item<double>();
  };
  CHECK(normalised_error(xg.grad(), finite_difference(loss, x)) < 1e-7);
  CHECK(normalised_error(wg.grad(), finite_difference(loss, w)) < 1e-7);
}

TEST_CASE("rms_norm: same bits at any thread count, composite for other dtypes, bad weight", "[fused_layers]") {
  at::manual_seed(7);
  const at::Tensor x = at::randn({5, 40, 64}), w = at::randn({64}), dy = at::randn({5, 40, 64});
  auto grads = [&](int threads) {
    const int before = at::get_num_threads();
    at::set_num_threads(threads);
    at::Tensor xg = x.clone().requires_grad_(true), wg = w.clone().requires_grad_(true);
    (rms_norm(xg, wg, 1e-6) * dy).sum().backward();
    at::set_num_threads(before);
    return std::make_pair(xg.grad(), wg.grad());
  };
  const auto [dx1, dw1] = grads(1);
  const auto [dx2, dw2] = grads(2);
  CHECK(at::equal(dx1, dx2));
  CHECK(at::equal(dw1, dw2));
  // bf16 input with an fp32 weight (HF's mixed case) goes through the composite: same values.
  const at::Tensor xb = x.to(at::kBFloat16);
  CHECK(at::equal(rms_norm(xb, w, 1e-6), rms_norm_reference(xb, w, 1e-6)));
  // A non-contiguous x gives the composite's values too.
  const at::Tensor xt = x.transpose(0, 1);
  CHECK(normalised_error(rms_norm(xt, w, 1e-6), rms_norm_reference(xt, w, 1e-6)) < 1e-6);
  CHECK_THROWS_WITH(rms_norm(x, at::randn({63}), 1e-6), Catch::Matchers::Contains("rms_norm: weight must be (64,)"));
}

TEST_CASE("tied_lookup gives the tied matrix the same gradient as two separate uses", "[fused_layers]") {
  at::manual_seed(8);
  const int64_t V = 50, D = 12;
  const at::Tensor ids = at::randint(0, V, {2, 9}, at::kLong);  // repeated ids included
  const at::Tensor a = at::randn({2, 9, D}), b = at::randn({2, 9, V}), c = at::randn({V, D});
  const at::Tensor x = at::randn({2, 9, D});
  // Ways of using the head: through a linear (the models), through a dtype cast (autocast), directly
  // with a broadcast gradient (a strided, shared one), or not at all.
  for (int head_use = 0; head_use < 4; ++head_use) {
    INFO("head use " << head_use);
    auto run = [&](bool fused) {
      torch::nn::Embedding emb(V, D);
      {
        at::NoGradGuard g;
        emb->weight.copy_(c);
      }
      const models::TiedUse t =
          fused ? models::tied_lookup(*emb, ids) : models::TiedUse{at::embedding(emb->weight, ids), emb->weight};
      at::Tensor loss = (t.embedded * a).sum();
      if (head_use == 0) loss = loss + (at::linear(x + t.embedded, t.head) * b).sum();
      if (head_use == 1) loss = loss + (at::linear(x.to(at::kDouble), t.head.to(at::kDouble)) * b).sum().to(at::kFloat);
      if (head_use == 2) loss = loss + t.head.sum() * 0.5;
      loss.backward();
      return emb->weight.grad();
    };
    const at::Tensor plain = run(false), fused = run(true);
    CHECK(normalised_error(fused, plain) < 1e-6);
  }
  // Without grad mode, or a frozen matrix: the plain lookup (no node), W itself as the head.
  torch::nn::Embedding emb(V, D);
  {
    at::NoGradGuard g;
    const models::TiedUse t = models::tied_lookup(*emb, ids);
    CHECK(t.head.is_same(emb->weight));
    CHECK(at::equal(t.embedded, at::embedding(emb->weight, ids)));
  }
  emb->weight.requires_grad_(false);
  CHECK(models::tied_lookup(*emb, ids).head.is_same(emb->weight));
}
