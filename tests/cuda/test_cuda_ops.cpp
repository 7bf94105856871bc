// CUDA kernels against the CPU kernels (themselves checked against the plain references and fp64 finite
// differences): causal_conv1d and selective_scan, values and gradients over a grid of shapes, dtypes
// and options, determinism of the backward, fp64 finite differences on the device, bad input. Tagged
// [cuda]; without a CUDA device every case says so and passes without checking anything (CI has none:
// scripts/gpu-check.sh runs them on a GPU machine).
#include "helpers.h"
#include "ops/scan_case.h"

#include "models/registry.h"
#include "ops/causal_conv1d.h"
#include "ops/decode_step.h"
#include "ops/selective_scan.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <catch2/catch.hpp>

using namespace mft::test;

namespace {

bool have_device() {
  if (torch::cuda::is_available()) return true;
  WARN("no CUDA device: skipped");
  return false;
}

at::Tensor to_cuda(const at::Tensor& t) {
  return t.defined() ? t.to(at::kCUDA) : t;
}

ScanInputs on_cuda(const ScanInputs& in) {
  ScanInputs c = in;
  for (at::Tensor* t : {&c.u, &c.delta, &c.A, &c.B, &c.C, &c.D, &c.z, &c.bias, &c.init, &c.seq_idx}) *t = to_cuda(*t);
  return c;
}

// Normalised-error bound of CUDA vs CPU: both compute in the same precision with different orders.
double tolerance(at::ScalarType dtype, int64_t depth) {
  if (dtype == at::kDouble) return 1e-12;
  if (dtype == at::kFloat) return fp32_bound(depth, 64);
  return 4 * unit_roundoff(dtype);  // one rounding of the output each, plus fp32 differences
}

void compare(const std::string& what, const at::Tensor& cuda, const at::Tensor& cpu, double tol) {
  INFO(what);
  REQUIRE(cuda.defined() == cpu.defined());
  if (!cpu.defined()) return;
  REQUIRE(cuda.device().is_cuda());
  CHECK(cuda.scalar_type() == cpu.scalar_type());
  CHECK(cuda.sizes() == cpu.sizes());
  const double err = normalised_error(cuda.cpu(), cpu);
  INFO("normalised error " << err << " tolerance " << tol);
  CHECK(err <= tol);
}

}  // namespace

TEST_CASE("CUDA selective_scan matches the CPU kernels over a grid", "[cuda]") {
  if (!have_device()) return;
  at::manual_seed(11);
  for (auto dtype : {at::kFloat, at::kDouble, at::kBFloat16}) {
    for (auto bc : {BcKind::Variable, BcKind::Grouped, BcKind::Invariant}) {
      for (int64_t seqlen : {1, 7, 300}) {
        for (bool seq_idx : {false, true}) {
          ScanCase c;
          c.dtype = dtype;
          c.bc = bc;
          c.seqlen = seqlen;
          c.dstate = seqlen == 7 ? 16 : 4;
          c.has_seq_idx = seq_idx;
          c.has_z = c.has_init = seqlen != 7;
          INFO(c.describe());
          const ScanInputs in = ScanInputs::make(c);
          const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble);
          const at::Tensor w_last = at::randn({c.batch, c.dim, c.dstate}, at::kDouble);
          const ScanResult cpu = run_scan(in, Impl::Ops, w_out, w_last);
          const ScanResult gpu = run_scan(on_cuda(in), Impl::Ops, w_out.cuda(), w_last.cuda());
          const double tol = tolerance(dtype, seqlen);
          compare("out", gpu.out, cpu.out, tol);
          compare("last_state", gpu.last, cpu.last, tolerance(dtype == at::kDouble ? dtype : at::kFloat, seqlen));
          const auto names = in.leaf_names();
          for (size_t i = 0; i < cpu.grads.size(); ++i) compare("d" + names[i], gpu.grads[i], cpu.grads[i], tol);
        }
      }
    }
  }
}

TEST_CASE("CUDA selective_scan backward is deterministic and matches fp64 finite differences", "[cuda]") {
  if (!have_device()) return;
  at::manual_seed(12);
  ScanCase c;
  c.seqlen = 260;  // two segments
  c.has_seq_idx = true;
  const ScanInputs in = on_cuda(ScanInputs::make(c));
  const at::Tensor w_out = at::randn({c.batch, c.dim, c.seqlen}, at::kDouble).cuda();
  const at::Tensor w_last = at::randn({c.batch, c.dim, c.dstate}, at::kDouble).cuda();
  const ScanResult a = run_scan(in, Impl::Ops, w_out, w_last), b = run_scan(in, Impl::Ops, w_out, w_last);
  for (size_t i = 0; i < a.grads.size(); ++i) {
    if (a.grads[i].defined()) CHECK(at::equal(a.grads[i], b.grads[i]));
  }
  ScanCase s;
  s.batch = 1;
  s.dim = 2;
  s.dstate = 2;
  s.seqlen = 5;
  s.dtype = at::kDouble;
  ScanInputs d = on_cuda(ScanInputs::make(s));
  const at::Tensor wo = at::randn({1, 2, 5}, at::kDouble).cuda(), wl = at::randn({1, 2, 2}, at::kDouble).cuda();
  const ScanResult got = run_scan(d, Impl::Ops, wo, wl);
  auto leaves = d.leaves();
  const auto names = d.leaf_names();
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!leaves[i]->defined()) continue;
    INFO("d" << names[i]);
    auto loss = [&] {
      at::NoGradGuard g;
      auto [out, last] = mft::selective_scan(d.u, d.delta, d.A, d.B, d.C, opt(d.D), opt(d.z), opt(d.bias), d.softplus,
                                             opt(d.init), true, opt(d.seq_idx));
      return ((out * wo).sum() + (last * wl).sum()).item<double>();
    };
    CHECK(normalised_error(got.grads[i].cpu(), finite_difference(loss, *leaves[i]).cpu()) < 1e-7);
  }
}

TEST_CASE("CUDA causal_conv1d matches the CPU kernels over a grid", "[cuda]") {
  if (!have_device()) return;
  at::manual_seed(13);
  for (auto dtype : {at::kFloat, at::kDouble, at::kBFloat16}) {
    for (int64_t width : {2, 4}) {
      for (bool options : {false, true}) {  // bias, initial states, silu, packed documents
        INFO("dtype " << dtype << " width " << width << " options " << options);
        const int64_t B = 2, D = 5, L = 33;
        at::Tensor x = randn({B, D, L}, dtype), w = randn({D, width}, dtype, 0.5);
        at::Tensor b = options ? randn({D}, dtype) : at::Tensor();
        at::Tensor init = options ? randn({B, D, width - 1}, dtype) : at::Tensor();
        at::Tensor seq;
        if (options) seq = packed_seq_idx(B, L, 0.2);  // documents and padding
        const at::Tensor w_out = at::randn({B, D, L}, at::kDouble);
        auto run = [&](bool cuda) {
          auto dev = [&](const at::Tensor& t) { return !t.defined() ? t : cuda ? t.cuda() : t.clone(); };
          std::vector<at::Tensor> leaves = {dev(x), dev(w), dev(b), dev(init)};
          for (auto& t : leaves)
            if (t.defined()) t.requires_grad_(true);
          const at::Tensor out =
              mft::causal_conv1d(leaves[0], leaves[1], opt(leaves[2]), opt(leaves[3]), options, opt(dev(seq)));
          (out.to(at::kDouble) * dev(w_out)).sum().backward();
          std::vector<at::Tensor> r = {out.detach()};
          for (auto& t : leaves) r.push_back(t.defined() ? t.grad() : at::Tensor());
          return r;
        };
        const auto cpu = run(false), gpu = run(true);
        const char* names[] = {"out", "dx", "dweight", "dbias", "dinit"};
        for (size_t i = 0; i < cpu.size(); ++i) compare(names[i], gpu[i], cpu[i], tolerance(dtype, width));
      }
    }
  }
}

TEST_CASE("CUDA ops reject what they cannot run, with the argument named", "[cuda]") {
  if (!have_device()) return;
  ScanCase c;
  c.dstate = 65;
  const ScanInputs in = on_cuda(ScanInputs::make(c));
  CHECK_THROWS_WITH(mft::selective_scan(in.u, in.delta, in.A, in.B, in.C),
                    Catch::Matchers::Contains("dstate = 65 but the CUDA kernels hold at most 64"));
  const at::Tensor x = at::randn({1, 4, 8}).cuda(), w = at::randn({4, 3});
  CHECK_THROWS(mft::causal_conv1d(x, w));  // weight on the CPU
}

TEST_CASE("CUDA decode-step ops match the CPU kernels and update the state in place", "[cuda]") {
  if (!have_device()) return;
  at::manual_seed(14);
  const int64_t B = 3, D = 8, N = 4, W = 4;
  const at::Tensor x = at::randn({B, D}), conv_state = at::randn({B, D, W - 1}), w = at::randn({D, W}),
                   b = at::randn({D});
  at::Tensor cs_cpu = conv_state.clone(), cs_gpu = conv_state.cuda();
  const at::Tensor y_cpu = mft::causal_conv1d_update(x, cs_cpu, w, b, true);
  const at::Tensor y_gpu = mft::causal_conv1d_update(x.cuda(), cs_gpu, w.cuda(), b.cuda(), true);
  compare("conv out", y_gpu, y_cpu, tolerance(at::kFloat, W));
  compare("conv state", cs_gpu, cs_cpu, 0);
  const at::Tensor state = at::randn({B, D, N}), dt = at::randn({B, D}), A = -at::rand({D, N}), Bm = at::randn({B, N}),
                   Cm = at::randn({B, N}), Dv = at::randn({D}), z = at::randn({B, D}), bias = at::randn({D});
  at::Tensor s_cpu = state.clone(), s_gpu = state.cuda();
  const at::Tensor o_cpu = mft::selective_state_update(s_cpu, x, dt, A, Bm, Cm, Dv, z, bias, true);
  const at::Tensor o_gpu = mft::selective_state_update(s_gpu, x.cuda(), dt.cuda(), A.cuda(), Bm.cuda(), Cm.cuda(),
                                                       Dv.cuda(), z.cuda(), bias.cuda(), true);
  compare("ssm out", o_gpu, o_cpu, tolerance(at::kFloat, 1));
  compare("ssm state", s_gpu, s_cpu, tolerance(at::kFloat, 1));
}

TEST_CASE("tiny models run forward and backward on CUDA like on the CPU", "[cuda]") {
  if (!have_device()) return;
  for (const char* preset : {"preset:mamba-tiny", "preset:mamba2-tiny", "preset:pythia-tiny"}) {
    INFO(preset);
    auto cpu = mft::models::load_model(preset, 3), gpu = mft::models::load_model(preset, 3);
    mft::models::cast_model(*gpu, at::kFloat, c10::Device(c10::kCUDA));
    const at::Tensor ids = at::randint(0, cpu->vocab_size(), {2, 40}, at::kLong);
    const at::Tensor lc = cpu->forward(ids), lg = gpu->forward(ids.cuda());
    compare("logits", lg, lc, 1e-4);
    lc.logsumexp(-1).sum().backward();
    lg.logsumexp(-1).sum().backward();
    auto pc = cpu->named_parameters(), pg = gpu->named_parameters();
    for (const auto& item : pc) {
      const at::Tensor& gc = item.value().grad();
      const at::Tensor& gg = pg[item.key()].grad();
      if (gc.defined()) compare("grad " + item.key(), gg, gc, 1e-4);
    }
  }
}
