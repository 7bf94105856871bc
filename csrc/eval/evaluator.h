#pragma once
// ICL evaluation as lm-evaluation-harness runs it: tasks × few-shot counts × few-shot seeds, every request
// through the one loglikelihood engine (eval/loglikelihood.h: sorted batches, shared contexts), metrics
// and results in lm-eval's own JSON shape, one object per shot count:
//   {"shots": {"0": {"results": {"hellaswag": {"acc,none": .., "acc_stderr,none": .., ...}}, "groups": ..,
//                    "configs": .., "versions": .., "n-shot": .., "n-samples": .., "higher_is_better": ..}, ..},
//    "seeds": {"1234": {"shots": ..}, ..}   (when several seeds; the first also at the top level)}
#include "eval/loglikelihood.h"
#include "eval/task.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mft::eval {

struct EvalOptions {
  std::vector<std::string> tasks;        // built-in names, "mmlu", "mmlu_<subject>", or task YAML files
  std::string data_dir = "data";         // DATA_DIR/<task>/<split>.jsonl for built-in tasks
  std::vector<int64_t> shots = {0};      // few-shot counts, each a separate evaluation (as separate lm-eval runs)
  std::vector<uint64_t> seeds = {1234};  // few-shot sampling seeds (lm-eval's fewshot_random_seed)
  int64_t limit = -1;                    // score only the first N documents of each task (< 0: all)
  bool log_samples = false;              // per-document requests, loglikelihoods and metrics in "samples"
  int64_t bootstrap_iters = 100000;      // lm-eval's bootstrap draws for perplexity's standard error
  ScoreOptions score;                    // batch size, max length, progress
};

// Every task `name` stands for (built-in or YAML file), documents read; errors name files and lines.
std::vector<Task> load_tasks(const std::vector<std::string>& names, const std::string& data_dir);

// Runs the evaluation; the results JSON described above (without the caller's "config").
nlohmann::json evaluate(models::CausalLM& model, const Tokenizer& tokenizer, const std::vector<Task>& tasks,
                        const EvalOptions& options);

// lm-eval's results table (markdown) of one shot-count results object set: rows task, version, n-shot,
// metric, value, ± stderr; groups after their tasks.
std::string markdown_table(const nlohmann::json& shots);

}  // namespace mft::eval
