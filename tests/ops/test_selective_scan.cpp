// selective_scan: optimised CPU op vs the plain reference over a grid of shapes, dtypes and flags
// (values and gradients), fp64 finite differences, packing semantics, autocast.
#include "helpers.h"
#include "scan_case.h"

#include "core/simd.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <catch2/catch.hpp>

#include <functional>

using namespace mft::test;

namespace {
// Deterministic "random" flag bits per grid case, so each flag is on in about half the cases.
bool bit(uint64_t i, int k) {
  return ((i * 0x9E3779B97F4A7C15ull) >> (17 + 3 * k)) & 1;
}

void compare_case(const ScanCase& c) {
  at::manual_seed(1000 + c.seqlen * 7 + c.dstate);
  const ScanInputs in = ScanInputs::make(c);
  const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble);
  const at::Tensor w_last = at::randn({c.batch, c.dim, c.dstate}, at::kDouble);
  const ScanResult ours = run_scan(in, Impl::Ops, w_out, w_last);
  const ScanResult exact = run_scan(in.to_double(), Impl::Reference, w_out, w_last);
  ScanResult plain;
  const bool lowp = c.dtype != at::kFloat;
  if (lowp) plain = run_scan(in, Impl::Reference, w_out, w_last);
  const int64_t depth = (c.batch + 1) * c.seqlen, width = c.dstate + c.dim;

  auto check = [&](const std::string& what, const at::Tensor& x, const at::Tensor& ref64, const at::Tensor& ref_plain) {
    check_within_bound(c.describe() + " | " + what, x, ref64, ref_plain, depth, width);
  };
  check("out", ours.out, exact.out, lowp ? plain.out : at::Tensor());
  REQUIRE(ours.out.scalar_type() == c.dtype);
  if (c.last) {
    REQUIRE(ours.last.scalar_type() == at::kFloat);
    check("last_state", ours.last, exact.last, lowp ? plain.last : at::Tensor());
  } else {
    CHECK(ours.last.numel() == 0);
  }
  const auto names = ScanInputs().leaf_names();
  for (size_t k = 0; k < names.size(); ++k) {
    if (!exact.grads[k].defined()) continue;
    check("grad " + names[k], ours.grads[k], exact.grads[k], lowp ? plain.grads[k] : at::Tensor());
  }
}

// Analytic gradients (our backward) against fp64 central differences of the same op, every input.
void check_against_finite_differences(const ScanCase& c, uint64_t seed) {
  at::manual_seed(seed);
  ScanInputs in = ScanInputs::make(c);
  const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble);
  const at::Tensor w_last = at::randn({c.batch, c.dim, c.dstate}, at::kDouble);
  const ScanResult analytic = run_scan(in, Impl::Ops, w_out, w_last);
  auto loss = [&] {
    auto [out, last] = mft::selective_scan(in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias),
                                           in.softplus, opt(in.init), true, opt(in.seq_idx));
    return ((out * w_out).sum() + (last * w_last).sum()).item<double>();
  };
  const auto names = in.leaf_names();
  auto leaves = in.leaves();
  for (size_t k = 0; k < leaves.size(); ++k) {
    if (!leaves[k]->defined()) continue;
    *leaves[k] = leaves[k]->contiguous();
    const double err = normalised_error(analytic.grads[k], finite_difference(loss, *leaves[k]));
    INFO(c.describe() << " | d" << names[k] << " | normalised error vs finite differences " << err);
    // Central differences with h = 1e-6 in fp64: truncation O(h^2) ~ 1e-12 and rounding
    // O(eps / h) ~ 1e-10 relative to the loss; 1e-6 leaves room for loss magnitudes ~1e3.
    CHECK(err <= 1e-6);
  }
}
}  // namespace

TEST_CASE("selective_scan matches the fp64 reference over the op grid", "[selective_scan]") {
  uint64_t i = 0;
  for (int64_t seqlen : {1, 2, 37, 64, 130}) {  // 64 = one internal chunk; 130 spans three
    for (int64_t dstate : {1, 4, 16, 64}) {
      for (BcKind bc : {BcKind::Variable, BcKind::Grouped, BcKind::Invariant}) {
        for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
          ++i;
          ScanCase c;
          c.seqlen = seqlen;
          c.dstate = dstate;
          c.bc = bc;
          c.dtype = dt;
          c.groups = bit(i, 0) ? 2 : 4;
          c.has_D = bit(i, 1);
          c.has_z = bit(i, 2);
          c.has_bias = bit(i, 3);
          c.softplus = bit(i, 4);
          c.has_init = bit(i, 5);
          c.last = bit(i, 6);
          c.has_seq_idx = bit(i, 7) && seqlen > 1;
          c.non_contiguous = bit(i, 8);
          compare_case(c);
        }
      }
    }
  }
}

TEST_CASE("selective_scan with every option at once, long sequence", "[selective_scan]") {
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    ScanCase c;
    c.dim = 37;  // not a multiple of 16 and odd
    c.groups = 1;
    c.seqlen = 300;
    c.dstate = 16;
    c.dtype = dt;
    c.has_seq_idx = true;
    c.non_contiguous = true;
    compare_case(c);
  }
}

TEST_CASE("selective_scan: many channel blocks per backward slice", "[selective_scan]") {
  // batch 1, one group, 300 channels: 19 (AVX-512) or 38 (AVX2) blocks over 16 slices, so each slice
  // sums dB/dC over several blocks, as at real model sizes.
  for (BcKind bc : {BcKind::Variable, BcKind::Invariant}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      ScanCase c;
      c.batch = 1;
      c.dim = 300;
      c.groups = 1;
      c.dstate = 4;
      c.seqlen = 70;
      c.bc = bc;
      c.dtype = dt;
      compare_case(c);
    }
  }
}

TEST_CASE("selective_scan gradients match fp64 central finite differences", "[selective_scan][gradcheck]") {
  for (BcKind bc : {BcKind::Variable, BcKind::Grouped, BcKind::Invariant}) {
    for (int64_t seqlen : {5, 70}) {
      ScanCase c;
      c.batch = 2;
      c.dim = 4;
      c.groups = 2;
      c.dstate = 3;
      c.seqlen = seqlen;
      c.bc = bc;
      c.dtype = at::kDouble;
      c.has_seq_idx = seqlen > 5;
      check_against_finite_differences(c, 7 + seqlen);
    }
  }
  // dstate 16 takes the kernels' unrolled register path (Mamba's size); with packed documents.
  ScanCase c;
  c.batch = 1;
  c.dim = 3;
  c.dstate = 16;
  c.seqlen = 40;
  c.dtype = at::kDouble;
  c.has_seq_idx = true;
  check_against_finite_differences(c, 99);
}

TEST_CASE("selective_scan: packed documents never leak into each other", "[selective_scan]") {
  at::manual_seed(3);
  ScanCase c;
  c.batch = 1;
  c.seqlen = 90;
  c.dstate = 8;
  c.has_init = false;
  ScanInputs in = ScanInputs::make(c);
  const int64_t split = 50;
  in.seq_idx = at::cat({at::zeros({1, split}, at::kInt), at::ones({1, c.seqlen - split}, at::kInt)}, 1);
  auto tail = [&](const at::Tensor& t) { return t.narrow(-1, split, c.seqlen - split); };
  const auto [packed, last] = mft::selective_scan(in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias),
                                                  true, {}, true, in.seq_idx);
  const auto [alone, alone_last] = mft::selective_scan(tail(in.u), tail(in.delta), in.A, tail(in.B), tail(in.C),
                                                       opt(in.D), tail(in.z), opt(in.bias), true, {}, true, {});
  CHECK(normalised_error(tail(packed), alone) <= fp32_bound(c.seqlen, c.dstate));
  CHECK(normalised_error(last, alone_last) <= fp32_bound(c.seqlen, c.dstate));
}

TEST_CASE("selective_scan: negative seq_idx is padding (0 out, state 0, no gradient, nothing leaks)",
          "[selective_scan]") {
  at::manual_seed(22);
  for (const int64_t dstate : {int64_t(4), int64_t(16)}) {  // the generic and the register-resident kernel
    ScanCase c;
    c.batch = 3, c.dim = 20, c.dstate = dstate, c.seqlen = 300;  // more than one 256-step segment
    c.has_seq_idx = true;
    ScanInputs in = ScanInputs::make(c);
    const at::Tensor pad = in.seq_idx.lt(0).unsqueeze(1);  // (B, 1, L)
    const int64_t npad = pad.expand_as(in.u).sum().item<int64_t>();
    REQUIRE(npad > 0);
    const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble);
    const at::Tensor w_last = at::randn({c.batch, c.dim, c.dstate}, at::kDouble);
    const ScanResult clean = run_scan(in, Impl::Ops, w_out, w_last);
    INFO("dstate " << dstate);
    CHECK(at::equal(clean.out.masked_select(pad.expand_as(in.u)), at::zeros({npad})));
    for (const size_t leaf : {size_t(0), size_t(1), size_t(6)}) {  // u, delta, z
      CHECK(at::equal(clean.grads[leaf].masked_select(pad.expand_as(in.u)),
                      at::zeros({npad}, clean.grads[leaf].options())));
    }
    CHECK(at::equal(clean.last.select(0, c.batch - 1), at::zeros({c.dim, c.dstate})));  // ends in padding
    CHECK(at::equal(clean.grads[8].select(0, 0), at::zeros({c.dim, c.dstate})));        // starts in padding
    // NaN in every padding input of u, delta, z, B, C changes nothing.
    ScanInputs poisoned = in;
    const at::Tensor nan = at::full({}, NAN);
    for (at::Tensor* t : {&poisoned.u, &poisoned.delta, &poisoned.z}) *t = at::where(pad, nan, *t);
    for (at::Tensor* t : {&poisoned.B, &poisoned.C}) *t = at::where(in.seq_idx.lt(0).unsqueeze(1), nan, *t);
    const ScanResult p = run_scan(poisoned, Impl::Ops, w_out, w_last);
    CHECK(at::equal(p.out, clean.out));
    CHECK(at::equal(p.last, clean.last));
    for (size_t i = 0; i < clean.grads.size(); ++i) {
      INFO(in.leaf_names()[i]);
      if (!clean.grads[i].defined()) continue;
      const at::Tensor keep = i == 3 || i == 4 ? in.seq_idx.ge(0).unsqueeze(1).expand_as(clean.grads[i])
                                               : at::ones_like(clean.grads[i], at::kBool);
      CHECK(at::equal(p.grads[i].masked_select(keep), clean.grads[i].masked_select(keep)));
    }
  }
}

TEST_CASE("selective_scan under CPU autocast: activations low precision, states fp32", "[selective_scan][autocast]") {
  at::manual_seed(5);
  ScanCase c;
  c.dtype = at::kFloat;
  ScanInputs in = ScanInputs::make(c);
  in.A.requires_grad_(true);
  at::Tensor out, last;
  {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    std::tie(out, last) =
        mft::selective_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias, true, in.init, true);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  CHECK(out.scalar_type() == at::kBFloat16);
  CHECK(last.scalar_type() == at::kFloat);
  out.to(at::kFloat).sum().backward();
  REQUIRE(in.A.grad().defined());
  CHECK(in.A.grad().scalar_type() == at::kFloat);
  // Same result as casting the activations by hand.
  const auto [manual, manual_last] =
      mft::selective_scan(in.u.to(at::kBFloat16), in.delta.to(at::kBFloat16), in.A.detach(), in.B.to(at::kBFloat16),
                          in.C.to(at::kBFloat16), in.D, in.z.to(at::kBFloat16), in.bias, true, in.init, true);
  CHECK(at::equal(out, manual));
  CHECK(at::equal(last, manual_last));
}

TEST_CASE("simd exp and softplus stay within a few ulp of libm", "[simd]") {
  using mft::simd::VF;
  double worst_exp = 0, worst_exp2 = 0, worst_softplus = 0, worst_sigmoid = 0;
  for (int i = -2000; i < 2000; ++i) {
    VF x;
    for (int k = 0; k < mft::simd::kLanes; ++k) x[k] = float(i * 0.043 + k * 0.0013);
    const VF e = mft::simd::vexp(x), e2 = mft::simd::vexp2(x), s = mft::simd::vsoftplus(x), g = mft::simd::vsigmoid(x);
    for (int k = 0; k < mft::simd::kLanes; ++k) {
      const double xe = std::exp(double(x[k])), xs = std::log1p(std::exp(double(x[k])));
      const double xg = 1.0 / (1.0 + std::exp(-double(x[k])));
      worst_exp = std::max(worst_exp, std::abs(e[k] - xe) / xe);
      const double xe2 = std::exp2(double(x[k]));
      if (xe2 > 1.2e-38) worst_exp2 = std::max(worst_exp2, std::abs(e2[k] - xe2) / xe2);  // normal results
      worst_softplus = std::max(worst_softplus, std::abs(s[k] - xs) / xs);
      worst_sigmoid = std::max(worst_sigmoid, std::abs(g[k] - xg) / xg);
    }
  }
  INFO("exp " << worst_exp << " exp2 " << worst_exp2 << " softplus " << worst_softplus << " sigmoid " << worst_sigmoid);
  // fp32 unit roundoff 6e-8: exp within 4 ulp, softplus (exp, log1p and an add) within 8 ulp.
  CHECK(worst_exp <= 4 * 1.2e-7);
  CHECK(worst_exp2 <= 4 * 1.2e-7);
  CHECK(worst_softplus <= 8 * 1.2e-7);
  CHECK(worst_sigmoid <= 8 * 1.2e-7);  // exp, an add and a reciprocal (Newton-refined on AVX-512)
  VF special = mft::simd::splat<VF>(0.0f);
  special[0] = -200.0f;
  special[1] = 200.0f;
  special[2] = NAN;
  special[4] = -INFINITY;
  special[5] = INFINITY;
  special[6] = 1e30f;
  special[7] = -1e30f;
  const VF e = mft::simd::vexp(special);
  CHECK(e[0] == 0.0f);
  CHECK(std::isinf(e[1]));
  CHECK(std::isnan(e[2]));
  CHECK(e[3] == 1.0f);
  CHECK(e[4] == 0.0f);
  CHECK((std::isinf(e[5]) && e[5] > 0));
  CHECK((std::isinf(e[6]) && e[6] > 0));
  CHECK(e[7] == 0.0f);
  const VF e2 = mft::simd::vexp2(special);
  CHECK(e2[0] == 0.0f);  // 2^-200
  CHECK((std::isinf(e2[1]) && e2[1] > 0));
  CHECK(std::isnan(e2[2]));
  CHECK(e2[3] == 1.0f);
  CHECK(e2[4] == 0.0f);
  CHECK((std::isinf(e2[5]) && e2[5] > 0));
  const VF sp = mft::simd::vsoftplus(special);
  CHECK(sp[4] == 0.0f);
  CHECK((std::isinf(sp[5]) && sp[5] > 0));
  CHECK(std::isnan(sp[2]));
  const VF g = mft::simd::vsigmoid(special);
  CHECK(g[0] == 0.0f);
  CHECK(g[1] == 1.0f);
  CHECK(std::isnan(g[2]));
  CHECK(g[3] == 0.5f);
  CHECK(g[4] == 0.0f);
  CHECK(g[5] == 1.0f);
}

TEST_CASE("selective_scan backward: saved checkpoints and recomputed states agree over many segments",
          "[selective_scan]") {
  // 600 steps = three 256-step segments, the last partial; a direct call of the backward op without the
  // forward's checkpoints recomputes them.
  for (bool packed : {false, true}) {
    at::manual_seed(17);
    ScanCase c;
    c.seqlen = 600;
    c.dstate = 16;
    c.has_seq_idx = packed;
    ScanInputs in = ScanInputs::make(c);
    auto& dispatcher = c10::Dispatcher::singleton();
    auto fwd = dispatcher.findSchemaOrThrow("mft::selective_scan_fwd", "")
                   .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                       const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                       const mft::OptTensor&, const mft::OptTensor&, const mft::OptTensor&, bool, const mft::OptTensor&,
                       bool, const mft::OptTensor&)>();
    auto bwd = dispatcher.findSchemaOrThrow("mft::selective_scan_backward", "")
                   .typed<mft::ScanGrads(const at::Tensor&, const mft::OptTensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, const at::Tensor&, const mft::OptTensor&,
                                         const mft::OptTensor&, const mft::OptTensor&, bool, const mft::OptTensor&,
                                         const mft::OptTensor&, const mft::OptTensor&)>();
    const auto [out, last, ck] = fwd.call(in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias), true,
                                          opt(in.init), true, opt(in.seq_idx));
    REQUIRE(ck.sizes() == at::IntArrayRef({c.batch, c.dim, 3, c.dstate}));
    // The first checkpoint is the initial state; the others are states the scan passes through.
    CHECK(at::equal(ck.select(2, 0), in.init));
    const at::Tensor dout = at::randn_like(out), dlast = at::randn_like(last);
    const auto with = bwd.call(dout, dlast, in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias), true,
                               opt(in.init), opt(in.seq_idx), ck);
    const auto without = bwd.call(dout, dlast, in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias),
                                  true, opt(in.init), opt(in.seq_idx), std::nullopt);
    const std::vector<at::Tensor> a = {std::get<0>(with), std::get<1>(with), std::get<2>(with),
                                       std::get<3>(with), std::get<4>(with), std::get<5>(with),
                                       std::get<6>(with), std::get<7>(with), std::get<8>(with)};
    const std::vector<at::Tensor> b = {std::get<0>(without), std::get<1>(without), std::get<2>(without),
                                       std::get<3>(without), std::get<4>(without), std::get<5>(without),
                                       std::get<6>(without), std::get<7>(without), std::get<8>(without)};
    for (size_t k = 0; k < a.size(); ++k) {
      INFO("gradient " << k << (packed ? " with seq_idx" : ""));
      CHECK(normalised_error(a[k], b[k]) <= fp32_bound(c.seqlen, c.dstate));
    }
  }
}

TEST_CASE("selective_scan gradients over several segments match fp64 finite differences",
          "[selective_scan][gradcheck]") {
  ScanCase c;
  c.batch = 1;
  c.dim = 2;
  c.groups = 1;
  c.dstate = 2;
  c.seqlen = 300;  // two 256-step segments
  c.dtype = at::kDouble;
  for (bool packed : {false, true}) {  // without resets the state crosses the segment boundary whole
    c.has_seq_idx = packed;
    check_against_finite_differences(c, 23 + packed);
  }
}
