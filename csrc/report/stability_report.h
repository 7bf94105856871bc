#pragma once
// Report sections for the stability analyses of `mamba-ft stability perturb|lyapunov|precision --output F`:
// perturbation growth, Lyapunov exponents per layer and precision divergence, one chart set per input.
#include <filesystem>
#include <string>
#include <vector>

namespace mft::report {

struct StabilityInput {
  std::string label;           // what the charts call it (a sweep's family, or a run's file name)
  std::string kind;            // "perturbation", "lyapunov" or "precision"
  std::filesystem::path path;  // a missing file is reported in its section, not thrown
};

// Sections with ids stability-perturbation, stability-lyapunov and stability-precision; a kind without
// inputs gets its section with a note saying so. Throws naming the file when one is not valid JSON.
std::string stability_sections(const std::vector<StabilityInput>& inputs);

}  // namespace mft::report
