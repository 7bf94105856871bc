// ssd_scan (Mamba-2): chunked op vs the fp64 recurrence over a grid of shapes, chunk sizes, dtypes and
// flags (values and gradients), fp64 finite differences, packed documents, autocast, the decode step,
// and argument errors.
#include "helpers.h"

#include "ops/ssd_scan.h"

#include <ATen/autocast_mode.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

using namespace mft::test;
using mft::OptTensor;

namespace {
bool bit(uint64_t i, int k) {
  return ((i * 0x9E3779B97F4A7C15ull) >> (13 + 3 * k)) & 1;
}

struct SsdCase {
  int64_t batch = 2, seqlen = 9, heads = 4, headdim = 3, groups = 2, dstate = 5, chunk = 4;
  int D_kind = 1;  // 0 none, 1 (h,), 2 (h, p)
  bool has_z = true, has_bias = true, softplus = true, has_init = true, final_states = true, has_seq_idx = false;
  bool limit = false, non_contiguous = false;
  at::ScalarType dtype = at::kFloat;
  std::string describe() const {
    std::ostringstream s;
    s << "b" << batch << " L" << seqlen << " h" << heads << " p" << headdim << " g" << groups << " n" << dstate
      << " chunk" << chunk << " D" << D_kind << " z" << has_z << " bias" << has_bias << " sp" << softplus << " init"
      << has_init << " fin" << final_states << " seq" << has_seq_idx << " lim" << limit << " nc" << non_contiguous
      << " " << dtype;
    return s.str();
  }
};

struct SsdInputs {
  at::Tensor x, dt, A, B, C, D, z, bias, init, seq_idx;
  bool softplus = false, final_states = false;
  std::vector<double> limit;  // empty: default (0, inf)
  int64_t chunk = 256;

  static SsdInputs make(const SsdCase& c) {
    SsdInputs in;
    const auto act = c.dtype;
    const auto st = act == at::kDouble ? at::kDouble : at::kFloat;
    in.x = randn({c.batch, c.seqlen, c.heads, c.headdim}, act);
    if (c.non_contiguous) in.x = in.x.transpose(2, 3).contiguous().transpose(2, 3);
    // dt around softplus^-1(0.1) .. a few: decays that matter within a few steps.
    in.dt = (randn({c.batch, c.seqlen, c.heads}, at::kDouble, 0.5) + (c.softplus ? -1.5 : 0.4)).abs().to(act);
    if (c.softplus) in.dt = (in.dt.to(at::kDouble) - 1.5).to(act);
    in.A = -(at::rand({c.heads}, at::kDouble) * 1.5 + 0.2).to(st);
    in.B = randn({c.batch, c.seqlen, c.groups, c.dstate}, act);
    in.C = randn({c.batch, c.seqlen, c.groups, c.dstate}, act);
    if (c.D_kind == 1) in.D = randn({c.heads}, st);
    if (c.D_kind == 2) in.D = randn({c.heads, c.headdim}, st);
    if (c.has_z) in.z = randn({c.batch, c.seqlen, c.heads, c.headdim}, act);
    if (c.has_bias) in.bias = randn({c.heads}, st, 0.3);
    if (c.has_init) in.init = randn({c.batch, c.heads, c.headdim, c.dstate}, st);
    if (c.has_seq_idx) {
      // Batch 0: documents of length 3, 1, rest; other rows one document; then padding (packed_seq_idx's).
      in.seq_idx = at::zeros({c.batch, c.seqlen}, at::kInt);
      in.seq_idx[0].narrow(0, std::min<int64_t>(3, c.seqlen), c.seqlen - std::min<int64_t>(3, c.seqlen)).fill_(1);
      if (c.seqlen > 4) in.seq_idx[0].narrow(0, 4, c.seqlen - 4).fill_(2);
      in.seq_idx = at::where(packed_seq_idx(c.batch, c.seqlen, 0).lt(0), -1, in.seq_idx).to(at::kInt);
    }
    in.softplus = c.softplus;
    in.final_states = c.final_states;
    if (c.limit) in.limit = {0.05, 0.6};
    in.chunk = c.chunk;
    return in;
  }
  SsdInputs to_double() const {
    SsdInputs d = *this;
    for (at::Tensor* t : {&d.x, &d.dt, &d.A, &d.B, &d.C, &d.D, &d.z, &d.bias, &d.init}) {
      if (t->defined()) *t = t->to(at::kDouble);
    }
    return d;
  }
  std::vector<at::Tensor*> leaves() { return {&x, &dt, &A, &B, &C, &D, &z, &bias, &init}; }
  static std::vector<std::string> names() { return {"x", "dt", "A", "B", "C", "D", "z", "dt_bias", "init"}; }
  std::optional<at::ArrayRef<double>> dt_limit() const {
    return limit.empty() ? std::nullopt : std::optional<at::ArrayRef<double>>(limit);
  }
};

struct SsdResult {
  at::Tensor out, fin;
  std::vector<at::Tensor> grads;
};

enum class Impl { Ops, Reference };

SsdResult run(SsdInputs in, Impl impl, const at::Tensor& w_out, const at::Tensor& w_fin) {
  for (at::Tensor* t : in.leaves()) {
    if (t->defined()) *t = t->detach().clone().requires_grad_(true);
  }
  auto f = impl == Impl::Ops ? &mft::ssd_scan : &mft::reference::ssd_scan;
  auto [out, fin] = f(in.x, in.dt, in.A, in.B, in.C, in.chunk, opt(in.D), opt(in.z), opt(in.bias), opt(in.init),
                      opt(in.seq_idx), in.softplus, in.dt_limit(), in.final_states);
  at::Tensor loss = (out.to(at::kDouble) * w_out).sum();
  if (in.final_states) loss = loss + (fin.to(at::kDouble) * w_fin).sum();
  loss.backward();
  SsdResult r{out.detach(), fin.detach(), {}};
  for (at::Tensor* t : in.leaves()) r.grads.push_back(t->defined() ? t->grad() : at::Tensor());
  return r;
}

void compare_case(const SsdCase& c) {
  at::manual_seed(2000 + c.seqlen * 13 + c.dstate);
  const SsdInputs in = SsdInputs::make(c);
  const at::Tensor w_out = at::randn({c.batch, c.seqlen, c.heads, c.headdim}, at::kDouble);
  const at::Tensor w_fin = at::randn({c.batch, c.heads, c.headdim, c.dstate}, at::kDouble);
  const SsdResult ours = run(in, Impl::Ops, w_out, w_fin);
  const SsdResult exact = run(in.to_double(), Impl::Reference, w_out, w_fin);
  const bool lowp = c.dtype != at::kFloat;
  SsdResult plain;
  if (lowp) plain = run(in, Impl::Reference, w_out, w_fin);
  // Recurrence depth (batch folded in like the other scans) and the longest reductions: n in C.S,
  // the chunk in the intra-chunk matmul, p in the state matmul.
  const int64_t depth = (c.batch + 1) * c.seqlen, width = c.dstate + c.chunk + c.headdim;
  auto check = [&](const std::string& what, const at::Tensor& x, const at::Tensor& ref64, const at::Tensor& ref_plain) {
    check_within_bound(c.describe() + " | " + what, x, ref64, ref_plain, depth, width);
  };
  check("out", ours.out, exact.out, lowp ? plain.out : at::Tensor());
  CHECK(ours.out.scalar_type() == c.dtype);
  if (c.final_states) {
    CHECK(ours.fin.scalar_type() == at::kFloat);
    check("final_states", ours.fin, exact.fin, lowp ? plain.fin : at::Tensor());
  } else {
    CHECK(ours.fin.numel() == 0);
  }
  const auto names = SsdInputs::names();
  for (size_t k = 0; k < names.size(); ++k) {
    if (!exact.grads[k].defined()) continue;
    check("grad " + names[k], ours.grads[k], exact.grads[k], lowp ? plain.grads[k] : at::Tensor());
  }
}
}  // namespace

TEST_CASE("ssd_scan matches the fp64 recurrence over the op grid", "[ssd_scan]") {
  uint64_t i = 0;
  for (int64_t seqlen : {1, 2, 9, 33}) {
    for (int64_t chunk : {1, 4, 8, 256}) {
      for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
        ++i;
        SsdCase c;
        c.seqlen = seqlen;
        c.chunk = chunk;
        c.dtype = dt;
        c.groups = bit(i, 0) ? 1 : 2;
        c.dstate = bit(i, 1) ? 5 : 16;
        c.D_kind = int(i % 3);
        c.has_z = bit(i, 2);
        c.has_bias = bit(i, 3);
        c.softplus = bit(i, 4);
        c.has_init = bit(i, 5);
        c.final_states = bit(i, 6);
        c.has_seq_idx = bit(i, 7) && seqlen > 1;
        c.limit = bit(i, 8);
        c.non_contiguous = bit(i, 9);
        compare_case(c);
      }
    }
  }
}

TEST_CASE("ssd_scan at Mamba-2 head geometry with every option", "[ssd_scan]") {
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    SsdCase c;
    c.batch = 1;
    c.seqlen = 70;
    c.heads = 6;
    c.headdim = 16;
    c.groups = 3;
    c.dstate = 32;
    c.chunk = 32;
    c.D_kind = 2;
    c.has_seq_idx = true;
    c.limit = true;
    c.dtype = dt;
    compare_case(c);
  }
}

TEST_CASE("ssd_scan gradients match fp64 central finite differences", "[ssd_scan][gradcheck]") {
  for (int64_t chunk : {3, 16}) {
    for (bool seq : {false, true}) {
      SsdCase c;
      c.batch = 2;
      c.seqlen = 7;
      c.heads = 2;
      c.headdim = 2;
      c.groups = 1 + int(seq);
      c.dstate = 3;
      c.chunk = chunk;
      c.D_kind = seq ? 2 : 1;
      c.has_seq_idx = seq;
      c.limit = seq;
      c.dtype = at::kDouble;
      at::manual_seed(31 + chunk);
      SsdInputs in = SsdInputs::make(c);
      const at::Tensor w_out = at::randn({c.batch, c.seqlen, c.heads, c.headdim}, at::kDouble);
      const at::Tensor w_fin = at::randn({c.batch, c.heads, c.headdim, c.dstate}, at::kDouble);
      const SsdResult analytic = run(in, Impl::Ops, w_out, w_fin);
      auto loss = [&] {
        auto [out, fin] = mft::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.chunk, opt(in.D), opt(in.z), opt(in.bias),
                                        opt(in.init), opt(in.seq_idx), in.softplus, in.dt_limit(), true);
        return ((out * w_out).sum() + (fin * w_fin).sum()).item<double>();
      };
      const auto names = SsdInputs::names();
      auto leaves = in.leaves();
      for (size_t k = 0; k < leaves.size(); ++k) {
        if (!leaves[k]->defined()) continue;
        *leaves[k] = leaves[k]->contiguous();
        const double err = normalised_error(analytic.grads[k], finite_difference(loss, *leaves[k]));
        INFO(c.describe() << " | d" << names[k] << " | normalised error vs finite differences " << err);
        CHECK(err <= 1e-6);  // same derivation as the selective_scan check
      }
    }
  }
}

TEST_CASE("ssd_scan: packed documents never leak into each other", "[ssd_scan]") {
  at::manual_seed(4);
  SsdCase c;
  c.batch = 1;
  c.seqlen = 40;
  c.has_init = false;
  c.chunk = 8;
  SsdInputs in = SsdInputs::make(c);
  const int64_t split = 19;  // inside a chunk
  in.seq_idx = at::cat({at::zeros({1, split}, at::kInt), at::ones({1, c.seqlen - split}, at::kInt)}, 1);
  auto tail = [&](const at::Tensor& t) { return t.narrow(1, split, c.seqlen - split); };
  const auto [packed, fin] = mft::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.chunk, opt(in.D), opt(in.z), opt(in.bias),
                                           {}, in.seq_idx, true, {}, true);
  const auto [alone, alone_fin] = mft::ssd_scan(tail(in.x), tail(in.dt), in.A, tail(in.B), tail(in.C), in.chunk,
                                                opt(in.D), tail(in.z), opt(in.bias), {}, {}, true, {}, true);
  CHECK(normalised_error(tail(packed), alone) <= fp32_bound(c.seqlen, c.dstate + c.chunk));
  CHECK(normalised_error(fin, alone_fin) <= fp32_bound(c.seqlen, c.dstate + c.chunk));
}

TEST_CASE("ssd_scan: negative seq_idx is padding (0 out, state 0, no gradient, nothing leaks)", "[ssd_scan]") {
  at::manual_seed(23);
  SsdCase c;
  c.batch = 3, c.seqlen = 21, c.chunk = 8;
  c.has_seq_idx = true;
  SsdInputs in = SsdInputs::make(c);
  const at::Tensor pad = in.seq_idx.lt(0).view({c.batch, c.seqlen, 1, 1});
  auto run = [&](const SsdInputs& i) {
    std::vector<at::Tensor> leaves = {i.x.clone().requires_grad_(true), i.dt.clone().requires_grad_(true),
                                      i.z.clone().requires_grad_(true), i.init.clone().requires_grad_(true)};
    auto [out, fin] = mft::ssd_scan(leaves[0], leaves[1], i.A, i.B, i.C, i.chunk, opt(i.D), leaves[2], opt(i.bias),
                                    leaves[3], i.seq_idx, i.softplus, i.dt_limit(), true);
    (out.sum() + fin.sum()).backward();
    std::vector<at::Tensor> r{out.detach(), fin.detach()};
    for (auto& t : leaves) r.push_back(t.grad());
    return r;
  };
  const auto clean = run(in);
  const at::Tensor padx = pad.expand_as(in.x);
  const int64_t npad = padx.sum().item<int64_t>();
  REQUIRE(npad > 0);
  CHECK(at::equal(clean[0].masked_select(padx), at::zeros({npad})));
  CHECK(at::equal(clean[2].masked_select(padx), at::zeros({npad})));                         // dx
  CHECK(at::equal(clean[4].masked_select(padx), at::zeros({npad})));                         // dz
  CHECK(at::equal(clean[1].select(0, c.batch - 1), at::zeros_like(clean[1].select(0, 0))));  // ends in padding
  CHECK(at::equal(clean[5].select(0, 0), at::zeros_like(clean[5].select(0, 0))));            // starts in padding
  SsdInputs poisoned = in;
  const at::Tensor nan = at::full({}, NAN);
  poisoned.x = at::where(padx, nan, in.x);
  poisoned.z = at::where(padx, nan, in.z);
  poisoned.dt = at::where(in.seq_idx.lt(0).unsqueeze(-1), nan, in.dt);
  const auto p = run(poisoned);
  for (size_t i = 0; i < clean.size(); ++i) {
    INFO("output/gradient " << i);
    CHECK(at::equal(p[i], clean[i]));
  }
  const auto [ref, ref_fin] =
      mft::reference::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.chunk, opt(in.D), opt(in.z), opt(in.bias),
                               opt(in.init), in.seq_idx, in.softplus, in.dt_limit(), true);
  CHECK(normalised_error(clean[0], ref) <= fp32_bound(c.seqlen, c.dstate + c.chunk));
  CHECK(normalised_error(clean[1], ref_fin) <= fp32_bound(c.seqlen, c.dstate + c.chunk));
}

TEST_CASE("ssd_scan under CPU autocast: activations low precision, states fp32", "[ssd_scan][autocast]") {
  at::manual_seed(6);
  SsdInputs in = SsdInputs::make(SsdCase{});
  in.A.requires_grad_(true);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  auto [out, fin] = mft::ssd_scan(in.x, in.dt, in.A, in.B, in.C, 4, in.D, in.z, in.bias, in.init, {}, true, {}, true);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  CHECK(out.scalar_type() == at::kBFloat16);
  CHECK(fin.scalar_type() == at::kFloat);
  out.to(at::kFloat).sum().backward();
  REQUIRE(in.A.grad().defined());
  CHECK(in.A.grad().scalar_type() == at::kFloat);
}

TEST_CASE("ssd_state_update stepped token by token reproduces ssd_scan", "[ssd_scan]") {
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kDouble}) {
    for (int D_kind : {0, 1, 2}) {
      at::manual_seed(8 + D_kind);
      SsdCase c;
      c.seqlen = 11;
      c.heads = 6;
      c.groups = 3;
      c.headdim = 20;  // dim 120: several vector blocks, one partial
      c.D_kind = D_kind;
      c.limit = D_kind == 2;
      c.dtype = dt;
      const SsdInputs in = SsdInputs::make(c);
      const auto [full, fin] = mft::ssd_scan(in.x, in.dt, in.A, in.B, in.C, 4, opt(in.D), opt(in.z), opt(in.bias),
                                             in.init, {}, true, in.dt_limit(), true);
      at::Tensor state = in.init.clone(), state_ref = in.init.clone();
      std::vector<at::Tensor> steps, steps_ref;
      for (int64_t t = 0; t < c.seqlen; ++t) {
        auto at_t = [&](const at::Tensor& v) { return v.select(1, t); };
        steps.push_back(mft::ssd_state_update(state, at_t(in.x), at_t(in.dt), in.A, at_t(in.B), at_t(in.C), opt(in.D),
                                              at_t(in.z), opt(in.bias), true, in.dt_limit()));
        steps_ref.push_back(mft::reference::ssd_state_update(state_ref, at_t(in.x), at_t(in.dt), in.A, at_t(in.B),
                                                             at_t(in.C), opt(in.D), at_t(in.z), opt(in.bias), true,
                                                             in.dt_limit()));
      }
      const at::Tensor stepped = at::stack(steps, 1), stepped_ref = at::stack(steps_ref, 1);
      INFO(c.describe());
      CHECK(stepped.scalar_type() == dt);
      // Stepping computes in fp32 like the chunked op; bf16 outputs differ by the final rounding (u = 2^-8).
      const double bound = dt == at::kBFloat16 ? 2 * unit_roundoff(at::kBFloat16) : fp32_bound(c.seqlen, 40);
      CHECK(normalised_error(stepped, full) <= bound);
      CHECK(normalised_error(stepped_ref, full) <= bound);
      CHECK(normalised_error(state, fin) <= fp32_bound(c.seqlen, 40));
      CHECK(normalised_error(state_ref, fin) <= fp32_bound(c.seqlen, 40));
    }
  }
}

TEST_CASE("ssd_scan rejects bad arguments with messages naming them", "[ssd_scan]") {
  using Catch::Matchers::Contains;
  const SsdInputs in = SsdInputs::make(SsdCase{});
  auto call = [&](const at::Tensor& x, const at::Tensor& A, const at::Tensor& B, int64_t chunk,
                  std::optional<at::ArrayRef<double>> lim = std::nullopt, const OptTensor& seq = {}) {
    mft::ssd_scan(x, in.dt, A, B, in.C, chunk, in.D, {}, {}, {}, seq, false, lim, false);
  };
  CHECK_THROWS_WITH(call(in.x.select(0, 0), in.A, in.B, 4),
                    Contains("x must be (batch, seqlen, heads, headdim) (4 dims)"));
  CHECK_THROWS_WITH(call(in.x, in.A.to(at::kHalf), in.B, 4), Contains("A must be Float; got Half"));
  CHECK_THROWS_WITH(call(in.x, in.A, in.B.narrow(2, 0, 1).expand({2, 9, 3, 5}), 4),
                    Contains("heads (4) must be divisible by the groups of B (3)"));
  CHECK_THROWS_WITH(call(in.x, in.A, in.B, 0), Contains("chunk_size must be >= 1; got 0"));
  const std::vector<double> bad_limit{1.0, 0.5};
  CHECK_THROWS_WITH(call(in.x, in.A, in.B, 4, bad_limit), Contains("dt_limit must satisfy min <= max"));
  CHECK_THROWS_WITH(call(in.x, in.A, in.B, 4, std::nullopt, at::zeros({2, 9}, at::kLong)),
                    Contains("seq_idx must be Int"));
  at::Tensor state = at::zeros({2, 4, 3, 5});
  CHECK_THROWS_WITH(mft::ssd_state_update(state, in.x.select(1, 0), in.dt.select(1, 0), in.A,
                                          in.B.select(1, 0).narrow(2, 0, 4), in.C.select(1, 0)),
                    Contains("ssd_state_update: B must be (batch, groups, dstate) = (2, 2, 5)"));
}
