// Stability analysis: Benettin's estimator on maps with known exponents (diagonal, non-normal, unstable),
// λ̂ <= 0 for Mamba and Mamba-2 layers, the general estimator reproducing the exact per-layer λ̂ on Mamba
// stacks, decaying perturbations in Mamba blocks, and precision divergence shapes and signs.
#include "helpers.h"

#include "analysis/lyapunov.h"
#include "analysis/perturbation.h"
#include "analysis/precision.h"
#include "models/mamba.h"
#include "models/mamba2.h"
#include "models/registry.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

namespace an = mft::analysis;

TEST_CASE("Benettin recovers the exponents of linear maps, and detects growth", "[stability]") {
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  // Diagonal: exponents are the log-rates themselves.
  const at::Tensor r = at::tensor({-0.05, -0.3, 0.02, -1.0}, dbl);
  auto diag = [&](const at::Tensor& X, int64_t) { return X * r.exp(); };
  // Random initial directions: 500 warm-up steps align them (gaps >= 0.07 per step), 100 are averaged.
  const an::Spectrum s = an::benettin(diag, at::ones({4}, dbl), 600, 3, 1.0, 0, /*warmup=*/500);
  REQUIRE(s.exponents.size() == 3);
  CHECK(s.exponents[0] == Approx(0.02).margin(1e-9));
  CHECK(s.exponents[1] == Approx(-0.05).margin(1e-9));
  CHECK(s.exponents[2] == Approx(-0.3).margin(1e-9));
  // The identity frame (k = n) gives a diagonal map's exponents at once.
  const an::Spectrum all = an::benettin(diag, at::ones({4}, dbl), 3, 4, 1.0, 0);
  REQUIRE(all.exponents.size() == 4);
  for (int i = 0; i < 4; ++i)
    CHECK(all.exponents[i] == Approx(std::vector<double>{0.02, -0.05, -0.3, -1.0}[i]).margin(1e-12));
  // Non-normal, non-diagonal: M = P diag(exp(r)) P^-1 has the same exponents (up to O(1/T)).
  at::manual_seed(0);
  const at::Tensor P = at::eye(4, dbl) + 0.5 * at::randn({4, 4}, dbl);
  const at::Tensor M = P.matmul(at::diag(r.exp())).matmul(at::linalg_inv(P));
  auto general = [&](const at::Tensor& X, int64_t) { return X.matmul(M.t()); };
  const an::Spectrum g = an::benettin(general, at::ones({4}, dbl), 2000, 2, 1e-3, 1, /*warmup=*/500);
  CHECK(g.exponents[0] == Approx(0.02).margin(2e-3));
  CHECK(g.exponents[1] == Approx(-0.05).margin(2e-3));
  // A nonlinear unstable map (x -> 1.2 tanh-free growth with a rotation): positive top exponent log(1.2).
  const double c = std::cos(0.3), s2 = std::sin(0.3);
  const at::Tensor rot = at::tensor({c, -s2, s2, c}, dbl).view({2, 2}) * 1.2;
  auto unstable = [&](const at::Tensor& X, int64_t) { return X.matmul(rot.t()) + 0.01 * X.pow(2); };
  const an::Spectrum u = an::benettin(unstable, at::full({2}, 1e-3, dbl), 20, 1, 1e-6, 2);
  CHECK(u.exponents[0] > 0.1);
  CHECK_THROWS_WITH(an::benettin(diag, at::ones({4}, dbl), 5, 5, 1.0, 0), Catch::Matchers::Contains("k <= state size"));
}

namespace {
// Small Mamba / Mamba-2 stacks (state 64 / 128 per layer) so the estimator can follow every direction.
std::shared_ptr<mft::models::CausalLM> small_model(const std::string& family, uint64_t seed) {
  std::shared_ptr<mft::models::CausalLM> m;
  if (family == "mamba") {
    mft::models::MambaConfig c;
    c.vocab_size = 40, c.hidden_size = 8, c.state_size = 4, c.num_hidden_layers = 2, c.intermediate_size = 16;
    c.time_step_rank = 2;
    m = mft::models::MambaForCausalLM(c).ptr();
  } else {
    mft::models::Mamba2Config c;
    c.vocab_size = 40, c.hidden_size = 16, c.state_size = 4, c.num_hidden_layers = 2, c.head_dim = 8, c.n_groups = 1;
    c.expand = 2, c.num_heads = 4, c.chunk_size = 16;
    m = mft::models::Mamba2ForCausalLM(c).ptr();
  }
  mft::models::init_family_weights(*m, seed);
  m->eval();
  return m;
}
}  // namespace

TEST_CASE("Mamba and Mamba-2 layers are Lyapunov stable and the estimator reproduces the exact exponents",
          "[stability]") {
  // λ̂ <= 0 for the presets' layers (A < 0, Δ > 0).
  for (const char* preset : {"preset:mamba-tiny", "preset:mamba2-tiny"}) {
    auto model = mft::models::load_model(preset, 0);
    model->eval();
    for (const double l : an::exact_lambda(*model, at::randint(model->vocab_size(), {1, 64}, at::kLong))) {
      CHECK(l <= 0);
      CHECK(l > -1);
    }
  }
  for (const char* family : {"mamba", "mamba2"}) {
    for (uint64_t seed : {0, 1}) {
      INFO(family << " seed " << seed);
      auto model = small_model(family, seed);
      const at::Tensor ids = at::randint(model->vocab_size(), {1, 40}, at::kLong);
      // k = the stack's state size (each layer's map gets its own size): the identity frame follows every
      // mode; a layer's SSM state map is exp(Δ_t A) elementwise, so its top exponent is λ̂ up to the fp32
      // rounding of the cached state.
      const int64_t n = 2 * (family == std::string("mamba") ? 16 * 4 : 4 * 8 * 4);
      const an::ModelLyapunov l = an::model_lyapunov(*model, ids, /*k=*/n);
      CHECK_THROWS_WITH(an::model_lyapunov(*model, ids, n + 1),
                        Catch::Matchers::Contains("exceed the model's recurrent state size " + std::to_string(n)));
      REQUIRE(l.layers.size() == 2);
      double top = -1e300;
      for (const auto& e : l.layers) {
        INFO("layer " << e.layer);
        CHECK(e.exact <= 0);
        CHECK(e.estimated == Approx(e.exact).epsilon(1e-4).margin(1e-6));
        top = std::max(top, e.exact);
      }
      // Stacked layers: the state map is block triangular, its exponents are the layers' together; the top
      // one is the largest layer's.
      CHECK(l.stack.exponents[0] == Approx(top).epsilon(1e-4).margin(1e-6));
    }
  }
  auto neox = mft::models::load_model("preset:pythia-tiny", 0);
  CHECK_THROWS_WITH(an::exact_lambda(*neox, at::zeros({1, 4}, at::kLong)),
                    Catch::Matchers::Contains("no diagonal recurrence"));
}

TEST_CASE("perturbations decay in Mamba blocks; Transformer blocks carry them through attention", "[stability]") {
  an::PerturbationOptions o;
  o.blocks = 4;
  o.steps = 24;
  o.eps = {1e-4, 1e-2};
  for (const char* preset : {"mamba-tiny", "mamba2-tiny"}) {
    INFO(preset);
    o.preset = preset;
    const an::PerturbationResult r = an::perturbation_experiment(o);
    REQUIRE(r.curves.size() == 2);
    for (const auto& c : r.curves) {
      CHECK(c.rates.size() == 4);
      CHECK(c.fraction_decaying == 1.0);
      CHECK(c.median_rate < 0);
      REQUIRE(c.median_state.size() == 24);
      CHECK(c.median_state.back() < c.median_state[4]);
    }
  }
  o.preset = "pythia-tiny";
  const an::PerturbationResult t = an::perturbation_experiment(o);
  CHECK(t.family == "gpt_neox");
  CHECK(t.curves[0].median_state.empty());
  CHECK(t.curves[0].median_output[5] > 0);  // later positions see the first token's perturbation
  CHECK(an::log_slope({1.0, std::exp(-1.0), std::exp(-2.0), std::exp(-3.0)}, 0) == Approx(-1.0));
}

TEST_CASE("precision divergence: per layer and position, fp32 vs autocast and pure half", "[stability]") {
  for (const char* preset : {"preset:mamba-tiny", "preset:pythia-tiny"}) {
    INFO(preset);
    const at::Tensor ids = at::randint(200, {1, 16}, at::kLong);
    const auto r = an::precision_divergence([&] { return mft::models::load_model(preset, 0); }, ids);
    REQUIRE(r.modes.size() == 4);
    for (const auto& m : r.modes) {
      INFO(m.name);
      REQUIRE(static_cast<int64_t>(m.relative_deviation.size()) == r.layers + 1);
      REQUIRE(m.relative_deviation.back().size() == 16);
      REQUIRE(m.kl.size() == 16);
      for (const double k : m.kl) CHECK(k >= -1e-6);
      CHECK(m.max_relative_deviation > 0);    // half precision differs
      CHECK(m.max_relative_deviation < 0.5);  // but stays close
      // bf16 keeps 8 mantissa bits, fp16 11: fp16 deviates less.
    }
    CHECK(r.modes[1].max_relative_deviation < r.modes[0].max_relative_deviation);
  }
}
