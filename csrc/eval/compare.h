#pragma once
// The paper's metrics over evaluation results (../shared/reference/paper.md §4-5), from the results JSON
// `mamba-ft eval` writes:
//  - divergence of a run from a reference run (e.g. bf16 LoRA vs fp32 full fine-tuning): per task, the mean
//    over the shot counts both have of |acc - acc_ref|, in points; a (task, run) diverging by more than
//    1 point is a spike;
//  - ICL improvement of a run: per task, the mean over k in {1, 3, 5} (those evaluated) of acc_k - acc_0,
//    in points; and the ICL ratio of a model against its paired Transformer (mamba-130m vs pythia-160m):
//    100 * improvement / paired improvement, in percent.
// The accuracy is each task's headline metric as the paper reports it (acc_norm for hellaswag and
// arc_challenge, acc otherwise) unless one is chosen. With several few-shot seeds every number is a mean
// with a 95 % confidence interval (Student t) over the seeds.
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mft::eval {

struct MeanCi {
  double mean = 0, half_width = 0;  // mean ± half_width (95 %); half_width 0 for one value
  int64_t n = 0;
};
MeanCi mean_ci(const std::vector<double>& xs);
// Student t quantile 0.975 for `df` degrees of freedom (1.96 beyond 30).
double t95(int64_t df);

// acc_norm for hellaswag and arc_challenge, acc for the rest (mmlu, piqa, winogrande, lambada, ...).
std::string headline_metric(const std::string& task);

// One results file: per seed, per shot count, per task, the metrics.
struct RunResults {
  std::string label;                                    // file stem unless given
  std::map<std::string, nlohmann::json> shots_by_seed;  // seed -> {"0": {"results": ...}, ...}
};
RunResults read_results(const std::string& path, const std::string& label = "");

struct DivergenceRow {
  std::string run, task, metric;
  MeanCi divergence;   // points
  bool spike = false;  // mean divergence > 1 point
};
// Divergence of each run from the reference, per task both evaluated. `metric`: "" for the headline metric.
std::vector<DivergenceRow> divergence(const RunResults& reference, const std::vector<RunResults>& runs,
                                      const std::string& metric = "");

struct IclRow {
  std::string run, task, metric;
  MeanCi improvement;           // points
  std::optional<MeanCi> ratio;  // percent, against the paired run (when given and its improvement is not 0)
};
// ICL improvement per task of `run` (tasks with 0-shot and some of 1/3/5-shot), and the ratio against
// `paired` when given.
std::vector<IclRow> icl(const RunResults& run, const RunResults* paired, const std::string& metric = "");

// Markdown and CSV renderings.
std::string divergence_markdown(const std::vector<DivergenceRow>& rows);
std::string divergence_csv(const std::vector<DivergenceRow>& rows);
std::string icl_markdown(const std::vector<IclRow>& rows);
std::string icl_csv(const std::vector<IclRow>& rows);

}  // namespace mft::eval
