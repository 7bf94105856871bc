#pragma once
// An evaluation task as lm-evaluation-harness defines one (lm_eval/api/task.py, ConfigurableTask): how a
// document becomes a prompt, its choices and its gold answer, which documents are scored and which serve
// as few-shot examples, and the metrics. Built-in tasks (builtin_tasks.h) and user YAML tasks
// (yaml_task.h) are both this struct.
#include "eval/docs.h"

#include <functional>
#include <string>
#include <vector>

namespace mft::eval {

enum class TaskKind {
  kMultipleChoice,  // one context, one continuation " " + choice per choice (hellaswag, piqa, arc, mmlu)
  kMultipleInput,   // one context per choice, one shared continuation " " + target (winogrande)
  kLoglikelihood,   // one context, one continuation: the target (lambada): acc = greedy, perplexity
};

struct Task {
  std::string name;
  // Aggregates this task belongs to, innermost first ({"mmlu_stem", "mmlu"}); each reports the size-weighted
  // mean of its tasks' metrics.
  std::vector<std::string> groups;
  TaskKind kind = TaskKind::kMultipleChoice;
  std::vector<Doc> eval_docs;     // scored, in file order
  std::vector<Doc> fewshot_docs;  // the few-shot pool (may be the eval split itself)
  // lm-eval passes the eval doc to its sampler (which draws k + 1 and drops copies of the doc) exactly when
  // the task's fewshot split equals its test split: both unset for hellaswag, piqa and winogrande (so they
  // draw k + 1 from train), not for arc (test split set) or lambada (whose pool is the test split itself,
  // so a document can be its own example there, as in lm-eval).
  bool fewshot_excludes_eval_doc = false;
  bool first_n = false;                 // few-shot examples are the pool's first k (mmlu), not sampled
  std::string eval_file, fewshot_file;  // for messages and the results' config
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  // The description emitted before the examples (lm-eval's `description`), per document.
  std::function<std::string(const Doc&)> description;
  // Multiple choice: the question; multiple input: unused (see gold_index); loglikelihood: the context.
  std::function<std::string(const Doc&)> doc_to_text;
  // Multiple choice: the answers; multiple input: the contexts (each with its option filled in).
  std::function<std::vector<std::string>(const Doc&)> doc_to_choice;
  // Index of the gold choice (multiple choice and multiple input).
  std::function<int64_t(const Doc&)> gold_index;
  // Multiple input: the shared continuation (without delimiter); loglikelihood: the continuation as is.
  std::function<std::string(const Doc&)> doc_to_target;
  std::vector<std::string> metrics;  // reported metric names, e.g. {"acc", "acc_norm", "acc_bytes"}
  std::string version = "1.0";       // lm-eval's metadata.version of the task
};

// The requests of one document, before scoring.
struct Instance {
  int64_t doc_index = 0;
  std::vector<std::string> contexts;       // one, or one per choice (multiple input)
  std::vector<std::string> continuations;  // one per choice, or one (multiple input, loglikelihood)
  std::vector<std::string> choices;        // choice texts (for acc_norm / acc_bytes lengths)
  int64_t gold = 0;
  // (context, continuation) of request r: the pairs lm-eval builds, in its order.
  size_t num_requests() const { return std::max(contexts.size(), continuations.size()); }
  const std::string& context(size_t r) const { return contexts.size() == 1 ? contexts[0] : contexts[r]; }
  const std::string& continuation(size_t r) const {
    return continuations.size() == 1 ? continuations[0] : continuations[r];
  }
};

// The few-shot examples of every document: lm-eval's sampler, a Python random.Random(seed) created once
// for the task and run through the eval documents in order (`sample(pool, k)`, or k + 1 with copies of the
// eval doc removed, see fewshot_excludes_eval_doc); first_n takes the pool's first k. With a limit, the
// first `limit` documents get exactly the examples of the full run.
std::vector<std::vector<const Doc*>> fewshot_examples(const Task& task, int64_t shots, uint64_t seed,
                                                      int64_t limit = -1);

// The k-shot prompt text(s) and continuations of `doc` (lm-eval's fewshot_context + construct_requests):
//   description + Σ_shots (question + " " + answer + "\n\n") + question
// Throws with the document's file:line for a gold index out of range or empty choices.
Instance build_instance(const Task& task, const Doc& doc, const std::vector<const Doc*>& shots);

}  // namespace mft::eval
