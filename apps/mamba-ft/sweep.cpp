// `mamba-ft sweep SWEEP.yaml [key.sub=value ...] [--axis NAME=a,b ...] [--dry-run] [--aggregate]`: runs every
// point of a sweep (train + eval; finished points are skipped, failed ones recorded), the stability stage
// and the paper's tables (sweep/run_sweep.h); then the HTML report unless sweep.report is false.
// Overrides: sweep.KEY=value (sweep options), prepare.KEY=value (prepare runs), anything else every point.
// Ctrl-C / SIGTERM checkpoint the running point; rerunning the same command resumes it.
#include "commands.h"
#include "core/file_io.h"
#include "core/output_lock.h"

#include "recipe/sweep_spec.h"
#include "report/html_report.h"
#include "sweep/point_run.h"
#include "sweep/run_sweep.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <unistd.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace mft::app {
namespace {
namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
extern "C" void on_sweep_signal(int) {
  g_stop.store(true);
}

// Runs `mamba-ft train RECIPE` in a child process (this executable), its output in LOG: every run starts
// from a fresh heap, so its peak memory is its own, and a crash fails only that point. SIGINT reaches
// the child from the terminal; a stop asked of this process (SIGTERM) is passed on. The child checkpoints
// and exits 130 when stopped.
train::TrainResult train_in_child(const recipe::Recipe& r, const fs::path& log_dir) {
  fs::create_directories(log_dir);
  const std::string name = fs::path(r.output.dir).filename().string();
  const std::string recipe_file = (log_dir / (name + ".recipe.yaml")).string();
  const std::string log = (log_dir / (name + ".log")).string();
  sweep::write_text_atomic(recipe_file, recipe::to_yaml(r));
  std::vector<std::string> args = {"mamba-ft", "--threads", std::to_string(at::get_num_threads()), "train",
                                   recipe_file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error(fmt::format("sweep: cannot start mamba-ft train: {}", std::strerror(rc)));
  int status = 0;
  bool stop_sent = false;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (g_stop.load() && !stop_sent) {
      kill(pid, SIGTERM);
      stop_sent = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (code == 0 || code == 130) return train::read_train_result(r.output.dir);
  // The child's own one-line error, if it printed one.
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.rfind("mamba-ft: error: ", 0) == 0) last = line.substr(17);
  throw std::runtime_error(last.empty() ? fmt::format("training exited with status {} (log: {})", code, log)
                                        : fmt::format("{} (log: {})", last, log));
}

struct SweepArgs {
  std::string file;
  std::vector<std::string> overrides, axes;
  bool dry_run = false, aggregate = false, in_process = false;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int dry_run(const recipe::SweepSpec& spec) {
  const auto points = recipe::sweep_points(spec);
  fmt::print("{} points -> {}/points/\n|#|point|status|\n|---:|---|---|\n", points.size(), spec.output_dir);
  for (size_t i = 0; i < points.size(); ++i) {
    const recipe::Recipe r = recipe::point_recipe(spec, points[i]);
    const auto rec = sweep::read_point_record(r.output.dir);
    std::string status = "pending";
    if (rec.is_object()) {
      status =
          rec.value("recipe", "") != recipe::to_yaml(r) ? "stale (recipe changed)" : rec.value("status", "pending");
      if (status == "failed") status += ": " + rec.value("error", "");
    }
    fmt::print("|{}|{}|{}|\n", i + 1, points[i].id, status);
  }
  return 0;
}

int run_sweep_command(const SweepArgs& a) {
  const recipe::SweepSpec spec = recipe::load_sweep(a.file, a.overrides, a.axes);
  if (a.dry_run) return dry_run(spec);
  // One sweep per folder; each point's training run locks its own folder under points/ as well.
  const OutputLock lock(spec.output_dir, "sweep", [](const std::string& m) { fmt::print(stderr, "sweep: {}\n", m); });
  sweep::SweepResult result;
  if (a.aggregate) {
    result = sweep::summarize_sweep(spec);
  } else {
    std::signal(SIGINT, on_sweep_signal);
    std::signal(SIGTERM, on_sweep_signal);
    const bool tty = isatty(fileno(stderr));
    sweep::SweepHooks hooks;
    hooks.on_message = [](const std::string& m) { fmt::print(stderr, "   {}\n", m); };
    // ETA from the points run so far in this invocation (skipped ones cost nothing).
    auto progress = std::make_shared<std::pair<int64_t, double>>(0, 0.0);  // points run, their seconds
    hooks.on_point = [progress](size_t i, size_t n, const recipe::SweepPoint& p, const std::string& what) {
      const auto& [runs, seconds] = *progress;
      const double left = runs > 0 ? seconds / double(runs) * double(n - i + 1) : 0;
      const std::string eta = runs == 0   ? ""
                              : left < 90 ? fmt::format(" [ETA {:.0f} s]", left)
                                          : fmt::format(" [ETA {:.0f} min]", left / 60);
      fmt::print(stderr, "== point {}/{}: {}{}{}\n", i, n, p.id, what == "run" ? "" : " (" + what + ")", eta);
    };
    hooks.train.stop = &g_stop;
    hooks.train.on_message = hooks.on_message;
    hooks.train.on_step = [tty](const train::StepMetrics& m) {
      if (tty) fmt::print(stderr, "\r   step {} loss {:.4f} {:.0f} tok/s   ", m.step, m.loss, m.tokens_per_s);
    };
    if (!a.in_process) {
      const fs::path logs = fs::path(spec.output_dir) / "logs";
      hooks.run_training = [logs](const recipe::Recipe& r) { return train_in_child(r, logs); };
    }
    hooks.on_point_done = [progress](const nlohmann::json& rec, bool skipped) {
      if (!skipped) {
        progress->first += 1;
        progress->second += rec.value("seconds", 0.0);
      }
      const auto& t = rec["train"];
      if (!skipped && rec.value("status", "") == "ok" && t.is_object())
        fmt::print(stderr, "   ok in {:.0f} s: loss {:.4f}, {:.0f} tokens/s, {:.1f} KiB/token\n",
                   rec.value("seconds", 0.0), t.value("last_loss", 0.0), t.value("tokens_per_s", 0.0),
                   t.value("memory_per_token_kb", 0.0));
    };
    result = sweep::run_sweep(spec, read_all(a.file), hooks);
    if (tty) fmt::print(stderr, "\n");
  }
  fmt::print("{}", read_all((fs::path(spec.output_dir) / "summary.md").string()));
  fmt::print(stderr, "sweep: {} ok, {} failed, {} pending ({} skipped as done); tables in {}/tables, summary {}\n",
             result.ok, result.failed, result.pending, result.skipped, spec.output_dir, result.summary_path);
  if (spec.report && !result.interrupted) {
    const std::string html = (fs::path(spec.output_dir) / "report.html").string();
    write_file_atomically(html, report::build_report(spec.output_dir), "sweep");
    fmt::print(stderr, "sweep: report {}\n", html);
  }
  if (result.interrupted) {
    fmt::print(stderr, "sweep: interrupted; rerun the same command to continue\n");
    return 130;
  }
  if (result.failed > 0)
    throw std::runtime_error(fmt::format("sweep: {} of {} points failed (errors in {}/summary.md); rerun to retry them",
                                         result.failed, result.summary["points"].size(), spec.output_dir));
  return 0;
}
}  // namespace

Runner add_sweep(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand("sweep",
                                 "Run a sweep recipe's points (train + ICL eval), stability analysis and "
                                 "the paper's tables with 95 % CIs over seeds");
  cmd->add_option("SWEEP", a->file, "sweep YAML file (e.g. recipes/paper-mini.yaml)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option(
      "OVERRIDES", a->overrides,
      "key.sub=value: recipe keys of every point, prepare.KEY for the prepare runs, sweep.KEY for sweep options");
  cmd->add_option("--axis", a->axes, "NAME=a,b: run only these values of an axis (or new values of a key axis)")
      ->allow_extra_args(false);  // one value per --axis; the arguments after it are overrides
  cmd->add_flag("--dry-run", a->dry_run, "list the points and their status; run nothing");
  cmd->add_flag("--aggregate", a->aggregate, "only rebuild the tables and summary from what the folder holds");
  cmd->add_flag("--in-process", a->in_process,
                "train in this process (default: each run in a child process, so its memory is measured alone)");
  return [a] { return run_sweep_command(*a); };
}

}  // namespace mft::app
