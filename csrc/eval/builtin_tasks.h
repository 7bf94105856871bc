#pragma once
// The built-in tasks, exactly as lm-evaluation-harness configures them (lm_eval/tasks/*, version 0.4.13;
// ../shared/reference/formats.md §5), reading the files a user exports with `datasets`:
//   DATA_DIR/<task>/<split>.jsonl   e.g. data/hellaswag/validation.jsonl and data/hellaswag/train.jsonl
// lambada_openai (test; few-shot pool: test), hellaswag (validation; train), piqa (validation; train),
// arc_easy / arc_challenge (test; train), winogrande (validation; train), mmlu (the `all` config's test.jsonl
// and dev.jsonl, split by each row's `subject` into the mmlu_<subject> tasks; few-shot: the subject's first
// dev rows; group `mmlu` = size-weighted mean).
#include "eval/task.h"

#include <string>
#include <vector>

namespace mft::eval {

// "lambada_openai", "hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande", "mmlu".
const std::vector<std::string>& builtin_task_names();

// The 57 MMLU subjects (lm-eval's mmlu_<subject> tasks).
const std::vector<std::string>& mmlu_subjects();

// lm-eval's MMLU category of a subject: "stem", "humanities", "social_sciences" or "other".
std::string mmlu_category(const std::string& subject);

// True for a built-in name, "mmlu" or "mmlu_<subject>".
bool is_builtin_task(const std::string& name);

// The task(s) `name` stands for: one task, or for "mmlu" one task per subject present in the files. A
// missing file is an error naming it and the `datasets` call that exports it.
std::vector<Task> load_builtin_task(const std::string& name, const std::string& data_dir);

}  // namespace mft::eval
