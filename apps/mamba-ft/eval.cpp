// `mamba-ft eval [RECIPE.yaml] [key.sub=value ...] [--model M --adapter A --tasks t1,t2 --data-dir D
//  --shots 0,1,3,5 --seeds 1234,42 --limit N --dtype bf16 --batch-size N --max-length N --output F --log-samples]`:
// ICL evaluation with lm-evaluation-harness's tasks, prompts and metrics (eval/evaluator.h). Flags override the
// recipe's `eval` section. Prints lm-eval's markdown table; writes the results JSON atomically.
#include "cli_checks.h"
#include "commands.h"
#include "model_args.h"

#include "core/file_io.h"
#include "core/library_info.h"
#include "eval/evaluator.h"
#include "peft/lora.h"
#include "recipe/recipe.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>

namespace mft::app {
namespace {
namespace fs = std::filesystem;

struct EvalArgs {
  std::string recipe;
  std::vector<std::string> overrides;
  ModelArgs model;
  std::string adapter, data_dir, output, tasks, shots, seeds;
  int64_t limit = -2, batch_size = 0, max_length = 0;  // 0 / -2: not given (recipe or default)
  bool log_samples = false;
  bool allow_nonfinite = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    const size_t comma = s.find(',', i);
    const std::string item = s.substr(i, comma == std::string::npos ? std::string::npos : comma - i);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    i = comma + 1;
  }
  return out;
}

template <typename T>
std::vector<T> integers(const std::vector<std::string>& items, const char* what) {
  std::vector<T> out;
  for (const auto& s : items) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 18) {
      throw std::runtime_error(fmt::format("eval: {} must be integers >= 0 separated by commas; got \"{}\"", what, s));
    }
    out.push_back(static_cast<T>(std::stoull(s)));
  }
  if (out.empty()) throw std::runtime_error(fmt::format("eval: give at least one value for {}", what));
  return out;
}

int run_eval(EvalArgs a) {
  const auto start = std::chrono::steady_clock::now();
  recipe::Recipe r;
  r.eval.tasks.clear();
  if (!a.recipe.empty()) {
    const auto runs = recipe::load_recipe_runs(a.recipe, a.overrides, recipe::Purpose::kEval);
    if (runs.size() != 1) {
      throw std::runtime_error(
          fmt::format("eval: {} holds {} runs; evaluate one with runs.N... overrides removed, or "
                      "give --model",
                      a.recipe, runs.size()));
    }
    r = runs.front();
  } else if (!a.overrides.empty()) {
    throw std::runtime_error("eval: key=value overrides need a recipe file first");
  }
  // The model: --model, eval.model, the trained output, else model.path.
  std::string model = a.model.model, adapter = a.adapter;
  if (model.empty()) model = r.eval.model;
  if (adapter.empty()) adapter = r.eval.adapter;
  if (model.empty() && !r.output.dir.empty() && fs::exists(fs::path(r.output.dir) / "final" / "config.json")) {
    model = (fs::path(r.output.dir) / "final").string();
  }
  if (model.empty()) {
    model = r.model.path;
    if (adapter.empty() && !r.output.dir.empty() &&
        fs::exists(fs::path(r.output.dir) / "adapter" / "adapter_config.json"))
      adapter = (fs::path(r.output.dir) / "adapter").string();
  }
  if (model.empty()) throw std::runtime_error("eval: give --model (or a recipe with model.path)");
  ModelArgs margs = a.model;
  margs.model = model;
  if (margs.tokenizer.empty()) margs.tokenizer = r.model.tokenizer;
  if (a.recipe.empty() || margs.dtype != "fp32") {
  } else {
    margs.dtype = r.precision.dtype;
  }

  eval::EvalOptions o;
  o.tasks = a.tasks.empty() ? r.eval.tasks : split_list(a.tasks);
  if (o.tasks.empty()) throw std::runtime_error("eval: give --tasks (or eval.tasks in the recipe)");
  o.data_dir = !a.data_dir.empty() ? a.data_dir : r.eval.data_dir;
  o.shots = integers<int64_t>(a.shots.empty() ? r.eval.shots : split_list(a.shots), "--shots");
  o.seeds = integers<uint64_t>(a.seeds.empty() ? r.eval.seeds : split_list(a.seeds), "--seeds");
  o.limit = a.limit != -2 ? a.limit : r.eval.limit;
  o.score.batch_size = a.batch_size > 0 ? a.batch_size : r.eval.batch_size;
  o.score.max_length = a.max_length > 0 ? a.max_length : r.eval.max_length;
  o.log_samples = a.log_samples || r.eval.log_samples;
  o.bootstrap_iters = r.eval.bootstrap_iters;
  o.score.allow_nonfinite = a.allow_nonfinite;
  std::string output = !a.output.empty() ? a.output : r.eval.output;
  // The recipe's run folder is ours to create; any other output's folder must exist.
  const bool in_run_folder = output.empty() && !r.output.dir.empty() && !a.recipe.empty();
  if (in_run_folder) output = (fs::path(r.output.dir) / "eval.json").string();

  // Tasks first: a missing data file fails before the model loads.
  const std::vector<eval::Task> tasks = eval::load_tasks(o.tasks, o.data_dir);
  std::unique_ptr<AtomicFile> out;
  if (!output.empty()) {
    if (in_run_folder) fs::create_directories(r.output.dir);
    out = std::make_unique<AtomicFile>(output, "eval");
  }
  auto loaded = load_model_and_tokenizer(margs);
  if (!adapter.empty()) {
    const peft::LoraConfig c = peft::load_peft_adapter(*loaded.model, adapter);
    loaded.model->eval();
    fmt::print(stderr, "eval: adapter {} (rank {}, {} targets)\n", adapter, c.rank, c.target_modules.size());
  }
  fmt::print(stderr, "eval: {} ({}), {} task(s), shots {}, seeds {}{}\n", model, margs.dtype, tasks.size(),
             fmt::join(o.shots, ","), fmt::join(o.seeds, ","), o.limit >= 0 ? fmt::format(", limit {}", o.limit) : "");

  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const auto t0 = std::chrono::steady_clock::now();
  o.score.progress = [&](int64_t done, int64_t total) {
    if (!tty) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int width = 30, filled = int(width * done / std::max<int64_t>(total, 1));
    const double eta = done > 0 ? s / double(done) * double(total - done) : 0;
    fmt::print(stderr, "\r[{}{}] {}/{} requests {:.1f}/s ETA {:.0f}s   ", std::string(filled, '#'),
               std::string(width - filled, '.'), done, total, done / std::max(s, 1e-9), eta);
    std::fflush(stderr);
  };
  nlohmann::json results = eval::evaluate(*loaded.model, *loaded.tokenizer, tasks, o);
  if (tty) fmt::print(stderr, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  results["config"] = {{"model", model},
                       {"adapter", adapter},
                       {"dtype", margs.dtype},
                       {"tokenizer", loaded.tokenizer_source},
                       {"tasks", o.tasks},
                       {"data_dir", o.data_dir},
                       {"shots", o.shots},
                       {"seeds", o.seeds},
                       {"limit", o.limit},
                       {"batch_size", o.score.batch_size},
                       {"max_length", o.score.max_length},
                       {"bootstrap_iters", o.bootstrap_iters},
                       {"mamba_ft_version", mft::version()},
                       {"lm_eval_semantics", "0.4.13"},
                       {"date", date},
                       {"elapsed_s", seconds}};
  if (o.seeds.size() > 1) {
    for (const auto& seed : o.seeds) {
      fmt::print("seed {}:\n{}\n", seed, eval::markdown_table(results["seeds"][std::to_string(seed)]["shots"]));
    }
  } else {
    fmt::print("{}", eval::markdown_table(results["shots"]));
  }
  if (out) {
    out->write(results.dump(2) + "\n");
    out->commit();
    fmt::print(stderr, "eval: results in {}\n", output);
  }
  fmt::print(stderr, "eval: {} requests in {:.1f} s\n", results["n_requests"].get<int64_t>(), seconds);
  return 0;
}
}  // namespace

Runner add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "ICL evaluation with lm-evaluation-harness's tasks, prompts and metrics");
  cmd->add_option("recipe", a->recipe, "recipe YAML whose `eval` section (and model/output) to use");
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides of the recipe");
  cmd->add_option("--model", a->model.model, "HF model folder or preset:NAME (default: the recipe's)");
  cmd->add_option("--dtype", a->model.dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--device", a->model.device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--seed", a->model.seed, "preset initialisation seed")->capture_default_str();
  cmd->add_option("--tokenizer", a->model.tokenizer, "tokenizer.json, a folder, or 'bytes'");
  cmd->add_option("--adapter", a->adapter, "PEFT adapter folder to apply");
  cmd->add_option("--tasks", a->tasks,
                  "comma-separated: lambada_openai,hellaswag,piqa,arc_easy,arc_challenge,"
                  "winogrande,mmlu,mmlu_<subject>, or task YAML files");
  cmd->add_option("--data-dir", a->data_dir, "DATA_DIR/<task>/<split>.jsonl (default: data)");
  cmd->add_option("--shots", a->shots, "few-shot counts, e.g. 0,1,3,5 (default 0)");
  cmd->add_option("--seeds", a->seeds, "few-shot sampling seeds, e.g. 1234,42 (default 1234)");
  cmd->add_option("--limit", a->limit, "only the first N documents of each task")->check(int_in(0, INT64_MAX));
  cmd->add_option("--batch-size", a->batch_size, "sequences per forward pass (default 8)")->check(int_in(1, kMaxBatch));
  cmd->add_option("--max-length", a->max_length, "longest input in tokens (default 2048)")
      ->check(int_in(1, kMaxTokens));
  cmd->add_option("--output", a->output, "results JSON (written atomically)");
  cmd->add_flag("--log-samples", a->log_samples, "include every document's requests and loglikelihoods");
  cmd->add_flag("--allow-nonfinite", a->allow_nonfinite, "report NaN/Inf loglikelihoods instead of failing");
  return [a] { return run_eval(*a); };
}

}  // namespace mft::app
