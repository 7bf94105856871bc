// causal_conv1d: optimised CPU op vs the plain reference over a grid (values and gradients), fp64
// finite differences, packed documents.
#include "helpers.h"

#include "ops/causal_conv1d.h"

#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <catch2/catch.hpp>

#include <sstream>

using namespace mft::test;

namespace {
struct ConvCase {
  int64_t batch = 2, dim = 20, seqlen = 9, width = 4;
  bool bias = true, init = true, silu = true, seq_idx = false, strided = false;
  at::ScalarType dtype = at::kFloat;
  std::string describe() const {
    std::ostringstream s;
    s << "b" << batch << " d" << dim << " l" << seqlen << " w" << width << " " << dtype << (bias ? " bias" : "")
      << (init ? " init" : "") << (silu ? " silu" : "") << (seq_idx ? " seq_idx" : "") << (strided ? " strided" : "");
    return s.str();
  }
};

struct ConvInputs {
  at::Tensor x, w, b, init, seq;
  std::vector<at::Tensor*> leaves() { return {&x, &w, &b, &init}; }
};

ConvInputs make(const ConvCase& c) {
  ConvInputs in;
  in.x = randn({c.batch, c.dim, c.seqlen}, c.dtype);
  if (c.strided) in.x = non_contiguous(in.x);
  in.w = randn({c.dim, c.width}, c.dtype, 0.5);
  if (c.bias) in.b = randn({c.dim}, c.dtype);
  if (c.init) in.init = randn({c.batch, c.dim, c.width - 1}, c.dtype);
  if (c.seq_idx) in.seq = packed_seq_idx(c.batch, c.seqlen, 0.2);  // documents and padding
  return in;
}

struct ConvResult {
  at::Tensor out;
  std::vector<at::Tensor> grads;
};

ConvResult run(ConvInputs in, bool reference, bool silu, const at::Tensor& w_out) {
  for (auto* t : in.leaves()) {
    if (t->defined()) *t = t->detach().requires_grad_(true);
  }
  auto fn = reference ? &mft::reference::causal_conv1d : &mft::causal_conv1d;
  at::Tensor out = fn(in.x, in.w, opt(in.b), opt(in.init), silu, opt(in.seq));
  (out.to(at::kDouble) * w_out).sum().backward();
  ConvResult r{out.detach(), {}};
  for (auto* t : in.leaves()) r.grads.push_back(t->defined() ? t->grad() : at::Tensor());
  return r;
}

ConvInputs to_double(ConvInputs in) {
  for (auto* t : in.leaves()) {
    if (t->defined()) *t = t->to(at::kDouble);
  }
  return in;
}
}  // namespace

TEST_CASE("causal_conv1d matches the fp64 reference over the op grid", "[causal_conv1d]") {
  const char* names[] = {"x", "weight", "bias", "initial_states"};
  int i = 0;
  for (int64_t width : {1, 2, 3, 4, 5}) {
    for (int64_t seqlen : {1, 2, 7, 130}) {
      for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
        ++i;
        ConvCase c;
        c.width = width;
        c.seqlen = seqlen;
        c.dtype = dt;
        c.bias = i % 2;
        c.init = (i / 2) % 2 && width > 1;
        c.silu = (i / 4) % 2;
        c.seq_idx = (i / 3) % 2 && seqlen > 1;
        c.strided = (i / 5) % 2;
        at::manual_seed(i);
        const ConvInputs in = make(c);
        const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble);
        const ConvResult ours = run(in, false, c.silu, w_out);
        const ConvResult exact = run(to_double(in), true, c.silu, w_out);
        const bool lowp = dt != at::kFloat;
        ConvResult plain;
        if (lowp) plain = run(in, true, c.silu, w_out);
        const int64_t depth = c.batch * c.seqlen, width_sum = c.width;
        auto check = [&](const std::string& what, const at::Tensor& x, const at::Tensor& ref, const at::Tensor& pl) {
          INFO(c.describe() << " | " << what);
          const double err = normalised_error(x, ref);
          const double bound =
              lowp ? low_precision_bound(normalised_error(pl, ref), depth, width_sum) : fp32_bound(depth, width_sum);
          INFO("normalised error " << err << " bound " << bound);
          CHECK(err <= bound);
        };
        check("out", ours.out, exact.out, lowp ? plain.out : at::Tensor());
        CHECK(ours.out.scalar_type() == dt);
        for (size_t k = 0; k < 4; ++k) {
          if (exact.grads[k].defined()) {
            check(std::string("grad ") + names[k], ours.grads[k], exact.grads[k], lowp ? plain.grads[k] : at::Tensor());
          }
        }
      }
    }
  }
}

TEST_CASE("causal_conv1d gradients match fp64 central finite differences", "[causal_conv1d][gradcheck]") {
  for (int64_t width : {1, 3, 4}) {
    for (bool seq : {false, true}) {
      ConvCase c;
      c.batch = 2;
      c.dim = 3;
      c.seqlen = 11;
      c.width = width;
      c.dtype = at::kDouble;
      c.init = width > 1;
      c.seq_idx = seq;
      at::manual_seed(width * 10 + seq);
      ConvInputs in = make(c);
      const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble);
      const ConvResult analytic = run(in, false, true, w_out);
      auto loss = [&] {
        return (mft::causal_conv1d(in.x, in.w, opt(in.b), opt(in.init), true, opt(in.seq)) * w_out)
            .sum()
            .item<double>();
      };
      auto leaves = in.leaves();
      for (size_t k = 0; k < leaves.size(); ++k) {
        if (!leaves[k]->defined()) continue;
        *leaves[k] = leaves[k]->contiguous();
        const at::Tensor fd = finite_difference(loss, *leaves[k]);
        INFO(c.describe() << " | leaf " << k);
        CHECK(normalised_error(analytic.grads[k], fd) <= 1e-6);  // same derivation as the scan's FD check
      }
    }
  }
}

TEST_CASE("causal_conv1d: packed documents never mix", "[causal_conv1d]") {
  at::manual_seed(11);
  const int64_t split = 6, L = 15;
  at::Tensor x = at::randn({1, 5, L}), w = at::randn({5, 4}), b = at::randn({5});
  at::Tensor seq = at::cat({at::zeros({1, split}, at::kInt), at::ones({1, L - split}, at::kInt)}, 1);
  const at::Tensor packed = mft::causal_conv1d(x, w, b, {}, true, seq);
  const at::Tensor alone = mft::causal_conv1d(x.narrow(2, split, L - split).contiguous(), w, b, {}, true);
  CHECK(normalised_error(packed.narrow(2, split, L - split), alone) <= fp32_bound(L, 4));
}

TEST_CASE("causal_conv1d: negative seq_idx is padding (0 out, no gradient, nothing leaks)", "[causal_conv1d]") {
  at::manual_seed(21);
  const int64_t B = 3, D = 20, L = 13, W = 4;
  const at::Tensor seq = packed_seq_idx(B, L, 0.2), pad = seq.lt(0).unsqueeze(1);  // (B, 1, L)
  at::Tensor x = at::randn({B, D, L}), w = at::randn({D, W}), b = at::randn({D}), init = at::randn({B, D, W - 1});
  auto run = [&](const at::Tensor& xin, bool silu) {
    std::vector<at::Tensor> leaves = {xin.clone().requires_grad_(true), w.clone().requires_grad_(true),
                                      b.clone().requires_grad_(true), init.clone().requires_grad_(true)};
    const at::Tensor out = mft::causal_conv1d(leaves[0], leaves[1], leaves[2], leaves[3], silu, seq);
    out.backward(at::ones_like(out));
    std::vector<at::Tensor> r{out.detach()};
    for (auto& t : leaves) r.push_back(t.grad());
    return r;
  };
  for (bool silu : {false, true}) {
    INFO("silu " << silu);
    const auto clean = run(x, silu);
    CHECK(at::equal(clean[0].masked_select(pad.expand_as(x)), at::zeros({pad.expand_as(x).sum().item<int64_t>()})));
    CHECK(at::equal(clean[1].masked_select(pad.expand_as(x)), at::zeros({pad.expand_as(x).sum().item<int64_t>()})));
    // Row 0 starts with padding: its initial states belong to it and get no gradient.
    CHECK(at::equal(clean[4].select(0, 0), at::zeros({D, W - 1})));
    // NaN in every padding input changes nothing anywhere (values and gradients, bit for bit).
    const auto poisoned = run(at::where(pad, at::full({}, NAN), x), silu);
    for (size_t i = 0; i < clean.size(); ++i) {
      INFO("output/gradient " << i);
      CHECK(at::equal(poisoned[i], clean[i]));
    }
    const at::Tensor ref = mft::reference::causal_conv1d(x, w, b, init, silu, seq);
    CHECK(normalised_error(clean[0], ref) <= fp32_bound(L, W));
  }
}

TEST_CASE("causal_conv1d under CPU autocast runs in the autocast dtype", "[causal_conv1d][autocast]") {
  at::manual_seed(13);
  at::Tensor x = at::randn({2, 20, 9}), w = at::randn({20, 4}).requires_grad_(true), b = at::randn({20});
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  const at::Tensor out = mft::causal_conv1d(x, w, b, {}, true);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  CHECK(out.scalar_type() == at::kBFloat16);
  out.to(at::kFloat).sum().backward();
  REQUIRE(w.grad().defined());
  CHECK(w.grad().scalar_type() == at::kFloat);  // the fp32 master weight gets an fp32 gradient
  const at::Tensor manual =
      mft::causal_conv1d(x.to(at::kBFloat16), w.detach().to(at::kBFloat16), b.to(at::kBFloat16), {}, true);
  CHECK(at::equal(out, manual));
}
