// The trainer end to end on tiny presets and synthetic data: schedules, loss scaling, LoRA and full
// fine-tuning, bit-exact resume after an interruption, outputs, and clear errors.
#include "helpers.h"

#include "core/file_io.h"
#include "core/json_parse.h"

#include "data/synthetic.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "recipe/recipe.h"
#include "train/loss_scaler.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using mft::test::TempDir;

namespace {

// A shared synthetic data set (written once per process).
const fs::path& data_dir() {
  static TempDir dir{"mft-train-data"};
  static bool written = false;
  if (!written) {
    mft::data::write_quickstart_data(dir.path.string(), 1);
    written = true;
  }
  return dir.path;
}

mft::recipe::Recipe tiny_recipe(const fs::path& out, const std::string& model, const std::string& method,
                                const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o = {"model.path=" + model,
                                "data.format=alpaca",
                                "data.train_file=" + (data_dir() / "instruct.jsonl").string(),
                                "data.val_fraction=0.05",
                                "data.max_length=384",
                                "peft.method=" + method,
                                "optimizer.lr=0.003",
                                "trainer.max_steps=8",
                                "trainer.batch_size=2",
                                "trainer.eval_every=4",
                                "trainer.eval_batches=2",
                                "trainer.save_every=4",
                                "trainer.deterministic=true",
                                "output.dir=" + out.string()};
  o.insert(o.end(), extra.begin(), extra.end());
  return mft::recipe::parse_recipe("name: test\n", "test.yaml", o);
}

std::vector<std::string> lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> v;
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}
}  // namespace

TEST_CASE("schedules: warmup, then constant / linear / cosine to the floor", "[train]") {
  mft::train::Schedule s{"cosine", 1.0, 10, 110, 0.1};
  CHECK(s.lr_at(0) == Approx(0.1));
  CHECK(s.lr_at(9) == Approx(1.0));
  CHECK(s.lr_at(60) == Approx(0.1 + 0.9 * 0.5));
  CHECK(s.lr_at(110) == Approx(0.1));
  s.name = "linear";
  CHECK(s.lr_at(60) == Approx(0.55));
  s.name = "constant";
  CHECK(s.lr_at(100) == Approx(1.0));
}

TEST_CASE("loss scaler skips non-finite steps, backs off and grows", "[train]") {
  mft::train::LossScaler sc;
  sc.enabled = true;
  sc.scale = 1024;
  sc.growth_interval = 2;
  at::Tensor p = at::ones({3}).requires_grad_(true);
  (p * sc.loss_factor()).sum().backward();
  const auto measured = mft::train::measure_gradients({p}, 1.0 / sc.loss_factor(), /*max_norm=*/0);
  CHECK(measured.finite);
  CHECK(measured.norm == Approx(std::sqrt(3.0)));  // of the unscaled gradients
  CHECK(at::allclose(p.grad() * measured.factor, at::ones({3})));
  p.mutable_grad().fill_(INFINITY);
  CHECK_FALSE(mft::train::measure_gradients({p}, 1.0 / sc.loss_factor(), 1.0).finite);
  sc.update(false);
  CHECK(sc.scale == 512);
  CHECK(sc.skipped_steps == 1);
  sc.update(true);
  sc.update(true);
  CHECK(sc.scale == 1024);
}

namespace {
// One parameter set for the optimizer comparison: a matrix (weight decay), a vector (none), and an fp64
// matrix (a second dtype, so a second fused call).
std::vector<at::Tensor> adamw_params() {
  at::manual_seed(7);
  return {mft::test::randn({24, 16}, at::kFloat), mft::test::randn({16}, at::kFloat),
          mft::test::randn({8, 4}, at::kDouble)};
}

std::vector<torch::optim::OptimizerParamGroup> adamw_groups(const std::vector<at::Tensor>& p, double weight_decay,
                                                            bool amsgrad) {
  const auto opts = torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).amsgrad(amsgrad);
  std::vector<torch::optim::OptimizerParamGroup> g;
  g.emplace_back(std::vector<at::Tensor>{p[0], p[2]}, std::make_unique<torch::optim::AdamWOptions>(
                                                          torch::optim::AdamWOptions(opts).weight_decay(weight_decay)));
  g.emplace_back(std::vector<at::Tensor>{p[1]},
                 std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(opts).weight_decay(0.0)));
  return g;
}
}  // namespace

TEST_CASE("fused AdamW takes torch::optim::AdamW's steps and keeps its state format", "[train]") {
  constexpr int64_t kSteps = 5;
  for (const double weight_decay : {0.0, 0.1}) {
    for (const bool amsgrad : {false, true}) {
      INFO("weight_decay " << weight_decay << " amsgrad " << amsgrad);
      std::vector<at::Tensor> ref = adamw_params(), fused = adamw_params();
      for (auto& t : ref) t.requires_grad_(true);
      for (auto& t : fused) t.requires_grad_(true);
      torch::optim::AdamW ref_opt(adamw_groups(ref, weight_decay, amsgrad));
      mft::train::FusedAdamW fused_opt(adamw_groups(fused, weight_decay, amsgrad));
      for (int64_t step = 0; step < kSteps; ++step) {
        for (size_t i = 0; i < ref.size(); ++i) {
          const at::Tensor g = mft::test::randn(ref[i].sizes(), ref[i].scalar_type());  // same for both
          ref[i].mutable_grad() = g.clone();
          fused[i].mutable_grad() = g.clone();
        }
        ref_opt.step();
        fused_opt.step();
      }
      for (size_t i = 0; i < ref.size(); ++i) {
        INFO("parameter " << i);
        // Both compute the same formula in the parameter's dtype with different rounding: per step, the
        // weight decay and the update each round once on |p|, and the update lr·m̂/(√v̂ + eps) (|m̂|/√v̂ <=
        // √t by Cauchy-Schwarz, so <= 3·lr for t <= 5) carries about 8 roundings; errors add over steps.
        const double u = mft::test::unit_roundoff(ref[i].scalar_type());
        const double abs_bound = double(kSteps) * (2 * u * ref[i].abs().max().item<double>() + 8 * u * 3 * 0.01);
        CHECK((fused[i] - ref[i]).abs().max().item<double>() <= abs_bound);
        auto& rs = static_cast<torch::optim::AdamWParamState&>(*ref_opt.state().at(ref[i].unsafeGetTensorImpl()));
        auto& fs_ = static_cast<torch::optim::AdamWParamState&>(*fused_opt.state().at(fused[i].unsafeGetTensorImpl()));
        CHECK(fs_.step() == kSteps);
        CHECK(rs.step() == kSteps);
        // Moments: two roundings per step each.
        CHECK(mft::test::normalised_error(fs_.exp_avg(), rs.exp_avg()) <= 2 * kSteps * 2 * u);
        CHECK(mft::test::normalised_error(fs_.exp_avg_sq(), rs.exp_avg_sq()) <= 2 * kSteps * 2 * u);
        CHECK(fs_.max_exp_avg_sq().defined() == amsgrad);
      }
      // The fused optimizer's state loads into torch::optim::AdamW (and so into checkpoints as before).
      torch::serialize::OutputArchive out;
      fused_opt.save(out);
      std::ostringstream bytes;
      out.save_to(bytes);
      torch::serialize::InputArchive in;
      std::istringstream read(bytes.str());
      in.load_from(read);
      torch::optim::AdamW loaded(adamw_groups(fused, weight_decay, amsgrad));
      loaded.load(in);
      for (const auto& p : fused) {
        auto& a = static_cast<torch::optim::AdamWParamState&>(*loaded.state().at(p.unsafeGetTensorImpl()));
        auto& b = static_cast<torch::optim::AdamWParamState&>(*fused_opt.state().at(p.unsafeGetTensorImpl()));
        CHECK(a.step() == b.step());
        CHECK(at::equal(a.exp_avg(), b.exp_avg()));
        CHECK(at::equal(a.exp_avg_sq(), b.exp_avg_sq()));
      }
    }
  }
}

TEST_CASE("gradient clipping matches torch::nn::utils::clip_grad_norm_", "[train]") {
  for (const double max_norm : {0.0, 0.5, 1e6}) {
    INFO("max_norm " << max_norm);
    std::vector<at::Tensor> a = adamw_params(), b = adamw_params();
    for (size_t i = 0; i < a.size(); ++i) {
      const at::Tensor g = mft::test::randn(a[i].sizes(), a[i].scalar_type());
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    const double ours = mft::train::clip_grad_norm(a, max_norm);
    const double theirs = torch::nn::utils::clip_grad_norm_(b, max_norm > 0 ? max_norm : 1e30);
    // The per-tensor norms are reduced in a different order: fp32 summation bound over the largest tensor.
    const double u = mft::test::unit_roundoff(at::kFloat);
    CHECK(std::abs(ours - theirs) <= 2 * 384 * u * theirs);
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(mft::test::normalised_error(a[i].grad(), b[i].grad()) <= 2 * 384 * u);
      if (max_norm != 0.5) CHECK(at::equal(a[i].grad(), b[i].grad()));  // not clipped: untouched
    }
  }
}

TEST_CASE("gradient clipping: many blocks, any thread count, fp64 gradients", "[train]") {
  at::manual_seed(9);
  // 300k + 5 + 70k elements: several 64 Ki blocks, a ragged tail; the norm in fp64 as the oracle.
  std::vector<at::Tensor> grads = {at::randn({300000}), at::randn({5}), at::randn({70, 1000}) * 3};
  double sum_sq = 0;
  for (const auto& g : grads) sum_sq += g.to(at::kDouble).pow(2).sum().item<double>();
  auto params_with = [&](at::ScalarType dtype) {
    std::vector<at::Tensor> ps;
    for (const auto& g : grads) {
      at::Tensor p = at::zeros(g.sizes(), dtype).requires_grad_(true);
      p.mutable_grad() = g.to(dtype).clone();
      ps.push_back(p);
    }
    return ps;
  };
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const double one = mft::train::clip_grad_norm(params_with(at::kFloat), 0);
  at::set_num_threads(2);
  const double two = mft::train::clip_grad_norm(params_with(at::kFloat), 0);
  at::set_num_threads(threads);
  CHECK(one == two);
  CHECK(std::abs(one - std::sqrt(sum_sq)) <= 1e-5 * std::sqrt(sum_sq));
  auto fp64 = params_with(at::kDouble);
  const double norm64 = mft::train::clip_grad_norm(fp64, 1.0);  // the foreach path
  CHECK(std::abs(norm64 - std::sqrt(sum_sq)) <= 1e-12 * std::sqrt(sum_sq));
  double clipped = 0;
  for (const auto& p : fp64) clipped += p.grad().pow(2).sum().item<double>();
  CHECK(std::abs(std::sqrt(clipped) - 1.0) < 1e-5);
}

TEST_CASE("measure_gradients + step_with_grad_factor: unscale, check and clip without passes of their own", "[train]") {
  at::manual_seed(10);
  using mft::train::measure_gradients;
  const double u = mft::test::unit_roundoff(at::kFloat);
  auto params_from = [](const std::vector<at::Tensor>& grads) {
    std::vector<at::Tensor> ps;
    for (const auto& g : grads) {
      at::Tensor p = at::randn(g.sizes(), g.scalar_type()).requires_grad_(true);
      p.mutable_grad() = g.clone();
      ps.push_back(p);
    }
    return ps;
  };
  auto clone_params = [](const std::vector<at::Tensor>& ps) {
    std::vector<at::Tensor> out;
    for (const auto& p : ps) {
      at::Tensor c = p.detach().clone().requires_grad_(true);
      c.mutable_grad() = p.grad().clone();
      out.push_back(c);
    }
    return out;
  };
  // Loss-scaled gradients: the norm and factor of torch's unscale-then-clip, nothing written.
  const std::vector<at::Tensor> plain = {at::randn({200000}), at::randn({30, 7}) * 4};
  for (const double max_norm : {0.0, 1.0, 1e9}) {
    INFO("max_norm " << max_norm);
    std::vector<at::Tensor> scaled_grads;
    for (const auto& g : plain) scaled_grads.push_back(g * 4096.0);
    auto ours = params_from(scaled_grads), theirs = params_from(plain);
    const auto r = measure_gradients(ours, 1.0 / 4096.0, max_norm);
    const double norm = torch::nn::utils::clip_grad_norm_(theirs, max_norm > 0 ? max_norm : 1e30);
    CHECK(r.finite);
    CHECK(std::abs(r.norm - norm) <= 1e-5 * norm);
    CHECK(at::equal(ours[0].grad(), scaled_grads[0]));  // measured only
    // The factor applied: torch's clipped gradients (coefficients differ as the norms do: reduction
    // order, the clipping test's bound).
    for (size_t i = 0; i < ours.size(); ++i) {
      CHECK(mft::test::normalised_error(ours[i].grad() * r.factor, theirs[i].grad()) <= 2 * 384 * u);
    }
  }
  // The factor inside FusedAdamW's pass = the step on pre-multiplied gradients (to fp32 rounding), and
  // the gradients are left multiplied; SGD multiplies first.
  for (const bool adamw : {true, false}) {
    INFO("adamw " << adamw);
    auto a = params_from({at::randn({5000}), at::randn({20, 30})});
    auto b = clone_params(a);
    for (auto& p : b) p.mutable_grad().mul_(0.37);
    mft::recipe::OptimizerSection os;
    os.name = adamw ? "adamw" : "sgd";
    os.weight_decay = 0.1;
    auto opt_a = mft::train::make_optimizer(a, os), opt_b = mft::train::make_optimizer(b, os);
    mft::train::step_with_grad_factor(*opt_a, a, 0.37);
    opt_b->step();
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(mft::test::normalised_error(a[i].grad(), b[i].grad()) <= 2 * u);
      CHECK(mft::test::normalised_error(a[i].detach(), b[i].detach()) <= 4 * u);
    }
  }
  // Finite values whose squares overflow fp32: still finite, the norm from the fp64 re-check.
  {
    auto ps = params_from({at::full({1000}, 3e19f), at::randn({70000})});
    const auto r = measure_gradients(ps, 1.0, 2.0);
    CHECK(r.finite);
    CHECK(r.norm == Approx(3e19 * std::sqrt(1000.0)).epsilon(1e-6));
    CHECK(r.factor == Approx(2.0 / r.norm).epsilon(1e-6));
  }
  // One NaN or inf anywhere (fp32 blocks or the fp64 foreach path): not finite.
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const float bad : {NAN, INFINITY}) {
      at::Tensor g = at::randn({150000}, dtype);
      g[123456] = bad;
      CHECK_FALSE(measure_gradients(params_from({at::randn({10}, dtype), g}), 0.5, 1.0).finite);
    }
  }
  // No gradients: norm 0, factor 1; bad factors are refused.
  const auto none = measure_gradients({at::zeros({3}).requires_grad_(true)}, 1.0, 1.0);
  CHECK((none.norm == 0 && none.factor == 1.0));
  CHECK_THROWS_WITH(measure_gradients({}, 0.0, 1.0), Contains("unscale must be finite and > 0"));
  auto ps = params_from({at::randn({4})});
  auto opt = mft::train::make_optimizer(ps, mft::recipe::OptimizerSection{});
  CHECK_THROWS_WITH(mft::train::step_with_grad_factor(*opt, ps, -1.0), Contains("grad_factor must be finite and > 0"));
}

TEST_CASE("training runs, logs, evaluates and writes its outputs", "[train]") {
  for (const auto& [model, method] :
       {std::pair{"preset:mamba-tiny", "lora"}, {"preset:pythia-tiny", "full"}, {"preset:mamba2-tiny", "lora"}}) {
    INFO(model << " " << method);
    TempDir out{"mft-train"};
    const auto r = tiny_recipe(out.path / "run", model, method, {"precision.dtype=bf16"});
    const auto result = mft::train::train(r);
    CHECK(result.steps == 8);
    CHECK_FALSE(result.interrupted);
    CHECK(std::isfinite(result.last_loss));
    CHECK(result.last_eval_loss > 0);
    CHECK(lines(out.path / "run" / "metrics.csv").size() == 9);  // header + 8 steps
    CHECK(lines(out.path / "run" / "metrics.jsonl").size() == 8);
    CHECK(fs::exists(out.path / "run" / "recipe.yaml"));
    CHECK(fs::exists(out.path / "run" / "checkpoints" / "step-00000008"));
    CHECK_FALSE(fs::exists(out.path / "run" / "checkpoints" / "step-00000004.tmp"));
    if (std::string(method) == "lora") {
      CHECK(fs::exists(out.path / "run" / "adapter" / "adapter_config.json"));
      CHECK(fs::exists(out.path / "run" / "adapter" / "adapter_model.safetensors"));
    } else {
      CHECK_NOTHROW(mft::models::load_model((out.path / "run" / "final").string()));
    }
  }
}

TEST_CASE("an interrupted run resumes bit-exactly", "[train]") {
  for (const char* method : {"lora", "full"}) {
    INFO(method);
    TempDir out{"mft-train"};
    const auto whole = mft::train::train(tiny_recipe(out.path / "whole", "preset:mamba-tiny", method));
    mft::train::TrainHooks stop;
    stop.stop_after_steps = 3;  // between checkpoints: the stop itself saves one
    const auto first = mft::train::train(tiny_recipe(out.path / "split", "preset:mamba-tiny", method), stop);
    CHECK(first.interrupted);
    CHECK(first.steps == 3);
    const auto rest =
        mft::train::train(tiny_recipe(out.path / "split", "preset:mamba-tiny", method, {"output.resume=true"}));
    CHECK(rest.steps == 8);
    // Same losses step by step, same parameters bit for bit.
    const auto a = lines(out.path / "whole" / "metrics.csv"), b = lines(out.path / "split" / "metrics.csv");
    REQUIRE(a.size() == b.size());
    for (size_t i = 1; i < a.size(); ++i)
      CHECK(a[i].substr(0, a[i].find(",", a[i].find(",") + 1)) == b[i].substr(0, b[i].find(",", b[i].find(",") + 1)));
    const auto pa =
        mft::io::SafetensorsFile::open((out.path / "whole/checkpoints/step-00000008/params.safetensors").string());
    const auto pb =
        mft::io::SafetensorsFile::open((out.path / "split/checkpoints/step-00000008/params.safetensors").string());
    REQUIRE(pa.names() == pb.names());
    for (const auto& n : pa.names()) {
      INFO(n);
      CHECK(at::equal(pa.tensor(n), pb.tensor(n)));
    }
  }
}

namespace {
std::vector<nlohmann::json> metrics(const fs::path& run) {
  std::vector<nlohmann::json> m;
  for (const auto& l : lines(run / "metrics.jsonl")) m.push_back(nlohmann::json::parse(l));
  return m;
}

// Every tensor of a safetensors file is finite and has `dtype`.
void check_tensors(const fs::path& file, at::ScalarType dtype) {
  const auto f = mft::io::SafetensorsFile::open(file.string());
  REQUIRE(!f.names().empty());
  for (const auto& n : f.names()) {
    INFO(n);
    const at::Tensor t = f.tensor(n);
    CHECK(t.scalar_type() == dtype);
    CHECK(at::isfinite(t).all().item<bool>());
  }
}
}  // namespace

TEST_CASE("fp16 trains with dynamic loss scaling: overflowing steps are skipped, the scale backs off and grows",
          "[train]") {
  TempDir out{"mft-train"};
  // A scale of 1e9 overflows fp16 gradients for sure; backoff 0.01 reaches a usable scale in a few steps,
  // growth every 2 good steps shows the scale growing again.
  const auto r = tiny_recipe(out.path / "run", "preset:mamba-tiny", "lora",
                             {"precision.dtype=fp16", "precision.init_loss_scale=1e9", "precision.backoff_factor=0.01",
                              "precision.growth_interval=2", "trainer.max_steps=10"});
  const auto result = mft::train::train(r);
  CHECK(std::isfinite(result.last_loss));
  const auto m = metrics(out.path / "run");
  REQUIRE(m.size() == 10);
  CHECK(m[0]["skipped"] == true);
  CHECK(m[0]["loss_scale"].get<double>() == Approx(1e7));
  int skipped = 0, grown = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    skipped += m[i]["skipped"].get<bool>();
    if (i > 0 && m[i]["loss_scale"].get<double>() > m[i - 1]["loss_scale"].get<double>()) ++grown;
    CHECK(std::isfinite(m[i]["loss"].get<double>()));
  }
  CHECK(skipped >= 1);
  CHECK(skipped <= 5);
  CHECK(grown >= 1);
  check_tensors(out.path / "run" / "adapter" / "adapter_model.safetensors", at::kFloat);
}

TEST_CASE("pure half precision trains half base weights with fp32 adapters", "[train]") {
  for (const char* dtype : {"bf16", "fp16"}) {
    INFO(dtype);
    TempDir out{"mft-train"};
    const auto r = tiny_recipe(out.path / "run", "preset:mamba-tiny", "lora",
                               {std::string("precision.dtype=") + dtype, "precision.pure_half=true",
                                "trainer.max_steps=12", "optimizer.lr=0.01"});
    const auto result = mft::train::train(r);
    CHECK(std::isfinite(result.last_loss));
    CHECK(result.last_eval_loss > 0);
    const auto m = metrics(out.path / "run");
    REQUIRE(m.size() == 12);
    // It learns: the mean loss of the last 4 steps is below that of the first 4.
    double first = 0, last = 0;
    for (int i = 0; i < 4; ++i) {
      first += m[i]["loss"].get<double>();
      last += m[m.size() - 1 - i]["loss"].get<double>();
    }
    CHECK(last < first);
    check_tensors(out.path / "run" / "adapter" / "adapter_model.safetensors", at::kFloat);
  }
  // Pure half needs LoRA and a half dtype: clear errors otherwise.
  TempDir out{"mft-train"};
  CHECK_THROWS_WITH(mft::train::train(tiny_recipe(out.path / "a", "preset:mamba-tiny", "full",
                                                  {"precision.dtype=bf16", "precision.pure_half=true"})),
                    Contains("precision.pure_half"));
}

TEST_CASE("activation checkpointing trains the same model", "[train]") {
  for (const char* model : {"preset:mamba-tiny", "preset:pythia-tiny"}) {
    INFO(model);
    TempDir out{"mft-train"};
    const std::vector<std::string> o = {"trainer.max_steps=4", "peft.dropout=0.1", "precision.dtype=bf16"};
    std::vector<std::string> ck = o;
    ck.push_back("trainer.activation_checkpointing=true");
    mft::train::train(tiny_recipe(out.path / "plain", model, "lora", o));
    mft::train::train(tiny_recipe(out.path / "ckpt", model, "lora", ck));
    const auto a = metrics(out.path / "plain"), b = metrics(out.path / "ckpt");
    REQUIRE(a.size() == 4);
    REQUIRE(b.size() == 4);
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(b[i]["loss"].get<double>() == Approx(a[i]["loss"].get<double>()).epsilon(1e-5));
      CHECK(b[i]["grad_norm"].get<double>() == Approx(a[i]["grad_norm"].get<double>()).epsilon(1e-4));
    }
  }
}

TEST_CASE("training refuses bad setups with clear errors", "[train]") {
  TempDir out{"mft-train"};
  const fs::path dir = out.path / "run";
  fs::create_directories(dir);
  std::ofstream(dir / "something") << "x";
  CHECK_THROWS_WITH(mft::train::train(tiny_recipe(dir, "preset:mamba-tiny", "full")),
                    Contains("already exists; set output.resume=true"));
  CHECK_THROWS_WITH(mft::train::train(tiny_recipe(dir, "preset:mamba-tiny", "full", {"output.resume=true"})),
                    Contains("has no checkpoint to resume from"));
  CHECK_THROWS_WITH(
      mft::train::train(tiny_recipe(out.path / "f", "preset:mamba-tiny", "full", {"peft.freeze=[nothing_like_this]"})),
      Contains("peft.freeze pattern \"nothing_like_this\" matches no parameter"));
  CHECK_THROWS_WITH(mft::train::train(tiny_recipe(out.path / "g", "preset:mamba-tiny", "full",
                                                  {"data.train_file=" + (out.path / "none.jsonl").string()})),
                    Contains("none.jsonl"));
  // A checkpoint cut short is reported, not loaded.
  mft::train::TrainHooks stop;
  stop.stop_after_steps = 2;
  mft::train::train(tiny_recipe(out.path / "t", "preset:mamba-tiny", "full"), stop);
  const fs::path params = out.path / "t/checkpoints/step-00000002/params.safetensors";
  fs::resize_file(params, fs::file_size(params) / 2);
  CHECK_THROWS_WITH(mft::train::train(tiny_recipe(out.path / "t", "preset:mamba-tiny", "full", {"output.resume=true"})),
                    Contains("params.safetensors"));
}

TEST_CASE("write_file_atomically replaces a file whole and names the caller on failure", "[train]") {
  TempDir dir;
  const std::string path = (dir.path / "out.json").string();
  mft::write_file_atomically(path, "first\n", "test");
  mft::write_file_atomically(path, "second\n", "test");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "second\n");
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);  // no temporary file left behind
  CHECK_THROWS_WITH(mft::write_file_atomically((dir.path / "no" / "such" / "x").string(), "x", "sweep"),
                    Contains("sweep: cannot write ") && Contains("no/such/x"));
}
