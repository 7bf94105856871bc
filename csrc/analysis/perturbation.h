#pragma once
// The paper's perturbation experiment (E1, ../shared/reference/paper.md §3): for many random blocks of a
// family with its default initialisation, run F^N(x0, u1, u2, ...) and F^N(x0 + ε, u1 + ε, u2, ...) with the
// same weights and later inputs, record the largest deviation of the outputs (and of the recurrent state)
// at every step, and fit its exponential rate. Mamba and Mamba-2 blocks run as recurrences from their
// (conv, SSM) state; a Transformer (GPT-NeoX) block has no state, so its first token's input is perturbed
// and the deviation at later positions comes through attention.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mft::analysis {

struct PerturbationOptions {
  std::string preset = "mamba-tiny";  // the block geometry and initialisation (layer 0 of this preset)
  int64_t blocks = 100;               // random blocks (model seeds 0..blocks-1)
  int64_t steps = 64;                 // N
  std::vector<double> eps = {1e-6, 1e-4, 1e-2};
  uint64_t input_seed = 0;
};

struct PerturbationCurve {
  double eps = 0;
  // Per block: least-squares slope per step of log(deviation) — of the recurrent state for Mamba and Mamba-2
  // (from step 4 on, once the perturbed conv window has passed), of the output for Transformers.
  std::vector<double> rates;
  std::vector<double> median_output;  // per step: median over blocks of max |y - y'| / ε
  std::vector<double> median_state;   // per step: median over blocks of max |h - h'| / ε (empty without a state)
  double median_rate = 0, mean_rate = 0;
  double fraction_decaying = 0;  // blocks with rate < 0
};

struct PerturbationResult {
  std::string family, preset;
  int64_t blocks = 0, steps = 0;
  std::vector<PerturbationCurve> curves;  // one per ε
  nlohmann::json to_json() const;
};

PerturbationResult perturbation_experiment(const PerturbationOptions& options);

// Least-squares slope of log(values[t]) over t = first..end (values <= 0 skipped); 0 with < 2 points.
double log_slope(const std::vector<double>& values, int64_t first = 1);

}  // namespace mft::analysis
