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
        const auto [full, last] = mft::selective_scan(in.u, in.delta, in.A, in.B, in.C, opt(in.D), opt(in.z),
                                                      opt(in.bias), true, opt(in.init), true);
        at::Tensor state = in.init.clone(), state_ref = in.init.clone();
        std::vector<at::Tensor> steps;
        for (int64_t t = 0; t < c.seqlen; ++t) {
          const at::Tensor Bt = in.B.select(-1, t), Ct = in.C.select(-1, t);
          const at::Tensor zt = in.z.defined() ? in.z.select(2, t) : at::Tensor();
          steps.push_back(mft::selective_state_update(state, in.u.select(2, t), in.delta.select(2, t), in.A, Bt, Ct,
                                                      opt(in.D), opt(zt), opt(in.bias), true));
          const at::Tensor ref =
              mft::reference::selective_state_update(state_ref, in.u.select(2, t), in.delta.select(2, t), in.A, Bt, Ct,
                                                     opt(in.D), opt(zt), opt(in.bias), true);
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

TEST_CASE("decode steps update strided state views in place", "[decode]") {
  at::manual_seed(31);
  const int64_t B = 2, D = 20, N = 8, W = 4;
  // SSM state as a view into a wider buffer, conv state as a transposed view.
  at::Tensor ssm_buffer = at::randn({B, D, 2 * N});
  at::Tensor ssm_state = ssm_buffer.narrow(2, 0, N);
  at::Tensor conv_buffer = at::randn({B, W - 1, D});
  at::Tensor conv_state = conv_buffer.transpose(1, 2);
  REQUIRE_FALSE(ssm_state.is_contiguous());
  REQUIRE_FALSE(conv_state.is_contiguous());
  at::Tensor ssm_ref = ssm_state.clone(), conv_ref = conv_state.clone();
  const at::Tensor x = at::randn({B, D}), dt = at::rand({B, D}) * 0.3, A = -at::rand({D, N}) - 0.1;
  const at::Tensor Bm = at::randn({B, N}), Cm = at::randn({B, N}), w = at::randn({D, W});
  const at::Tensor y = mft::selective_state_update(ssm_state, x, dt, A, Bm, Cm);
  const at::Tensor y_ref = mft::reference::selective_state_update(ssm_ref, x, dt, A, Bm, Cm);
  CHECK(normalised_error(y, y_ref) <= fp32_bound(1, N));
  CHECK(normalised_error(ssm_buffer.narrow(2, 0, N), ssm_ref) <= fp32_bound(1, N));
  const at::Tensor c = mft::causal_conv1d_update(x, conv_state, w);
  const at::Tensor c_ref = mft::reference::causal_conv1d_update(x, conv_ref, w);
  CHECK(normalised_error(c, c_ref) <= fp32_bound(1, W));
  CHECK(at::equal(conv_buffer.transpose(1, 2), conv_ref));  // the base buffer itself was updated
}
