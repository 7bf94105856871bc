// mamba-ft: the command-line driver. Parses, sets threads, runs one subcommand; any error becomes one
// line on stderr and exit code 1.
#include "cli_checks.h"
#include "commands.h"
#include "core/library_info.h"
#include "core/system_limits.h"
#include "models/memory_estimate.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace {
std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

// A message on one line: trailing newlines dropped, inner ones shown as \n.
std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  std::string out;
  for (const char c : s) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

// Exit code of a command line that cannot be parsed (unknown option, bad value); 1 is any other error.
constexpr int kUsageError = 2;

int fail(const std::string& message) {
  fmt::print(stderr, "mamba-ft: error: {}\n", one_line(message));
  return 1;
}
}  // namespace

// glibc serves allocations above 32 MiB with fresh mmaps, so every large activation or gradient costs
// page faults and zeroing on each step (selective_scan at batch 4, seqlen 2048: 49 ms -> 36 ms forward,
// 192 -> 125 ms forward+backward without them). Keep freed memory in the heap for reuse instead, as a
// caching allocator would; set MFT_SYSTEM_MALLOC=1 to keep glibc's defaults.
void tune_malloc() {
  const char* keep = std::getenv("MFT_SYSTEM_MALLOC");
  if (keep != nullptr && keep[0] != '\0' && keep[0] != '0') return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

int main(int argc, char** argv) {
  tune_malloc();
  CLI::App app{"mamba-ft: fine-tune, evaluate, analyse and export Mamba / Mamba-2 / GPT-NeoX models"};
  app.set_version_flag("--version", "mamba-ft " + mft::version());
  // LibTorch alone would use one thread on a 2-core machine; default to every core.
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--threads", threads, "CPU threads for LibTorch and the mft kernels (at most 4 per core)")
      ->check(mft::app::int_in(1, mft::max_threads()))
      ->capture_default_str();
  bool ignore_memory = false;
  app.add_flag("--ignore-memory-check", ignore_memory,
               "run even when the job's memory estimate exceeds 1.2x what this process may use");
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, mft::app::Runner>> commands;
  auto add = [&](mft::app::Runner run) { commands.emplace_back(app.get_subcommands({}).back(), std::move(run)); };
  add(mft::app::add_info(app));
  add(mft::app::add_bench(app));
  add(mft::app::add_tokenize(app));
  add(mft::app::add_generate(app));
  add(mft::app::add_bench_model(app));
  add(mft::app::add_bench_train(app));
  add(mft::app::add_score(app));
  add(mft::app::add_eval(app));
  add(mft::app::add_compare(app));
  add(mft::app::add_stability(app));
  add(mft::app::add_merge(app));
  add(mft::app::add_make_data(app));
  add(mft::app::add_train(app));
  add(mft::app::add_sweep(app));
  add(mft::app::add_report(app));
  add(mft::app::add_export(app));

  // Global options may also follow the subcommand (`mamba-ft train R.yaml --threads 2`).
  std::vector<CLI::App*> todo = app.get_subcommands({});
  while (!todo.empty()) {
    CLI::App* sub = todo.back();
    todo.pop_back();
    sub->fallthrough();
    for (CLI::App* s : sub->get_subcommands({})) todo.push_back(s);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors: one line naming the argument, exit code 2 (as getopt-style tools do).
    std::string what = first_line(e.what());
    if (app.get_subcommands().empty()) {  // no known command: name the word that was meant as one
      for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--threads") ++i;  // its value
        if (arg.empty() || arg[0] == '-') continue;
        std::string names;
        for (const auto& [sub, run] : commands) names += (names.empty() ? "" : ", ") + sub->get_name();
        what = "unknown command '" + arg + "'; commands are: " + names;
        break;
      }
    }
    fmt::print(stderr, "mamba-ft: error: {} (see --help)\n", what);
    return kUsageError;
  }
  try {
    if (ignore_memory) mft::models::ignore_memory_check();
    at::set_num_threads(threads);
    for (auto& [sub, run] : commands) {
      if (sub->parsed()) return run();
    }
    return fail("no subcommand given");
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
