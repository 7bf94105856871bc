// `mamba-ft train RECIPE.yaml [key.sub=value ...] [--print-config]`: runs a recipe (each of its runs in
// order). Ctrl-C / SIGTERM save a checkpoint and exit cleanly; rerun with output.resume=true to continue.
#include "commands.h"

#include "recipe/recipe.h"
#include "train/trainer.h"

#include <fmt/format.h>

#include <unistd.h>
#include <atomic>
#include <csignal>
#include <cstdio>

namespace mft::app {
namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) {
  g_stop.store(true);
}

struct TrainArgs {
  std::string recipe;
  std::vector<std::string> overrides;
  bool print_config = false;
  bool print_reference = false;
};

int run_train(const TrainArgs& a) {
  if (a.print_reference) {
    fmt::print("{}", recipe::recipe_reference_markdown());
    return 0;
  }
  TORCH_CHECK(!a.recipe.empty(), "train: give a RECIPE file (or --print-reference)");
  const auto runs = recipe::load_recipe_runs(a.recipe, a.overrides);
  if (a.print_config) {
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs.size() > 1) fmt::print("# run {} of {}\n", i + 1, runs.size());
      fmt::print("{}", recipe::to_yaml(runs[i]));
      if (runs.size() > 1 && i + 1 < runs.size()) fmt::print("---\n");
    }
    return 0;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const bool tty = isatty(fileno(stderr));
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    fmt::print(stderr, "== run {}/{}: {} ({} {}, {}, {} steps) -> {}\n", i + 1, runs.size(),
               r.name.empty() ? r.model.path : r.name, r.model.path, r.peft.method, r.precision.dtype,
               r.trainer.max_steps, r.output.dir);
    train::TrainHooks hooks;
    hooks.stop = &g_stop;
    hooks.on_message = [](const std::string& m) { fmt::print(stderr, "   {}\n", m); };
    hooks.on_step = [&](const train::StepMetrics& m) {
      const double eta = m.step > 0 ? m.elapsed_s / double(m.step) * double(r.trainer.max_steps - m.step) : 0;
      const std::string eval = m.eval_loss >= 0 ? fmt::format(" eval {:.4f}", m.eval_loss) : "";
      if (tty) {
        const int width = 30, done = int(width * m.step / std::max<int64_t>(r.trainer.max_steps, 1));
        fmt::print(stderr, "\r   [{}{}] {}/{} loss {:.4f}{} lr {:.2e} {:.0f} tok/s ETA {:.0f}s   ",
                   std::string(done, '#'), std::string(width - done, '.'), m.step, r.trainer.max_steps, m.loss, eval,
                   m.lr, m.tokens_per_s, eta);
        if (m.step == r.trainer.max_steps) fmt::print(stderr, "\n");
      } else if (m.eval_loss >= 0 || m.step % std::max<int64_t>(r.trainer.log_every * 10, 1) == 0 ||
                 m.step == r.trainer.max_steps) {
        fmt::print(stderr, "   step {}/{} loss {:.4f}{} lr {:.2e} {:.0f} tok/s\n", m.step, r.trainer.max_steps, m.loss,
                   eval, m.lr, m.tokens_per_s);
      }
    };
    const auto result = train::train(r, hooks);
    if (result.already_finished) {
      fmt::print("run {}: already finished ({} steps, loss {:.4f}); outputs in {} unchanged\n", i + 1, result.steps,
                 result.last_loss, result.output_dir);
      continue;
    }
    if (result.interrupted) {
      fmt::print(stderr, "\ninterrupted: checkpoint saved in {}/checkpoints; continue with output.resume=true\n",
                 result.output_dir);
      return 130;
    }
    fmt::print(
        "run {}: {} steps, loss {:.4f}{}, {:.0f} tokens/s, peak memory +{:.0f} MiB over the loaded model, "
        "outputs in {} (model/adapter: {})\n",
        i + 1, result.steps, result.last_loss,
        result.last_eval_loss >= 0 ? fmt::format(", eval loss {:.4f}", result.last_eval_loss) : "", result.tokens_per_s,
        result.peak_rss_over_load_mb, result.output_dir, result.final_dir);
  }
  return 0;
}
}  // namespace

Runner add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Fine-tune (LoRA or full, fp32/bf16/fp16) as a YAML recipe says");
  cmd->add_option("RECIPE", a->recipe, "recipe YAML file")->check(CLI::ExistingFile);
  cmd->add_option("OVERRIDES", a->overrides, "key.sub=value overrides, e.g. optimizer.lr=1e-4 trainer.max_steps=50");
  cmd->add_flag("--print-config", a->print_config, "print the resolved recipe (defaults filled) and exit");
  cmd->add_flag("--print-reference", a->print_reference, "print every recipe key with its default (Markdown)");
  return [a] { return run_train(*a); };
}

}  // namespace mft::app
