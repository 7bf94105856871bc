#include "bench/train_bench.h"

#include "models/registry.h"

#include "core/memory.h"
#include "models/lora_adapter.h"
#include "ops/cross_entropy.h"
#include "ops/selective_scan.h"
#include "peft/lora.h"
#include "recipe/recipe.h"
#include "train/autocast_scope.h"
#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <set>

namespace mft::bench {
namespace {
using Clock = std::chrono::steady_clock;

struct Mode {
  bool lora = false;
  at::ScalarType dtype = at::kFloat;  // autocast dtype (fp32: no autocast)
};

Mode parse_mode(const std::string& m) {
  const auto dash = m.find('-');
  const std::string method = m.substr(0, dash), dtype = dash == std::string::npos ? "" : m.substr(dash + 1);
  TORCH_CHECK((method == "full" || method == "lora") && (dtype == "fp32" || dtype == "bf16"),
              "bench-train: --mode must be full-fp32, full-bf16, lora-fp32 or lora-bf16; got \"", m, "\"");
  return {method == "lora", dtype == "bf16" ? at::kBFloat16 : at::kFloat};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct StepGemms {
  std::vector<Gemm> forward, backward;
};

// Every GEMM of one training step over `tokens` tokens. Base weights run in the autocast dtype (or
// their own); dX of every weight GEMM is counted (exact when the embedding is trained or adapted: then
// every GEMM's input is on the gradient path), dW only for weights that require grad.
StepGemms step_gemms(models::CausalLM& model, int64_t tokens, std::optional<at::ScalarType> autocast) {
  StepGemms s;
  auto dtype_of = [&](const at::Tensor& t) { return autocast ? *autocast : t.scalar_type(); };
  for (const auto& [name, w] : gemm_weights(model)) {
    const int64_t out = w.size(0), in = w.size(1);
    const at::ScalarType dt = dtype_of(w);
    s.forward.push_back(linear_forward(tokens, in, out, dt));
    s.backward.push_back(linear_input_grad(tokens, in, out, dt));
    if (w.requires_grad()) s.backward.push_back(linear_weight_grad(tokens, in, out, dt));
  }
  for (const auto& [path, module] : model.hf_lora_modules()) {
    const models::LoraAdapterImpl* a = models::find_lora(*module);
    if (a == nullptr) continue;
    const int64_t r = a->rank(), out = a->B.size(0);
    if (a->embedding) {
      // e += s · Aᵀ[ids] (tokens, r) · Bᵀ (r, D), an at::matmul (autocast dtype); Aᵀ[ids] is a lookup.
      const at::ScalarType dt = dtype_of(a->B);
      s.forward.push_back(linear_forward(tokens, r, out, dt));
      s.backward.push_back(linear_input_grad(tokens, r, out, dt));   // d(Aᵀ[ids]) = de · B
      s.backward.push_back(linear_weight_grad(tokens, r, out, dt));  // dB = deᵀ · Aᵀ[ids]
      continue;
    }
    // The adapter's low-rank products, in fp32 whatever the activations (ops/thin_gemm.h, for lora_linear
    // and mamba_inner alike), timed as fp32 GEMMs: the minimum work (the backward also recomputes
    // u = x Aᵀ, one more (tokens x in x r) product, not counted).
    const int64_t in = a->A.size(1);
    s.forward.push_back(linear_forward(tokens, in, r, at::kFloat));        // u = x Aᵀ
    s.forward.push_back(linear_forward(tokens, r, out, at::kFloat));       // y += s · u Bᵀ
    s.backward.push_back(linear_input_grad(tokens, r, out, at::kFloat));   // g = dy B
    s.backward.push_back(linear_weight_grad(tokens, r, out, at::kFloat));  // dB = dyᵀ u
    s.backward.push_back(linear_input_grad(tokens, in, r, at::kFloat));    // dx += g A
    s.backward.push_back(linear_weight_grad(tokens, in, r, at::kFloat));   // dA = gᵀ x
  }
  return s;
}

// The selective scans of one step (forward + backward, as mamba_inner runs them: z gate, D, delta bias
// and softplus, time-varying B/C, activations in the mode's dtype, states fp32), each timed alone (best
// of `repeats`): one per 2-D A_log (E, N) of a Mamba model; 0 for other families. Not matmuls, and their
// states stay fp32 in every precision mode, so they bound what the matmul roofline can reach. Gradients
// are returned, not accumulated into the inputs (later repeats would also time the accumulation).
double step_scan_seconds(models::CausalLM& model, int64_t batch, int64_t seq, at::ScalarType act, int repeats) {
  double total = 0;
  for (const auto& [name, t] : model.hf_state_dict()) {
    if (name.size() < 5 || name.compare(name.size() - 5, 5, "A_log") != 0 || t.dim() != 2) continue;
    const int64_t E = t.size(0), N = t.size(1);
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    auto act_input = [&](at::IntArrayRef sizes, double scale) {
      return (at::randn(sizes, f32) * scale).to(act).requires_grad_();
    };
    const at::Tensor u = act_input({batch, E, seq}, 1.0), delta = act_input({batch, E, seq}, 0.5);
    const at::Tensor B = act_input({batch, N, seq}, 1.0), C = act_input({batch, N, seq}, 1.0);
    const at::Tensor z = act_input({batch, E, seq}, 1.0);
    const at::Tensor A = (-at::rand({E, N}, f32) - 0.5).requires_grad_();
    const at::Tensor D = at::ones({E}, f32).requires_grad_(), bias = at::zeros({E}, f32).requires_grad_();
    const at::Tensor dy = at::randn({batch, E, seq}, f32).to(act);
    total += best_of(repeats, [&] {
      auto [y, last] = selective_scan(u, delta, A, B, C, D, z, bias, /*delta_softplus=*/true, std::nullopt,
                                      /*return_last_state=*/false, std::nullopt);
      torch::autograd::grad({y}, {u, delta, A, B, C, D, z, bias}, {dy});
    });
  }
  return total;
}

// Trainable parameters as the trainer's set_up_peft: LoRA adapters on the targets (base frozen), or
// everything.
void set_up_training(models::CausalLM& model, const Mode& mode, const TrainBenchOptions& o, TrainBenchResult& r) {
  if (mode.lora) {
    peft::LoraConfig cfg;
    cfg.rank = o.lora_rank;
    cfg.alpha = o.lora_alpha;
    cfg.target_modules = o.lora_targets;
    peft::apply_lora(model, cfg, o.seed);
    r.lora_targets = peft::attached_lora_config(model).target_modules;
    r.lora_rank = o.lora_rank;
    r.lora_alpha = o.lora_alpha;
  } else {
    for (auto& p : model.parameters()) p.requires_grad_(true);
  }
  model.train();
}
}  // namespace

void check_train_bench_options(const TrainBenchOptions& o) {
  parse_mode(o.mode);
  TORCH_CHECK(o.seq >= 2 && o.batch >= 1, "bench-train: --seq must be >= 2 and --batch >= 1; got ", o.seq, " and ",
              o.batch);
  TORCH_CHECK(o.steps >= 1 && o.warmup >= 0, "bench-train: --steps must be >= 1 and --warmup >= 0");
  TORCH_CHECK(o.lora_rank >= 1, "bench-train: --lora-rank must be >= 1; got ", o.lora_rank);
  TORCH_CHECK(o.gemm_repeats >= 1, "bench-train: --gemm-repeats must be >= 1");
}

models::MemoryEstimate train_bench_memory(const std::string& spec, const TrainBenchOptions& o) {
  const Mode mode = parse_mode(o.mode);
  models::TrainingShape s;
  s.batch = o.batch;
  s.seq = o.seq;
  s.dtype = mode.dtype;
  s.lora = mode.lora;
  s.lora_rank = o.lora_rank;
  return models::estimate_training(models::model_footprint(spec), s);
}

TrainBenchResult run_train_bench(models::CausalLM& model, const TrainBenchOptions& o) {
  check_train_bench_options(o);
  const Mode mode = parse_mode(o.mode);
  TrainBenchResult r;
  r.family = model.family();
  r.mode = o.mode;
  r.method = mode.lora ? "lora" : "full";
  r.dtype = mode.dtype == at::kFloat ? "fp32" : "bf16";
  r.threads = at::get_num_threads();
  r.batch = o.batch;
  r.seq = o.seq;
  r.steps = o.steps;
  r.warmup = o.warmup;
  at::manual_seed(int64_t(o.seed));
  set_up_training(model, mode, o, r);
  std::vector<at::Tensor> params;
  std::set<const void*> seen;
  for (const auto& p : model.parameters()) {
    if (!seen.insert(p.data_ptr()).second) continue;  // a tied head shares the embedding
    r.parameters += p.numel();
    if (p.requires_grad()) {
      params.push_back(p);
      r.trained_parameters += p.numel();
    }
  }
  TORCH_CHECK(!params.empty(), "bench-train: nothing to train");
  // The recipe's optimizer defaults, built as the trainer builds them.
  const recipe::OptimizerSection os;
  const auto opt_ptr = train::make_optimizer(params, os);
  torch::optim::Optimizer& opt = *opt_ptr;
  const int64_t V = model.vocab_size(), tokens = o.batch * o.seq;
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const at::Tensor ids = at::randint(0, V, {o.batch, o.seq}, long_opts);
  const at::Tensor labels = at::randint(0, V, {o.batch * o.seq}, long_opts);  // shifted targets, every token

  // One step of the trainer; returns the loss and the end times of forward, backward, optimizer.
  auto step = [&](int64_t index) {
    const auto t0 = Clock::now();
    opt.zero_grad();
    at::Tensor loss;
    {
      train::AutocastScope autocast(mode.dtype);
      const models::NativeLogits native;                       // as the trainer
      const at::Tensor logits = model.forward(ids);            // (B, L, V)
      loss = cross_entropy_sum(logits.view({-1, V}), labels);  // as the trainer (fp32 inside)
    }
    const double loss_value = loss.item<double>() / double(tokens);
    TORCH_CHECK(std::isfinite(loss_value), "bench-train: non-finite loss at step ", index);
    const auto t1 = Clock::now();
    (loss / double(tokens)).backward();
    const auto t2 = Clock::now();
    const train::GradNorm g = train::measure_gradients(params, 1.0, os.grad_clip);  // as the trainer
    if (g.finite) train::step_with_grad_factor(opt, params, g.factor);
    const auto t3 = Clock::now();
    return std::make_tuple(loss_value, t0, t1, t2, t3);
  };

  // Roofline: the step's GEMMs, each timed alone (a fresh GemmTimer, best of gemm_repeats), once right
  // after every timed step. This VM's speed drifts by 15 % within minutes; a floor measured next to each
  // step and the median of the per-step ratios keep the percentage from following the drift (one floor
  // after all steps gave 57 % to 68 % for the same build). The GEMMs' operands would raise the peak
  // (+740 MiB seen), so the peak is read before the first floor: the steps up to there (warm-up
  // included) have the same memory profile as all the others.
  const StepGemms gemms =
      step_gemms(model, tokens, mode.dtype == at::kFloat ? std::nullopt : std::optional<at::ScalarType>(mode.dtype));
  std::vector<double> floors, floor_fwd, floor_bwd;
  std::map<std::string, double> dtype_flops;                 // dtype -> the step's GEMM FLOPs in it
  std::map<std::string, std::vector<double>> dtype_seconds;  // dtype -> their floor, per round
  auto dtype_name = [](const Gemm& g) {
    return g.dtype == at::kBFloat16 ? "bf16" : g.dtype == at::kHalf ? "fp16" : "fp32";
  };
  for (const auto* list : {&gemms.forward, &gemms.backward}) {
    for (const Gemm& g : *list) {
      dtype_flops[dtype_name(g)] += g.flops();
      r.gemm_gflop += g.flops() / 1e9;
    }
  }
  auto measure_floor = [&] {
    at::NoGradGuard no_grad;
    GemmTimer timer(o.gemm_repeats);
    double f = 0, b = 0;
    std::map<std::string, double> secs;
    for (const auto* list : {&gemms.forward, &gemms.backward}) {
      for (const Gemm& g : *list) {
        const double sec = timer.seconds(g);
        (list == &gemms.forward ? f : b) += sec;
        secs[dtype_name(g)] += sec;
      }
    }
    for (const auto& [dtype, sec] : secs) dtype_seconds[dtype].push_back(sec);
    floor_fwd.push_back(f);
    floor_bwd.push_back(b);
    floors.push_back(f + b);
  };

  r.rss_after_load_mb = rss_mb();
  reset_peak_rss();
  std::vector<double> fwd, bwd, optim, pct;
  for (int64_t i = 0; i < o.warmup + o.steps; ++i) {
    const auto [loss, t0, t1, t2, t3] = step(i);
    if (i == 0) r.loss_first = loss;
    r.loss_last = loss;
    if (i < o.warmup) continue;
    fwd.push_back(std::chrono::duration<double>(t1 - t0).count());
    bwd.push_back(std::chrono::duration<double>(t2 - t1).count());
    optim.push_back(std::chrono::duration<double>(t3 - t2).count());
    r.step_times_s.push_back(std::chrono::duration<double>(t3 - t0).count());
    if (floors.empty()) r.peak_rss_over_load_mb = peak_rss_mb() - r.rss_after_load_mb;
    measure_floor();
    pct.push_back(100.0 * floors.back() / r.step_times_s.back());
  }
  r.roofline_pct_per_step = pct;
  r.roofline_pct = median(pct);
  r.roofline_s = median(floors);
  r.roofline_forward_s = median(floor_fwd);
  r.roofline_backward_s = median(floor_bwd);
  r.peak_rss_mb = r.rss_after_load_mb + r.peak_rss_over_load_mb;
  r.memory_per_token_kb = r.peak_rss_over_load_mb * 1024.0 / double(tokens);
  r.step_s = median(r.step_times_s);
  r.tokens_per_s = double(tokens) / r.step_s;
  r.forward_s = median(fwd);
  r.backward_s = median(bwd);
  r.optimizer_s = median(optim);
  if (!o.trace_path.empty()) {
    // One more step under the PyTorch profiler (CPU ops with shapes), after the timed ones.
    namespace prof = torch::profiler::impl;
    const prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/true);
    const std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
    step(o.warmup + o.steps);
    torch::autograd::profiler::disableProfiler()->save(o.trace_path);
  }

  for (const auto& [dtype, flops] : dtype_flops) r.gemm_gflops[dtype] = flops / median(dtype_seconds[dtype]) / 1e9;
  r.scan_s = step_scan_seconds(model, o.batch, o.seq, mode.dtype, o.gemm_repeats);
  r.roofline_pct_max = 100.0 * r.roofline_s / (r.roofline_s + r.scan_s);
  return r;
}

std::string TrainBenchResult::to_json() const {
  nlohmann::json j{{"family", family},
                   {"mode", mode},
                   {"method", method},
                   {"dtype", dtype},
                   {"threads", threads},
                   {"batch", batch},
                   {"seq", seq},
                   {"steps", steps},
                   {"warmup", warmup},
                   {"parameters", parameters},
                   {"trained_parameters", trained_parameters},
                   {"step_times_s", step_times_s},
                   {"step_s", step_s},
                   {"tokens_per_s", tokens_per_s},
                   {"forward_s", forward_s},
                   {"backward_s", backward_s},
                   {"optimizer_s", optimizer_s},
                   {"loss_first", loss_first},
                   {"loss_last", loss_last},
                   {"gemm_gflop", gemm_gflop},
                   {"gemm_gflops", gemm_gflops},
                   {"roofline_s", roofline_s},
                   {"roofline_forward_s", roofline_forward_s},
                   {"roofline_backward_s", roofline_backward_s},
                   {"roofline_pct", roofline_pct},
                   {"roofline_pct_per_step", roofline_pct_per_step},
                   {"scan_s", scan_s},
                   {"roofline_pct_max", roofline_pct_max},
                   {"rss_after_load_mb", rss_after_load_mb},
                   {"peak_rss_over_load_mb", peak_rss_over_load_mb},
                   {"memory_per_token_kb", memory_per_token_kb},
                   {"memory_estimate_mb", memory_estimate_mb},
                   {"peak_rss_mb", peak_rss_mb}};
  if (method == "lora") {
    j["lora_rank"] = lora_rank;
    j["lora_alpha"] = lora_alpha;
    j["lora_targets"] = lora_targets;
  }
  return j.dump();
}

void print_train_bench(const TrainBenchResult& r) {
  const std::string what = r.method == "lora" ? fmt::format("LoRA r {} alpha {} on {}", r.lora_rank, r.lora_alpha,
                                                            fmt::join(r.lora_targets, ", "))
                                              : std::string("full fine-tuning");
  fmt::print("{} {} ({:.2f} M parameters, {:.2f} M trained: {}), batch {} x seq {}, {} threads\n", r.family, r.mode,
             r.parameters / 1e6, r.trained_parameters / 1e6, what, r.batch, r.seq, r.threads);
  fmt::print(
      "  step      {:.3f} s, median of {} after {} warm-up (forward {:.3f} s, backward {:.3f} s, optimizer {:.3f} s)"
      " -> {:.0f} tokens/s; loss {:.3f} -> {:.3f}\n",
      r.step_s, r.steps, r.warmup, r.forward_s, r.backward_s, r.optimizer_s, r.tokens_per_s, r.loss_first, r.loss_last);
  std::string rates;
  for (const auto& [dtype, g] : r.gemm_gflops) rates += fmt::format("{}{} {:.0f}", rates.empty() ? "" : ", ", dtype, g);
  fmt::print(
      "  roofline  {:.3f} s = the step's {:.1f} GFLOP of matmuls timed alone (forward {:.3f} s, backward {:.3f} s;"
      " GFLOP/s {}) -> {:.0f}% of roofline (median over the steps, each against the floor timed after it: {:.0f}%)\n",
      r.roofline_s, r.gemm_gflop, r.roofline_forward_s, r.roofline_backward_s, rates, r.roofline_pct,
      fmt::join(r.roofline_pct_per_step, "%, "));
  if (r.scan_s > 0) {
    fmt::print(
        "  scans     {:.3f} s = the step's selective scans (forward + backward, fp32 states) timed alone: with "
        "them, the roofline is at most {:.0f}% of a step even if nothing else took time\n",
        r.scan_s, r.roofline_pct_max);
  }
  fmt::print(
      "  memory    RSS after load {:.0f} MiB, peak during the steps +{:.0f} MiB ({:.1f} KiB/token); peak "
      "{:.0f} MiB vs {:.0f} MiB estimated before loading\n",
      r.rss_after_load_mb, r.peak_rss_over_load_mb, r.memory_per_token_kb, r.peak_rss_mb, r.memory_estimate_mb);
}

}  // namespace mft::bench
