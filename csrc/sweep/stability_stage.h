#pragma once
// The sweep's stability stage (sweep.stability): per family, on the tuned model of its reference
// configuration (first seed; the family's first finished point when there is no reference):
//   stability/<family>/perturb.json    perturbation experiment on random blocks of sweep.stability.presets[family]
//   stability/<family>/lyapunov.json   exact λ̂ per layer + Benettin estimates (Mamba and Mamba-2 only)
//   stability/<family>/precision.json  fp32 vs bf16/fp16 autocast and pure half, per layer and position
// in the JSON shapes `mamba-ft stability ... --output` writes. A file already written with the same settings
// (its "settings" object) is kept. Returns {"<family>": {"perturbation": path, "lyapunov": path,
// "precision": path}} with paths relative to the sweep folder.
#include "sweep/aggregate.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mft::sweep {

nlohmann::json run_stability(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes,
                             const std::function<void(const std::string&)>& say);

}  // namespace mft::sweep
