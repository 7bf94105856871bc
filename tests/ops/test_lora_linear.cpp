// lora_linear: the op vs the fp64 reference over a grid of shapes, ranks, dtypes, bias and dropout
// (values and gradients), fp64 central finite differences, the frozen base getting no gradient,
// dropout determinism, autocast, registration and argument errors.
#include "helpers.h"

#include "core/cast_cache.h"
#include "core/library_info.h"
#include "ops/lora_linear.h"

#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <catch2/catch.hpp>

#include <sstream>

using namespace mft::test;
using Catch::Matchers::Contains;
using mft::OptTensor;

namespace {
struct LoraCase {
  std::vector<int64_t> lead = {2, 5};  // leading dims of x
  int64_t in = 12, out = 7, rank = 3;
  bool bias = true, train_base = false, non_contiguous = false;
  double dropout = 0.0;
  at::ScalarType dtype = at::kFloat, lora_dtype = at::kFloat;
  std::string describe() const {
    std::ostringstream s;
    s << "lead" << at::IntArrayRef(lead) << " in" << in << " out" << out << " r" << rank << " bias" << bias
      << " train_base" << train_base << " nc" << non_contiguous << " p" << dropout << " " << dtype << "/" << lora_dtype;
    return s.str();
  }
};

struct LoraInputs {
  at::Tensor x, w, b, A, B, dy;
  double scale = 1.7;
  int64_t seed = 1234;
  static LoraInputs make(const LoraCase& c) {
    LoraInputs t;
    std::vector<int64_t> xs = c.lead;
    xs.push_back(c.in);
    t.x = randn(xs, c.dtype);
    if (c.non_contiguous && xs.size() >= 2) t.x = t.x.transpose(0, -1).contiguous().transpose(0, -1);
    t.w = randn({c.out, c.in}, c.dtype, 0.3);
    if (c.bias) t.b = randn({c.out}, c.dtype);
    t.A = randn({c.rank, c.in}, c.lora_dtype, 0.3);
    t.B = randn({c.out, c.rank}, c.lora_dtype, 0.3);  // never zero: the low-rank path must matter
    std::vector<int64_t> ys = c.lead;
    ys.push_back(c.out);
    t.dy = randn(ys, c.dtype);
    return t;
  }
};

// All inputs cast to `dtype` (adapters too), with fresh leaves requiring grad where asked.
struct Leaves {
  at::Tensor x, w, b, A, B;
};
Leaves leaves(const LoraInputs& t, at::ScalarType dtype, at::ScalarType lora_dtype, bool train_base) {
  Leaves l;
  l.x = t.x.to(dtype).detach().requires_grad_(true);
  l.w = t.w.to(dtype).detach().requires_grad_(train_base);
  if (t.b.defined()) l.b = t.b.to(dtype).detach().requires_grad_(train_base);
  l.A = t.A.to(lora_dtype).detach().requires_grad_(true);
  l.B = t.B.to(lora_dtype).detach().requires_grad_(true);
  return l;
}

using Forward = at::Tensor (*)(const at::Tensor&, const at::Tensor&, const OptTensor&, const at::Tensor&,
                               const at::Tensor&, double, double, bool, std::optional<int64_t>);

// Runs forward + backward; returns {y, dx, dw, db, dA, dB}.
std::vector<at::Tensor> run(Forward f, Leaves l, const LoraInputs& t, double p) {
  at::Tensor y = f(l.x, l.w, opt(l.b), l.A, l.B, t.scale, p, /*training=*/true, t.seed);
  y.backward(t.dy.to(y.scalar_type()));
  return {y.detach(), l.x.grad(), l.w.grad(), l.b.defined() ? l.b.grad() : at::Tensor(), l.A.grad(), l.B.grad()};
}

void check_case(const LoraCase& c) {
  const LoraInputs t = LoraInputs::make(c);
  const auto got = run(&mft::lora_linear, leaves(t, c.dtype, c.lora_dtype, c.train_base), t, c.dropout);
  const auto ref = run(&mft::reference::lora_linear, leaves(t, at::kDouble, at::kDouble, c.train_base), t, c.dropout);
  std::vector<at::Tensor> plain;  // the same computation in x's precision by the plain reference
  if (c.dtype != at::kFloat && c.dtype != at::kDouble) {
    plain = run(&mft::reference::lora_linear, leaves(t, c.dtype, c.dtype, c.train_base), t, c.dropout);
  }
  const char* names[] = {"y", "dx", "dweight", "dbias", "dA", "dB"};
  // Each output element is one dot product over in + rank (forward), out + rank (dx), the flattened
  // batch (dW, db) or batch + out/in (dA, dB): bound with the longest reduction of the op.
  int64_t n = 1;
  for (auto d : c.lead) n *= d;
  const int64_t width = c.in + c.out + c.rank + n;
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(names[i]);
    const bool expected = i < 2 || i >= 4 || (c.train_base && (i == 2 || c.bias));
    if (!expected) {
      CHECK(!got[i].defined());
      continue;
    }
    REQUIRE(ref[i].defined());
    if (plain.empty()) {
      check_within_bound(c.describe() + " | " + names[i], got[i], ref[i], at::Tensor(), 1, width);
      continue;
    }
    // Low precision: 2x the plain same-precision reference, but never below what the op's own roundings
    // allow: the output (y, dx) is rounded at most twice (the base GEMM, then base + fp32 update), i.e.
    // 2u relative per element, plus the fp32 compute error; small cases (one row of 7) can otherwise
    // see a plain reference that happened to round luckily.
    INFO(c.describe() << " | " << names[i]);
    const double err = normalised_error(got[i], ref[i]);
    const double bound = std::max(low_precision_bound(normalised_error(plain[i], ref[i]), 1, width),
                                  2 * unit_roundoff(got[i].scalar_type()) + fp32_bound(1, width));
    INFO("normalised error " << err << " bound " << bound);
    CHECK(err <= bound);
  }
  CHECK(got[0].scalar_type() == c.dtype);
}
}  // namespace

TEST_CASE("lora_linear matches the fp64 reference over the op grid", "[lora_linear]") {
  at::manual_seed(0);
  int cases = 0;
  for (auto lead : {std::vector<int64_t>{2, 5}, std::vector<int64_t>{1}, std::vector<int64_t>{3, 2, 4}}) {
    for (auto [in, out, rank] : {std::tuple{12, 7, 3}, {5, 33, 1}, {64, 48, 8}, {9, 9, 16}}) {
      for (auto [dtype, lora_dtype] : {std::pair{at::kFloat, at::kFloat},
                                       {at::kBFloat16, at::kFloat},
                                       {at::kBFloat16, at::kBFloat16},
                                       {at::kHalf, at::kFloat}}) {
        for (int flags = 0; flags < 4; ++flags) {
          LoraCase c;
          c.lead = lead;
          c.in = in;
          c.out = out;
          c.rank = rank;
          c.dtype = dtype;
          c.lora_dtype = lora_dtype;
          c.bias = flags & 1;
          c.train_base = flags & 2;
          c.dropout = (cases % 3 == 0) ? 0.25 : 0.0;
          c.non_contiguous = cases % 5 == 1;
          check_case(c);
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 192);
}

TEST_CASE("lora_linear gradients match fp64 central finite differences", "[lora_linear][gradcheck]") {
  at::manual_seed(1);
  for (bool train_base : {false, true}) {
    for (double p : {0.0, 0.3}) {
      INFO("train_base " << train_base << " p " << p);
      LoraCase c;
      c.lead = {2, 3};
      c.in = 5;
      c.out = 4;
      c.rank = 2;
      c.dtype = c.lora_dtype = at::kDouble;
      c.train_base = train_base;
      const LoraInputs t = LoraInputs::make(c);
      Leaves l = leaves(t, at::kDouble, at::kDouble, train_base);
      const auto got = run(&mft::lora_linear, l, t, p);
      at::Tensor x = t.x.contiguous().clone(), w = t.w.clone(), b = t.b.clone(), A = t.A.clone(), B = t.B.clone();
      auto loss = [&] {
        at::NoGradGuard g;
        return (mft::lora_linear(x, w, b, A, B, t.scale, p, true, t.seed) * t.dy).sum().item<double>();
      };
      std::vector<std::pair<at::Tensor*, int>> checks = {{&x, 1}, {&A, 4}, {&B, 5}};
      if (train_base) {
        checks.push_back({&w, 2});
        checks.push_back({&b, 3});
      }
      for (auto [input, index] : checks) {
        INFO("gradient " << index);
        const at::Tensor fd = finite_difference(loss, *input);
        // Central differences: truncation O(h^2) and rounding O(eps/h) with h = 1e-6: about 1e-9 here.
        CHECK(normalised_error(got[index], fd) < 1e-7);
      }
    }
  }
}

TEST_CASE("lora_linear gives a frozen base no gradient", "[lora_linear]") {
  const at::Tensor x = at::randn({4, 6}).requires_grad_(true);
  const at::Tensor w = at::randn({5, 6}), b = at::randn({5});
  const at::Tensor A = at::randn({2, 6}).requires_grad_(true), B = at::randn({5, 2}).requires_grad_(true);
  mft::lora_linear(x, w, b, A, B, 2.0).sum().backward();
  CHECK(!w.grad().defined());
  CHECK(!b.grad().defined());
  CHECK(A.grad().abs().sum().item<double>() > 0);
  CHECK(B.grad().abs().sum().item<double>() > 0);
  CHECK(x.grad().abs().sum().item<double>() > 0);
  // With nothing requiring grad the op records no graph.
  CHECK(!mft::lora_linear(x.detach(), w, b, A.detach(), B.detach(), 2.0).requires_grad());
}

TEST_CASE("lora_linear dropout is a function of its seed", "[lora_linear]") {
  const at::Tensor x = at::randn({8, 16}), w = at::randn({10, 16});
  const at::Tensor A = at::randn({4, 16}), B = at::randn({10, 4});
  const at::Tensor no_drop = mft::lora_linear(x, w, {}, A, B, 1.0, 0.5, /*training=*/false, 7);
  CHECK(at::equal(no_drop, mft::lora_linear(x, w, {}, A, B, 1.0)));  // eval: no dropout
  const at::Tensor a = mft::lora_linear(x, w, {}, A, B, 1.0, 0.5, true, 7);
  CHECK(at::equal(a, mft::lora_linear(x, w, {}, A, B, 1.0, 0.5, true, 7)));
  CHECK(!at::equal(a, mft::lora_linear(x, w, {}, A, B, 1.0, 0.5, true, 8)));
  CHECK(!at::equal(a, no_drop));
  // The mask keeps about 1 - p of the elements and scales them by 1 / (1 - p).
  const at::Tensor m = mft::lora_dropout_mask({200, 100}, 0.25, 3, at::kFloat, at::kCPU);
  const double kept = m.ne(0).to(at::kDouble).mean().item<double>();
  CHECK(std::abs(kept - 0.75) < 0.02);  // 20,000 Bernoulli draws: 4.5 standard deviations = 0.014
  CHECK(m.max().item<float>() == Approx(1.0 / 0.75));
  // Without a seed, the default generator picks one: repeatable under manual_seed.
  const at::Tensor xg = x.detach().requires_grad_(true);
  at::manual_seed(5);
  const at::Tensor r1 = mft::lora_linear(xg, w, {}, A, B, 1.0, 0.5, true);
  r1.sum().backward();
  const at::Tensor g1 = xg.grad().clone();
  xg.mutable_grad().zero_();
  at::manual_seed(5);
  const at::Tensor r2 = mft::lora_linear(xg, w, {}, A, B, 1.0, 0.5, true);
  r2.sum().backward();
  CHECK(at::equal(r1, r2));
  CHECK(at::equal(g1, xg.grad()));
}

TEST_CASE("lora_linear under autocast computes in the autocast dtype", "[lora_linear]") {
  at::manual_seed(2);
  LoraCase c;
  const LoraInputs t = LoraInputs::make(c);
  at::Tensor y;
  {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    y = mft::lora_linear(t.x, t.w, t.b, t.A, t.B, t.scale);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  CHECK(y.scalar_type() == at::kBFloat16);
  const at::Tensor ref = mft::reference::lora_linear(t.x.to(at::kDouble), t.w.to(at::kDouble), t.b.to(at::kDouble),
                                                     t.A.to(at::kDouble), t.B.to(at::kDouble), t.scale);
  auto bf = [](const at::Tensor& v) { return v.to(at::kBFloat16); };
  const at::Tensor plain = mft::reference::lora_linear(bf(t.x), bf(t.w), bf(t.b), bf(t.A), bf(t.B), t.scale);
  check_within_bound("autocast y", y, ref, plain, 1, c.in + c.rank);
}

TEST_CASE("lora_linear under autocast reuses a frozen weight's cast until the weight changes", "[lora_linear]") {
  at::manual_seed(3);
  LoraCase c;
  const LoraInputs t = LoraInputs::make(c);
  const at::Tensor w = t.w.clone();  // frozen base: no grad
  REQUIRE_FALSE(w.requires_grad());
  mft::clear_cast_cache();
  auto run = [&](const at::Tensor& weight) {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::Tensor y = mft::lora_linear(t.x, weight, t.b, t.A, t.B, t.scale);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    return y;
  };
  const at::Tensor y1 = run(w);
  const at::Tensor cast1 = mft::cached_cast(w, at::kBFloat16);
  CHECK(at::equal(cast1, w.to(at::kBFloat16)));
  CHECK(mft::cached_cast(w, at::kBFloat16).data_ptr() == cast1.data_ptr());  // reused
  CHECK(at::equal(run(w), y1));                                              // same result from the cache
  // A view made afresh reads the same memory: same entry.
  CHECK(mft::cached_cast(w.view(w.sizes()), at::kBFloat16).data_ptr() == cast1.data_ptr());
  // An in-place change (an optimizer step, a merge) bumps the version: cast again, new values.
  {
    at::NoGradGuard no_grad;
    w.mul_(2.0);
  }
  const at::Tensor cast2 = mft::cached_cast(w, at::kBFloat16);
  CHECK(cast2.data_ptr() != cast1.data_ptr());
  CHECK(at::equal(cast2, w.to(at::kBFloat16)));
  const at::Tensor y2 = run(w);
  CHECK_FALSE(at::equal(y2, y1));
  CHECK(at::equal(y2, run(w.clone())));  // as an uncached weight gives
  // Trained weights and inference tensors are never kept.
  const at::Tensor trained = t.w.clone().requires_grad_(true);
  CHECK(mft::cached_cast(trained, at::kBFloat16).data_ptr() != mft::cached_cast(trained, at::kBFloat16).data_ptr());
  mft::clear_cast_cache();
  CHECK(mft::cast_cache_size() == 0);
}

TEST_CASE("lora_linear is registered and rejects bad arguments", "[lora_linear]") {
  std::map<std::string, mft::RegisteredOp> ops;
  for (auto& op : mft::registered_ops()) ops[op.name] = op;
  for (const auto* name : {"mft::lora_linear", "mft::lora_linear_backward"}) {
    INFO(name);
    REQUIRE(ops.count(name) == 1);
    const auto& keys = ops[name].keys;
    CHECK(std::find(keys.begin(), keys.end(), "CompositeExplicitAutograd") != keys.end());
  }
  for (const auto* key : {"Autograd", "AutocastCPU", "AutocastCUDA"}) {
    const auto& keys = ops["mft::lora_linear"].keys;
    CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());
  }
  const at::Tensor x = at::randn({3, 6}), w = at::randn({4, 6}), A = at::randn({2, 6}), B = at::randn({4, 2});
  auto f = [&](auto&&... args) { return mft::lora_linear(args...); };
  CHECK_THROWS_WITH(f(x, w.t(), OptTensor(), A, B, 1.0), Contains("weight must be (out_features, in_features)"));
  CHECK_THROWS_WITH(f(x, w, OptTensor(at::randn({5})), A, B, 1.0), Contains("bias must be (out_features,)"));
  CHECK_THROWS_WITH(f(x, w, OptTensor(), at::randn({2, 5}), B, 1.0), Contains("lora_A must be (rank, in_features)"));
  CHECK_THROWS_WITH(f(x, w, OptTensor(), A, at::randn({4, 3}), 1.0), Contains("lora_B must be (out_features, rank)"));
  CHECK_THROWS_WITH(f(x, w.to(at::kBFloat16), OptTensor(), A, B, 1.0), Contains("weight must be Float"));
  CHECK_THROWS_WITH(f(x, w, OptTensor(), A, B.to(at::kDouble), 1.0), Contains("lora_B must be Float"));
  CHECK_THROWS_WITH(f(x, w, OptTensor(), A, B, 1.0, 1.0, true, 3), Contains("dropout_p must be in [0, 1)"));
}
