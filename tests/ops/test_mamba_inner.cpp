// mamba_inner: the op vs the fp64 reference over a grid (LoRA targets, biases, seq_idx, dropout, trained
// or frozen base, fp32/bf16/fp16 with fp32 or low-precision adapters), values and all 16 gradients;
// low precision against the unfused chain of ops in the same precision; fp64 central finite differences;
// frozen weights get no gradient and every adapter factor a non-zero one; dropout determinism; autocast;
// registration and argument errors.
#include "helpers.h"

#include "core/library_info.h"
#include "ops/lora_linear.h"
#include "ops/mamba_inner.h"

#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <catch2/catch.hpp>

#include <sstream>

using namespace mft::test;
using Catch::Matchers::Contains;
using mft::LoraFactors;
using mft::MambaInnerArgs;
using mft::OptTensor;

namespace {
struct InnerCase {
  int64_t batch = 2, inner = 6, seqlen = 9, dstate = 3, dt_rank = 2, width = 4, model_dim = 5, lora_rank = 2;
  int lora_targets = 7;  // bits: 1 x_proj, 2 dt_proj, 4 out_proj
  bool conv_bias = true, out_bias = false, seq_idx = false, train_base = false;
  double dropout = 0;
  at::ScalarType dtype = at::kFloat, lora_dtype = at::kFloat;
  std::string describe() const {
    std::ostringstream s;
    s << "B" << batch << " E" << inner << " L" << seqlen << " N" << dstate << " R" << dt_rank << " W" << width << " Dm"
      << model_dim << " lora" << lora_targets << " conv_bias" << conv_bias << " out_bias" << out_bias << " seq_idx"
      << seq_idx << " train_base" << train_base << " p" << dropout << " " << dtype << "/" << lora_dtype;
    return s.str();
  }
};

// Master values (fp64) of every input.
struct InnerInputs {
  at::Tensor xz, conv_w, conv_b, x_w, dt_w, out_w, out_b, A, D, dt_bias, seq_idx, dout;
  std::array<at::Tensor, 3> lora_A, lora_B;
  std::array<double, 3> scales = {1.5, 0.7, 2.0};
  int64_t seed = 99;
  static InnerInputs make(const InnerCase& c) {
    InnerInputs t;
    const auto d = at::kDouble;
    const int64_t E = c.inner, R = c.dt_rank, N = c.dstate;
    t.xz = randn({c.batch, 2 * E, c.seqlen}, d);
    t.conv_w = randn({E, c.width}, d, 0.5);
    t.conv_b = randn({E}, d, 0.3);
    t.x_w = randn({R + 2 * N, E}, d, 1.0 / std::sqrt(double(E)));
    t.dt_w = randn({E, R}, d, 1.0 / std::sqrt(double(R)));
    t.out_w = randn({c.model_dim, E}, d, 1.0 / std::sqrt(double(E)));
    t.out_b = randn({c.model_dim}, d, 0.3);
    t.A = -(at::rand({E, N}, d) * 2 + 0.3);
    t.D = randn({E}, d);
    t.dt_bias = randn({E}, d, 0.5) - 1.0;
    const int64_t ins[3] = {E, R, E}, outs[3] = {R + 2 * N, E, c.model_dim};
    for (int k = 0; k < 3; ++k) {
      t.lora_A[k] = randn({c.lora_rank, ins[k]}, d, 0.4);
      t.lora_B[k] = randn({outs[k], c.lora_rank}, d, 0.4);  // never zero: the low-rank path must matter
    }
    t.seq_idx = packed_seq_idx(c.batch, c.seqlen, 0.2);  // documents and padding
    t.dout = randn({c.batch, c.seqlen, c.model_dim}, d);
    return t;
  }
};

// The 16 differentiable inputs as leaves, in the op's order.
struct Leaves {
  std::array<at::Tensor, mft::kMambaInnerGrads> t;
};
Leaves leaves(const InnerInputs& in, const InnerCase& c, at::ScalarType act, at::ScalarType lora_dtype) {
  const at::ScalarType state = act == at::kDouble ? at::kDouble : at::kFloat;
  auto leaf = [](const at::Tensor& v, at::ScalarType dt, bool grad) { return v.to(dt).detach().requires_grad_(grad); };
  Leaves l;
  l.t[0] = leaf(in.xz, act, true);
  l.t[1] = leaf(in.conv_w, act, c.train_base);
  if (c.conv_bias) l.t[2] = leaf(in.conv_b, act, c.train_base);
  l.t[3] = leaf(in.x_w, act, c.train_base);
  l.t[4] = leaf(in.dt_w, act, c.train_base);
  l.t[5] = leaf(in.out_w, act, c.train_base);
  if (c.out_bias) l.t[6] = leaf(in.out_b, act, c.train_base);
  l.t[7] = leaf(in.A, state, true);
  l.t[8] = leaf(in.D, state, true);
  l.t[9] = leaf(in.dt_bias, state, true);
  for (int k = 0; k < 3; ++k) {
    if (c.lora_targets & (1 << k)) {
      l.t[10 + 2 * k] = leaf(in.lora_A[k], lora_dtype, true);
      l.t[11 + 2 * k] = leaf(in.lora_B[k], lora_dtype, true);
    }
  }
  return l;
}

MambaInnerArgs args_of(const Leaves& l, const InnerInputs& in, const InnerCase& c) {
  MambaInnerArgs a;
  a.xz = l.t[0];
  a.conv_weight = l.t[1];
  a.conv_bias = opt(l.t[2]);
  a.x_proj_weight = l.t[3];
  a.dt_proj_weight = l.t[4];
  a.out_proj_weight = l.t[5];
  a.out_proj_bias = opt(l.t[6]);
  a.A = l.t[7];
  a.D = l.t[8];
  a.dt_bias = l.t[9];
  LoraFactors* f[3] = {&a.x_proj_lora, &a.dt_proj_lora, &a.out_proj_lora};
  for (int k = 0; k < 3; ++k) *f[k] = LoraFactors{l.t[10 + 2 * k], l.t[11 + 2 * k], in.scales[k]};
  a.lora_dropout = c.dropout;
  a.training = true;
  a.dropout_seed = in.seed;
  if (c.seq_idx) a.seq_idx = in.seq_idx;
  return a;
}

// The same mixer through the separate ops (conv, lora_linear / linear, scan), as the model ran it before
// mamba_inner: the same rounding points, so the oracle for low-precision error. No dropout.
at::Tensor unfused(const MambaInnerArgs& a) {
  const int64_t E = a.xz.size(1) / 2, R = a.dt_proj_weight.size(1), N = a.A.size(1);
  auto lin = [](const at::Tensor& x, const at::Tensor& w, const OptTensor& b, const LoraFactors& l) {
    // x (B, in, L) -> (B, L, out)
    const at::Tensor xt = x.transpose(1, 2);
    return l.defined() ? mft::lora_linear(xt, w, b, l.A, l.B, l.scale) : at::linear(xt, w, b ? *b : at::Tensor());
  };
  const at::Tensor xc = mft::causal_conv1d(a.xz.narrow(1, 0, E), a.conv_weight, a.conv_bias, {}, true, a.seq_idx);
  const at::Tensor x_dbl = lin(xc, a.x_proj_weight, {}, a.x_proj_lora).transpose(1, 2);
  const at::Tensor dt = lin(x_dbl.narrow(1, 0, R), a.dt_proj_weight, {}, a.dt_proj_lora).transpose(1, 2);
  const at::Tensor y =
      std::get<0>(mft::selective_scan(xc, dt, a.A, x_dbl.narrow(1, R, N), x_dbl.narrow(1, R + N, N), a.D,
                                      a.xz.narrow(1, E, E), a.dt_bias, true, {}, false, a.seq_idx));
  const at::Tensor out = lin(y, a.out_proj_weight, a.out_proj_bias, a.out_proj_lora);
  // Padding rows are 0, the bias too (the op's rule; y is already 0 there).
  return a.seq_idx ? at::where(a.seq_idx->lt(0).unsqueeze(-1), at::zeros({}, out.options()), out) : out;
}

using Forward = at::Tensor (*)(const MambaInnerArgs&);

// Forward + backward; returns {out, 16 gradients (undefined where the input is absent or frozen)}.
std::vector<at::Tensor> run(Forward f, const Leaves& l, const InnerInputs& in, const InnerCase& c) {
  const at::Tensor out = f(args_of(l, in, c));
  out.backward(in.dout.to(out.scalar_type()));
  std::vector<at::Tensor> r = {out.detach()};
  for (const auto& t : l.t) r.push_back(t.defined() && t.requires_grad() ? t.grad() : at::Tensor());
  return r;
}

const char* kNames[] = {"out",         "dxz",        "dconv_w",    "dconv_b",     "dx_proj_w",  "ddt_proj_w",
                        "dout_proj_w", "dout_b",     "dA",         "dD",          "ddt_bias",   "dx_lora_A",
                        "dx_lora_B",   "ddt_lora_A", "ddt_lora_B", "dout_lora_A", "dout_lora_B"};

void check_case(const InnerCase& c) {
  const InnerInputs in = InnerInputs::make(c);
  const Leaves ours_l = leaves(in, c, c.dtype, c.lora_dtype), ref_l = leaves(in, c, at::kDouble, at::kDouble);
  const auto got = run(&mft::mamba_inner, ours_l, in, c);
  const auto ref = run(&mft::reference::mamba_inner, ref_l, in, c);
  std::vector<at::Tensor> plain;
  if (c.dtype != at::kFloat) plain = run(&unfused, leaves(in, c, c.dtype, c.lora_dtype), in, c);
  // Reductions: the scan's recurrence (depth L) and the longest dot products (E for x_proj and out_proj's
  // backward, Dm for out_proj's input gradient, the flattened batch for weight gradients, plus ranks).
  const int64_t width = c.inner + c.model_dim + c.dt_rank + 2 * c.dstate + c.lora_rank + c.batch * c.seqlen;
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string what = c.describe() + " | " + kNames[i];
    INFO(what);
    if (!ref[i].defined()) {
      CHECK(!got[i].defined());
      continue;
    }
    REQUIRE(got[i].defined());
    CHECK(got[i].scalar_type() == (i == 0 ? c.dtype : ours_l.t[i - 1].scalar_type()));
    if (plain.empty()) {
      check_within_bound(what, got[i], ref[i], at::Tensor(), c.seqlen, width);
    } else {
      check_within_bound(what, got[i], ref[i], plain[i], c.seqlen, width);
    }
  }
}
}  // namespace

TEST_CASE("mamba_inner matches the fp64 reference over the op grid", "[mamba_inner]") {
  at::manual_seed(0);
  int cases = 0;
  for (auto [B, E, L, N, R, Dm] : {std::tuple{2, 6, 9, 3, 2, 5}, {1, 8, 33, 4, 3, 7}, {3, 4, 1, 2, 1, 3}}) {
    for (int targets : {0, 1, 2, 4, 7}) {
      for (int flags = 0; flags < 4; ++flags) {
        InnerCase c;
        c.batch = B;
        c.inner = E;
        c.seqlen = L;
        c.dstate = N;
        c.dt_rank = R;
        c.model_dim = Dm;
        c.lora_targets = targets;
        c.train_base = flags & 1 || targets == 0;
        c.seq_idx = flags & 2;
        c.conv_bias = cases % 3 != 1;
        c.out_bias = cases % 2 == 0;
        c.width = cases % 4 == 3 ? 2 : 4;
        c.dropout = targets != 0 && cases % 3 == 0 ? 0.25 : 0.0;
        check_case(c);
        ++cases;
      }
    }
  }
  CHECK(cases == 60);
}

TEST_CASE("mamba_inner in low precision is as accurate as the unfused ops", "[mamba_inner]") {
  at::manual_seed(1);
  int cases = 0;
  for (auto [dtype, lora_dtype] :
       {std::pair{at::kBFloat16, at::kFloat}, {at::kBFloat16, at::kBFloat16}, {at::kHalf, at::kFloat}}) {
    for (int flags = 0; flags < 4; ++flags) {
      InnerCase c;
      c.seqlen = flags & 1 ? 40 : 7;
      c.inner = 16;
      c.model_dim = 12;
      c.dtype = dtype;
      c.lora_dtype = lora_dtype;
      c.train_base = flags & 2;
      c.seq_idx = flags == 3;
      c.out_bias = flags & 1;
      check_case(c);
      ++cases;
    }
  }
  CHECK(cases == 12);
}

TEST_CASE("mamba_inner gradients match fp64 central finite differences", "[mamba_inner][gradcheck]") {
  at::manual_seed(2);
  for (double p : {0.0, 0.3}) {
    InnerCase c;
    c.batch = 2;
    c.inner = 3;
    c.seqlen = 6;
    c.dstate = 2;
    c.dt_rank = 2;
    c.width = 3;
    c.model_dim = 4;
    c.out_bias = true;
    c.seq_idx = true;
    c.train_base = true;
    c.dropout = p;
    c.dtype = c.lora_dtype = at::kDouble;
    INFO("p " << p);
    const InnerInputs in = InnerInputs::make(c);
    const Leaves l = leaves(in, c, at::kDouble, at::kDouble);
    const auto got = run(&mft::mamba_inner, l, in, c);
    Leaves plain;  // plain fp64 copies, perturbed in place by the finite differences
    for (size_t i = 0; i < l.t.size(); ++i) plain.t[i] = l.t[i].detach().clone();
    auto loss = [&] {
      at::NoGradGuard g;
      return (mft::mamba_inner(args_of(plain, in, c)) * in.dout).sum().item<double>();
    };
    const double loss0 = std::abs(loss());
    for (size_t i = 0; i < plain.t.size(); ++i) {
      INFO(kNames[i + 1]);
      REQUIRE(got[i + 1].defined());
      const at::Tensor fd = finite_difference(loss, plain.t[i]);
      // Central differences with h = 1e-6: truncation O(h^2) = 1e-12, and the loss's rounding (about 10^3
      // fp64 operations deep: 10^3 x 1.1e-16 x |loss|) divided by 2h, relative to the largest gradient.
      const double rounding = 1e3 * 1.1e-16 * loss0 / 2e-6 / std::max(fd.abs().max().item<double>(), 1e-30);
      CHECK(normalised_error(got[i + 1], fd) < 1e-7 + rounding);
    }
  }
}

TEST_CASE("mamba_inner trains only the adapters when the base is frozen", "[mamba_inner]") {
  at::manual_seed(3);
  InnerCase c;
  const InnerInputs in = InnerInputs::make(c);
  const Leaves l = leaves(in, c, at::kFloat, at::kFloat);
  const auto got = run(&mft::mamba_inner, l, in, c);
  for (int i : {1, 2, 3, 4, 5}) {
    INFO(kNames[i + 1]);
    CHECK(!l.t[i].grad().defined());  // frozen weights: no gradient, no weight-gradient GEMM
  }
  for (int i = 10; i < 16; ++i) {
    INFO(kNames[i + 1]);
    CHECK(got[i + 1].abs().sum().item<double>() > 0);  // every adapter factor learns
  }
  // With nothing requiring grad the op records no graph.
  Leaves frozen;
  for (size_t i = 0; i < l.t.size(); ++i) frozen.t[i] = l.t[i].defined() ? l.t[i].detach() : at::Tensor();
  CHECK(!mft::mamba_inner(args_of(frozen, in, c)).requires_grad());
  // An adapter changes the output: with B = 0 (a fresh adapter) the op equals the base mixer.
  Leaves fresh = frozen;
  for (int k : {11, 13, 15}) fresh.t[k] = at::zeros_like(frozen.t[k]);
  Leaves base = frozen;
  for (int k = 10; k < 16; ++k) base.t[k] = at::Tensor();
  const at::Tensor with = mft::mamba_inner(args_of(frozen, in, c));
  const at::Tensor fresh_out = mft::mamba_inner(args_of(fresh, in, c));
  const at::Tensor without = mft::mamba_inner(args_of(base, in, c));
  CHECK(at::allclose(fresh_out, without));
  CHECK(!at::allclose(with, without));
}

TEST_CASE("mamba_inner dropout is a function of its seed and off in evaluation", "[mamba_inner]") {
  at::manual_seed(4);
  InnerCase c;
  c.dropout = 0.5;
  const InnerInputs in = InnerInputs::make(c);
  Leaves l = leaves(in, c, at::kFloat, at::kFloat);
  for (auto& t : l.t) {
    if (t.defined()) t = t.detach();
  }
  MambaInnerArgs a = args_of(l, in, c);
  const at::Tensor first = mft::mamba_inner(a);
  CHECK(at::equal(first, mft::mamba_inner(a)));
  a.dropout_seed = in.seed + 1;
  CHECK(!at::equal(first, mft::mamba_inner(a)));
  a.training = false;
  const at::Tensor eval = mft::mamba_inner(a);
  a.lora_dropout = 0;
  CHECK(at::equal(eval, mft::mamba_inner(a)));
  // Without a seed the default generator picks one: repeatable under manual_seed, forward and backward.
  InnerCase cg = c;
  const Leaves g1 = leaves(in, cg, at::kFloat, at::kFloat), g2 = leaves(in, cg, at::kFloat, at::kFloat);
  MambaInnerArgs a1 = args_of(g1, in, cg), a2 = args_of(g2, in, cg);
  a1.dropout_seed = a2.dropout_seed = std::nullopt;
  at::manual_seed(5);
  const at::Tensor r1 = mft::mamba_inner(a1);
  r1.backward(in.dout.to(at::kFloat));
  at::manual_seed(5);
  const at::Tensor r2 = mft::mamba_inner(a2);
  r2.backward(in.dout.to(at::kFloat));
  CHECK(at::equal(r1, r2));
  CHECK(at::equal(g1.t[10].grad(), g2.t[10].grad()));
}

TEST_CASE("mamba_inner under autocast computes in the autocast dtype", "[mamba_inner]") {
  at::manual_seed(6);
  InnerCase c;
  const InnerInputs in = InnerInputs::make(c);
  const Leaves l = leaves(in, c, at::kFloat, at::kFloat);
  const MambaInnerArgs a = args_of(l, in, c);
  at::Tensor out, plain;
  {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    out = mft::mamba_inner(a);
    plain = unfused(a);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  CHECK(out.scalar_type() == at::kBFloat16);
  out.backward(in.dout.to(at::kBFloat16));
  CHECK(l.t[0].grad().scalar_type() == at::kFloat);  // gradients reach the fp32 leaves
  CHECK(l.t[7].grad().scalar_type() == at::kFloat);
  const Leaves r = leaves(in, c, at::kDouble, at::kDouble);
  const at::Tensor ref = mft::reference::mamba_inner(args_of(r, in, c));
  check_within_bound("autocast out", out, ref, plain, c.seqlen, c.inner + c.model_dim);
}

TEST_CASE("mamba_inner: negative seq_idx is padding (0 out, bias too; no gradient from or into it)", "[mamba_inner]") {
  at::manual_seed(24);
  InnerCase c;
  c.batch = 3, c.inner = 8, c.seqlen = 12, c.dstate = 4, c.dt_rank = 2, c.model_dim = 5;
  c.seq_idx = true, c.out_bias = true, c.train_base = true, c.lora_targets = 7;
  const InnerInputs in = InnerInputs::make(c);
  const Leaves l = leaves(in, c, at::kFloat, at::kFloat);
  const std::vector<at::Tensor> r = run(&mft::mamba_inner, l, in, c);
  const at::Tensor pad = in.seq_idx.lt(0);                    // (B, L)
  const at::Tensor rows = pad.unsqueeze(-1).expand_as(r[0]);  // (B, L, Dm)
  const int64_t n = rows.sum().item<int64_t>();
  REQUIRE(n > 0);
  CHECK(at::equal(r[0].masked_select(rows), at::zeros({n}, r[0].options())));
  const at::Tensor cols = pad.unsqueeze(1).expand_as(r[1]);  // dxz (B, 2E, L)
  CHECK(at::equal(r[1].masked_select(cols), at::zeros({cols.sum().item<int64_t>()}, r[1].options())));
  // The bias gradient sums dout over the real rows only.
  const at::Tensor dout = in.dout.to(at::kFloat);
  CHECK(at::allclose(r[7], dout.masked_fill(pad.unsqueeze(-1), 0).sum(at::IntArrayRef{0, 1}), 1e-5, 1e-6));
}

TEST_CASE("mamba_inner is registered and rejects bad arguments", "[mamba_inner]") {
  std::map<std::string, mft::RegisteredOp> ops;
  for (auto& op : mft::registered_ops()) ops[op.name] = op;
  for (const auto* name : {"mft::mamba_inner", "mft::mamba_inner_fwd", "mft::mamba_inner_backward"}) {
    INFO(name);
    REQUIRE(ops.count(name) == 1);
    const auto& keys = ops[name].keys;
    CHECK(std::find(keys.begin(), keys.end(), "CompositeExplicitAutograd") != keys.end());
  }
  for (const auto* key : {"Autograd", "AutocastCPU", "AutocastCUDA"}) {
    const auto& keys = ops["mft::mamba_inner"].keys;
    CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());
  }
  InnerCase c;
  const InnerInputs in = InnerInputs::make(c);
  const Leaves l = leaves(in, c, at::kFloat, at::kFloat);
  auto bad = [&](auto&& change) {
    MambaInnerArgs a = args_of(l, in, c);
    change(a);
    return mft::mamba_inner(a);
  };
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.xz = a.xz.narrow(1, 0, 11); }),
                    Contains("xz must be (batch, 2 * inner, seqlen)"));
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.x_proj_weight = a.x_proj_weight.t(); }),
                    Contains("x_proj_weight must be (dt_rank + 2 * dstate, inner)"));
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.A = a.A.to(at::kBFloat16); }), Contains("A must be Float"));
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.out_proj_weight = a.out_proj_weight.to(at::kHalf); }),
                    Contains("out_proj_weight must be Float"));
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.dt_proj_lora.B = a.dt_proj_lora.B.narrow(0, 0, 2); }),
                    Contains("dt_proj_lora_B must be (out_features, rank)"));
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.out_proj_lora.B = at::Tensor(); }),
                    Contains("out_proj_lora_A is given without out_proj_lora_B"));
  CHECK_THROWS_WITH(bad([](MambaInnerArgs& a) { a.lora_dropout = 1.0; }), Contains("lora_dropout must be in [0, 1)"));
  CHECK_THROWS_WITH(bad([&](MambaInnerArgs& a) { a.seq_idx = in.seq_idx.to(at::kLong); }),
                    Contains("seq_idx must be Int"));
}
