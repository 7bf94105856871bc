#pragma once
// lm-evaluation-harness's per-document metrics and their aggregation (lm_eval/api/task.py process_results,
// lm_eval/api/metrics.py, lm_eval/evaluator_utils.py):
//   acc       = argmax(ll) == gold                 (first maximum on ties, as np.argmax)
//   acc_norm  = argmax(ll / len(choice in characters)) == gold
//   acc_bytes = argmax(ll / len(choice in UTF-8 bytes)) == gold
//   lambada:  acc = mean(is_greedy), perplexity = exp(-mean(ll))
// Means carry the standard error sample_stddev / sqrt(n); perplexity's is lm-eval's bootstrap (resamples
// drawn with Python's random.Random(i).choices in chunks of 1000, i = 0, 1, ...), reproduced draw for draw.
// A standard error of fewer than two values is "N/A", as lm-eval prints it.
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace mft::eval {

// Unicode characters (code points) of valid UTF-8, i.e. Python's len(str).
int64_t python_len(const std::string& s);

// Index of the first maximum of values[i] / divisors[i] (divisors empty: of values).
int64_t argmax(const std::vector<double>& values, const std::vector<double>& divisors = {});

double mean(const std::vector<double>& xs);
double sample_stddev(const std::vector<double>& xs);  // Bessel-corrected
double perplexity(const std::vector<double>& lls);    // exp(-mean)

// lm-eval's bootstrap_stderr(perplexity, lls, iters): `iters / 1000` chunks (at least one of `iters`
// draws when iters < 1000), chunk i drawing with random.Random(i).
double bootstrap_perplexity_stderr(const std::vector<double>& lls, int64_t iters);

// A metric value and its standard error (NaN: "N/A").
struct MetricValue {
  double value = 0, stderr_value = 0;
};

// {"acc,none": v, "acc_stderr,none": s, ...} in lm-eval's key style; "N/A" for a missing stderr.
void put_metric(nlohmann::json& out, const std::string& name, const MetricValue& m);

// Mean and its standard error.
MetricValue mean_metric(const std::vector<double>& xs);

// Size-weighted mean of subtask values and lm-eval's pooled standard error (pooled_sample_stderr).
MetricValue pooled(const std::vector<MetricValue>& parts, const std::vector<int64_t>& sizes);

}  // namespace mft::eval
