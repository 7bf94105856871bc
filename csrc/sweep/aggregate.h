#pragma once
// The paper's tables over a sweep's finished points (../shared/reference/paper.md §4.4-4.7), each number a
// mean ± 95 % CI (Student t) over the seed axis:
//  - divergence: per configuration and task, div = mean over the shot counts both have of
//    |acc - acc_ref| (points) against the point with the reference labels and the same seed (and family);
//    "all" = mean over tasks; spikes = seeds with div > 1 point;
//  - icl: accuracy by shot count, ICL improvement (mean over k in {1,3,5} of acc_k - acc_0) and, for a
//    family with a pair, the ratio 100 * improvement / the paired family's improvement (same other labels,
//    same seed);
//  - lora_spread: per family, over its LoRA configurations, the spread (max - min, and std) of the mean
//    accuracy (over tasks and shots, then seeds) — the paper's LoRA-hyperparameter sensitivity — and the
//    spread within each seed, mean ± CI over seeds;
//  - throughput: tokens/s, max memory/token and peak memory over the loaded model during training, and the
//    ratio to the family's reference configuration.
// Accuracies are percent of each task's headline metric (eval/compare.h: acc_norm for hellaswag and
// arc_challenge, acc otherwise), averaged over the few-shot seeds of an evaluation.
#include "recipe/sweep_spec.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace mft::sweep {

struct PointOutcome {
  const recipe::SweepPoint* point = nullptr;
  nlohmann::json record;  // point.json ("status", "train", ...); null when the point has not run
  nlohmann::json eval;    // its eval.json; null when missing
  bool lora = false;      // the point's recipe tunes LoRA adapters
};

// summary["tables"]: {"divergence": [...], "icl": [...], "lora_spread": [...], "throughput": [...]} (rows as
// described in sweep/summary.h).
nlohmann::json aggregate_tables(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes);

// Markdown and CSV of one table (name: divergence | icl | lora_spread | throughput).
std::string table_markdown(const std::string& name, const nlohmann::json& rows);
std::string table_csv(const std::string& name, const nlohmann::json& rows);

// Percent accuracy on `task` at `shots` shots (mean over few-shot seeds); NaN when absent.
double accuracy(const nlohmann::json& eval, const std::string& task, const std::string& shots);

}  // namespace mft::sweep
