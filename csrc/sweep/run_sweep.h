#pragma once
// `mamba-ft sweep`: prepare runs -> every point (point_run.h; finished points skipped, failures recorded
// and the sweep goes on) -> stability stage -> tables. The sweep folder (sweep.output_dir):
//   sweep.yaml                      the sweep file as run (command-line overrides in a comment)
//   points/<id>/                    each point's training output, eval.json and point.json
//   stability/<family>/*.json       stability_stage.h
//   tables/<table>.md, .csv         divergence, icl, lora_spread, throughput (aggregate.h)
//   summary.md                      every table in one Markdown file
//   summary.json                    everything `mamba-ft report` draws:
//     {"format": "mamba-ft-sweep/1", "name", "sweep_file", "axes": [{"name", "values": [labels]}],
//      "family_axis", "seed_axis" (or null), "reference": {axis: label} (or null), "pairs": {family: family},
//      "points": [{"id", "dir": "points/<id>", "axes", "config", "status": "ok"|"failed"|"interrupted"|"pending",
//                  "error", "seconds", "train": {...} (or null), "eval": "points/<id>/eval.json" (or null)}],
//      "tables": {...}, "stability": {family: {"perturbation"|"lyapunov"|"precision": path}}, "elapsed_s"}
#include "recipe/sweep_spec.h"
#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace mft::sweep {

struct SweepHooks {
  std::function<void(const std::string&)> on_message;
  // Before each point: (1-based index, number of points, the point, "run" | "resume" | "skip").
  std::function<void(size_t, size_t, const recipe::SweepPoint&, const std::string&)> on_point;
  // After each point: its point.json, and whether it was skipped (done earlier) rather than run.
  std::function<void(const nlohmann::json& record, bool skipped)> on_point_done;
  train::TrainHooks train;  // progress and the stop flag, passed to every training run in this process
  // How to run a training recipe; default: train::train(recipe, train) in this process.
  std::function<train::TrainResult(const recipe::Recipe&)> run_training;
};

struct SweepResult {
  size_t ok = 0, failed = 0, skipped = 0, pending = 0;
  bool interrupted = false;
  std::string summary_path;
  nlohmann::json summary;
};

SweepResult run_sweep(const recipe::SweepSpec& spec, const std::string& sweep_file_text, const SweepHooks& hooks);

// Only the tables and summary of what the folder holds now (no training; elapsed_s kept from the last run):
// `mamba-ft sweep --aggregate`.
SweepResult summarize_sweep(const recipe::SweepSpec& spec);

}  // namespace mft::sweep
