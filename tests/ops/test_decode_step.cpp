// Decode-step ops: token-by-token stepping reproduces the full-sequence ops; optimised == reference.
#include "helpers.h"
#include "scan_case.h"

#include "ops/causal_conv1d.h"
#include "ops/decode_step.h"

#include <catch2/catch.hpp>

using namespace mft::test;

TEST_CASE("causal_conv1d_update stepped over a sequence equals causal_conv1d", "[decode]") {
  for (int64_t width : {1, 2, 4}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      at::manual_seed(width);
      const int64_t B = 2, D = 20, L = 9;
      at::Tensor x = randn({B, D, L}, dt), w = randn({D, width}, dt), b = randn({D}, dt);
      at::Tensor init = randn({B, D, width - 1}, dt);
      const at::Tensor full = mft::causal_conv1d(x, w, b, init, true);
      at::Tensor state = init.clone(), state_ref = init.clone();
      std::vector<at::Tensor> steps;
      for (int64_t t = 0; t < L; ++t) {
        const at::Tensor xt = x.select(2, t);
        steps.push_back(mft::causal_conv1d_update(xt, state, w, b, true));
        const at::Tensor ref = mft::reference::causal_conv1d_update(xt, state_ref, w, b, true);
        INFO("width " << width << " " << dt << " t " << t);
        // Both round the same fp32 (or fp64) sum to the output dtype: at most one ulp apart.
        CHECK(normalised_error(steps.back(), ref) <= 2 * unit_roundoff(dt) + fp32_bound(1, width));
      }
      const at::Tensor stepped = at::stack(steps, 2);
      INFO("width " << width << " " << dt);
      CHECK(normalised_error(stepped, full) <= 2 * unit_roundoff(dt) + fp32_bound(L, width));
      // The state holds the last width-1 inputs.
      CHECK(at::equal(state, x.narrow(2, L - (width - 1), width - 1)));
      CHECK(at::equal(state_ref, state));
    }
  }
}

TEST_CASE("selective_state_update stepped over a sequence equals selective_scan", "[decode]") {
  for (BcKind bc : {BcKind::Variable, BcKind::Grouped}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      for (bool has_z : {false, true}) {
        ScanCase c;
        c.bc = bc;
        c.dtype = dt;
        c.seqlen = 12;
        c.dstate = 16;
        c.has_z = has_z;
        at::manual_seed(c.seqlen + has_z);
        const ScanInputs in = ScanInputs::make(c);
        const auto [full, last] = mft::selective_scan(in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z), opt(in.bias),
                                                      true, opt(in.init), true);
        at::Tensor state = in.init.clone(), state_ref = in.init.clone();
        std::vector<at::Tensor> steps;
        for (int64_t t = 0; t < c.seqlen; ++t) {
          const at::Tensor Bt = in.B.select(-1, t), Ct = in.C.select(-1, t);
          const at::Tensor zt = in.z.defined() ? in.z.select(2, t) : at::Tensor();
          steps.push_back(mft::selective_state_update(state, in.u.select(2, t), in.delta.select(2, t), in.A, Bt, Ct,
                                                      opt(in.D), opt(zt), opt(in.bias), true));
          const at::Tensor ref = mft::reference::selective_state_update(
              state_ref, in.u.select(2, t), in.delta.select(2, t), in.A, Bt, Ct, opt(in.D), opt(zt), opt(in.bias), true);
          INFO(c.describe() << " t " << t);
          CHECK(normalised_error(steps.back(), ref) <= 2 * unit_roundoff(dt) + fp32_bound(t + 1, c.dstate));
        }
        INFO(c.describe());
        CHECK(normalised_error(at::stack(steps, 2), full) <= 2 * unit_roundoff(dt) + fp32_bound(c.seqlen, c.dstate));
        CHECK(normalised_error(state, last) <= fp32_bound(c.seqlen, c.dstate));
        CHECK(normalised_error(state_ref, last) <= fp32_bound(c.seqlen, c.dstate));
      }
    }
  }
}
