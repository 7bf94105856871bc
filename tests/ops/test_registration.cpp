// Every mft:: op is registered (static registrations survived linking libmft_ops.so) on every backend
// that is built, and bad arguments give clear errors naming the argument.
#include "helpers.h"

#include "core/library_info.h"
#include "ops/causal_conv1d.h"
#include "ops/decode_step.h"
#include "ops/selective_scan.h"

#include <ATen/Parallel.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

using Catch::Matchers::Contains;

namespace {
bool has_key(const mft::RegisteredOp& op, const std::string& key) {
  return std::find(op.keys.begin(), op.keys.end(), key) != op.keys.end();
}
}  // namespace

TEST_CASE("every mft op is registered with its kernels", "[registration]") {
  std::map<std::string, mft::RegisteredOp> ops;
  for (auto& op : mft::registered_ops()) ops[op.name] = op;
  const std::vector<std::string> expected = {"mft::selective_scan",       "mft::selective_scan_backward",
                                             "mft::causal_conv1d",        "mft::causal_conv1d_backward",
                                             "mft::causal_conv1d_update", "mft::selective_state_update"};
  for (const auto& name : expected) {
    INFO(name);
    REQUIRE(ops.count(name) == 1);
    CHECK(has_key(ops[name], "CPU"));
    // CUDA kernels (cuda/) exactly when the library was built with them.
    CHECK(has_key(ops[name], "CUDA") == mft::built_with_cuda());
  }
  // ssd_scan's chunked kernels are ATen compositions: one registration for every backend.
  for (const auto* name : {"mft::ssd_scan", "mft::ssd_scan_backward", "mft::ssd_state_update"}) {
    INFO(name);
    REQUIRE(ops.count(name) == 1);
    CHECK(has_key(ops[name], "CompositeExplicitAutograd"));
  }
  for (const auto* name : {"mft::selective_scan", "mft::causal_conv1d", "mft::ssd_scan"}) {
    INFO(name);
    CHECK(has_key(ops[name], "Autograd"));
    CHECK(has_key(ops[name], "AutocastCPU"));
    CHECK(has_key(ops[name], "AutocastCUDA"));
  }
  CHECK(mft::op_library_path().find("libmft_ops.so") != std::string::npos);
}

TEST_CASE("the op library's parallel_for really uses several threads", "[registration]") {
  // Without -fopenmp, ATen's header-only parallel_for runs serially and every kernel is 1-threaded.
  const int threads = at::get_num_threads();
  INFO("threads " << threads);
  if (threads > 1) CHECK(mft::kernel_threads_used() > 1);
}

TEST_CASE("selective_scan rejects bad arguments with clear messages", "[registration][validation]") {
  const int64_t B = 2, D = 6, L = 5, N = 3;
  const at::Tensor u = at::randn({B, D, L}), delta = at::rand({B, D, L}), A = -at::rand({D, N}) - 0.1;
  const at::Tensor Bm = at::randn({B, N, L}), Cm = at::randn({B, N, L});
  auto scan = [&](auto&&... args) { return mft::selective_scan(args...); };
  CHECK_THROWS_WITH(scan(u.unsqueeze(0), delta, A, Bm, Cm), Contains("u must be (batch, dim, seqlen)"));
  CHECK_THROWS_WITH(scan(u, delta.narrow(2, 0, 4), A, Bm, Cm), Contains("delta must be (batch, dim, seqlen) like u"));
  CHECK_THROWS_WITH(scan(u, delta, A.to(at::kBFloat16), Bm, Cm), Contains("A must be Float"));
  CHECK_THROWS_WITH(scan(u, delta, A, at::randn({B, 4, N, L}), at::randn({B, 4, N, L})),
                    Contains("dim (6) must be divisible by the groups of B (4)"));
  CHECK_THROWS_WITH(scan(u, delta, A, Bm, at::randn({B, N, L + 1})), Contains("C must be (batch, dstate, seqlen)"));
  CHECK_THROWS_WITH(scan(u, delta, A, Bm, Cm, at::randn({D + 1})), Contains("D must be (dim,)"));
  at::Tensor bad_bias = at::zeros({D});
  bad_bias[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(scan(u, delta, A, Bm, Cm, std::nullopt, std::nullopt, bad_bias),
                    Contains("delta_bias must be finite"));
  CHECK_THROWS_WITH(scan(u.to(at::kInt), delta, A, Bm, Cm), Contains("u must be float32, float16 or bfloat16"));
  CHECK_THROWS_WITH(scan(u, delta, A, Bm, Cm, std::nullopt, std::nullopt, std::nullopt, false, at::zeros({B, D})),
                    Contains("initial_state must be (batch, dim, dstate)"));
  CHECK_THROWS_WITH(scan(u, delta, A, Bm, Cm, std::nullopt, std::nullopt, std::nullopt, false, std::nullopt, false,
                         at::zeros({B, L}, at::kLong)),
                    Contains("seq_idx must be Int"));
}

TEST_CASE("causal_conv1d and the decode ops reject bad arguments", "[registration][validation]") {
  const at::Tensor x = at::randn({2, 4, 7}), w = at::randn({4, 3});
  CHECK_THROWS_WITH(mft::causal_conv1d(x, at::randn({5, 3})), Contains("weight must be (dim, width)"));
  CHECK_THROWS_WITH(mft::causal_conv1d(x, w, std::nullopt, at::randn({2, 4, 3})),
                    Contains("initial_states must be (batch, dim, width - 1)"));
  CHECK_THROWS_WITH(mft::causal_conv1d(x, at::randn({4, 0})), Contains("width must be >= 1"));
  at::Tensor conv_state = at::zeros({2, 4, 1});
  CHECK_THROWS_WITH(mft::causal_conv1d_update(x.select(2, 0), conv_state, w),
                    Contains("conv_state must be (batch, dim, width - 1)"));
  at::Tensor state = at::zeros({2, 4, 3}, at::kBFloat16);
  CHECK_THROWS_WITH(mft::selective_state_update(state, at::randn({2, 4}), at::rand({2, 4}), -at::rand({4, 3}),
                                                at::randn({2, 3}), at::randn({2, 3})),
                    Contains("state must be Float"));
}
