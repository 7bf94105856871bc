// `mamba-ft stability perturb|lyapunov|precision ...`: the paper's stability analyses (csrc/analysis):
//   perturb   --preset mamba-tiny [--blocks 100 --steps 64 --eps 1e-6,1e-4,1e-2]   growth of perturbations
//   lyapunov  --model MODEL [--text FILE] [--tokens 256 --k 8 --warmup 0]        exact λ̂ per layer + Benettin
//   precision --model MODEL [--text FILE] [--tokens 128]                         fp32 vs bf16/fp16 (autocast, pure)
// Prints a summary; --output writes the JSON (atomically) for reports.
#include "cli_checks.h"
#include "commands.h"
#include "model_args.h"

#include "analysis/lyapunov.h"
#include "analysis/perturbation.h"
#include "analysis/precision.h"
#include "core/file_io.h"
#include "core/json_parse.h"
#include "models/registry.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace mft::app {
namespace {

struct StabilityArgs {
  ModelArgs model;
  std::string preset = "mamba-tiny", text, output, eps = "1e-6,1e-4,1e-2";
  int64_t blocks = 100, steps = 64, tokens = 256, k = 8, warmup = 0;
  bool allow_nonfinite = false;
};

// input_ids (1, T): the first T tokens of --text, else seeded random tokens.
at::Tensor input_ids(const StabilityArgs& a, const LoadedModel& m) {
  if (a.text.empty()) {
    at::Generator gen = at::detail::createCPUGenerator(a.model.seed);
    return at::randint(m.tokenizer->vocab_size(), {1, a.tokens}, gen, at::TensorOptions().dtype(at::kLong));
  }
  std::ifstream in(a.text, std::ios::binary);
  if (!in) throw std::runtime_error("stability: cannot read " + a.text);
  std::stringstream s;
  s << in.rdbuf();
  std::vector<int64_t> ids = m.tokenizer->encode(s.str());
  if (static_cast<int64_t>(ids.size()) < a.tokens)
    throw std::runtime_error(
        fmt::format("stability: {} has {} tokens; --tokens asks for {}", a.text, ids.size(), a.tokens));
  ids.resize(static_cast<size_t>(a.tokens));
  return at::tensor(ids, at::kLong).unsqueeze(0);
}

// Results with NaN or Inf fail (after the table is shown) unless --allow-nonfinite; then written.
void write(const StabilityArgs& a, const nlohmann::json& j) {
  const std::string bad = first_nonfinite(j);
  if (!bad.empty() && !a.allow_nonfinite) {
    throw std::runtime_error("stability: the result holds NaN or Inf (at " + bad +
                             "): the model computes non-finite values (check its weights and config.json; "
                             "--allow-nonfinite writes it anyway)");
  }
  if (a.output.empty()) return;
  write_file_atomically(a.output, j.dump(2) + "\n", "stability");
  fmt::print(stderr, "stability: results in {}\n", a.output);
}

int run_perturb(const StabilityArgs& a) {
  analysis::PerturbationOptions o;
  o.preset = a.preset;
  o.blocks = a.blocks;
  o.steps = a.steps;
  o.eps.clear();
  std::stringstream ss(a.eps);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      o.eps.push_back(std::stod(item));
    } catch (const std::exception&) {
      throw std::runtime_error("stability: --eps must be numbers separated by commas; got \"" + item + "\"");
    }
  }
  const auto r = analysis::perturbation_experiment(o);
  fmt::print("{} blocks of {} ({}), {} steps: rate = slope of log(max deviation) per step ({})\n", r.blocks, r.preset,
             r.family, r.steps, r.curves[0].median_state.empty() ? "output" : "recurrent state");
  fmt::print("|ε|median rate|mean rate|blocks decaying|deviation/ε at the last step|\n|---:|---:|---:|---:|---:|\n");
  for (const auto& c : r.curves) {
    const auto& last = c.median_state.empty() ? c.median_output : c.median_state;
    fmt::print("|{:g}|{:.4g}|{:.4g}|{:.0f}%|{:.3g}|\n", c.eps, c.median_rate, c.mean_rate, 100 * c.fraction_decaying,
               last.back());
  }
  write(a, {{"kind", "perturbation"}, {"result", r.to_json()}});
  return 0;
}

int run_lyapunov(const StabilityArgs& a) {
  // The Benettin estimates decode 2k + 1 perturbed copies of the state at once.
  auto m = load_model_and_tokenizer(a.model, 2 * a.k + 1, 1, "lower --k");
  const at::Tensor ids = input_ids(a, m);
  const auto l = analysis::model_lyapunov(*m.model, ids, a.k, a.warmup);
  nlohmann::json j = {
      {"kind", "lyapunov"}, {"model", a.model.model}, {"tokens", a.tokens}, {"k", a.k}, {"warmup", a.warmup}};
  fmt::print("|layer|λ̂ exact (max mean Δ·A)|Benettin top exponent|\n|---:|---:|---:|\n");
  for (const auto& e : l.layers) {
    fmt::print("|{}|{:.6g}|{}|\n", e.layer, e.exact, a.k > 0 ? fmt::format("{:.6g}", e.estimated) : "-");
    j["layers"].push_back({{"layer", e.layer},
                           {"exact", e.exact},
                           {"estimated", a.k > 0 ? nlohmann::json(e.estimated) : nlohmann::json()}});
  }
  fmt::print("stack (all layers' states): top exponents {}\n", nlohmann::json(l.stack.exponents).dump());
  j["stack"] = l.stack.exponents;
  write(a, j);
  return 0;
}

int run_precision(const StabilityArgs& a) {
  auto m = load_model_and_tokenizer(a.model, 1, a.tokens, "lower --tokens");
  const at::Tensor ids = input_ids(a, m);
  ModelArgs fp32 = a.model;
  fp32.dtype = "fp32";
  const auto r = analysis::precision_divergence(
      [&] {
        auto model = models::load_model(fp32.model, fp32.seed);
        return model;
      },
      ids);
  fmt::print(
      "{} ({} layers, {} positions): relative deviation of the residual stream and KL of the next-token "
      "distribution vs fp32\n|mode|max relative deviation|mean KL (nats)|\n|---|---:|---:|\n",
      r.family, r.layers, r.positions);
  for (const auto& mode : r.modes)
    fmt::print("|{}|{:.4g}|{:.4g}|\n", mode.name, mode.max_relative_deviation, mode.mean_kl);
  write(a, {{"kind", "precision"}, {"model", a.model.model}, {"result", r.to_json()}});
  return 0;
}
}  // namespace

Runner add_stability(CLI::App& app) {
  auto a = std::make_shared<StabilityArgs>();
  auto* cmd = app.add_subcommand("stability", "Lyapunov exponents, perturbation growth and precision divergence");
  cmd->require_subcommand(1);
  auto* perturb = cmd->add_subcommand("perturb", "Perturbation experiment on random blocks of a family (paper E1)");
  perturb->add_option("--preset", a->preset, "block geometry: mamba-tiny, mamba2-tiny, pythia-tiny, mamba-130m, ...")
      ->capture_default_str();
  perturb->add_option("--blocks", a->blocks, "random blocks")->check(int_in(1, 10000))->capture_default_str();
  perturb->add_option("--steps", a->steps, "steps N")->check(int_in(3, 100000))->capture_default_str();
  perturb->add_option("--eps", a->eps, "perturbation sizes")->capture_default_str();
  perturb->add_option("--output", a->output, "results JSON");
  auto* lyap = cmd->add_subcommand("lyapunov", "Exact λ̂ per layer and Benettin estimates (Mamba, Mamba-2)");
  auto* prec = cmd->add_subcommand("precision", "fp32 vs bf16/fp16 (autocast and pure half), per layer and position");
  for (auto* sub : {lyap, prec}) {
    a->model.add_to(sub);
    sub->add_option("--text", a->text, "text file whose first tokens drive the model (default: random tokens)");
    sub->add_option("--tokens", a->tokens, "tokens T")->check(int_in(1, kMaxTokens))->capture_default_str();
    sub->add_option("--output", a->output, "results JSON");
  }
  for (auto* sub : {perturb, lyap, prec}) {
    sub->add_flag("--allow-nonfinite", a->allow_nonfinite, "report NaN/Inf results instead of failing");
  }
  lyap->add_option("--k", a->k, "Benettin directions (0: exact λ̂ only; at most the state size)")
      ->check(int_in(0, 1 << 20))
      ->capture_default_str();
  lyap->add_option("--warmup", a->warmup, "steps that only align the directions")
      ->check(int_in(0, kMaxTokens))
      ->capture_default_str();
  return [a, perturb, lyap] {
    if (perturb->parsed()) return run_perturb(*a);
    if (lyap->parsed()) return run_lyapunov(*a);
    return run_precision(*a);
  };
}

}  // namespace mft::app
