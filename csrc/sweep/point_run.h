#pragma once
// One sweep point: train its recipe, evaluate what it trained (the recipe's `eval` section), record the
// outcome in <point dir>/point.json:
//   {"id", "axes": {axis: label}, "config", "status": "ok" | "failed" | "interrupted", "error", "seconds",
//    "recipe": the resolved recipe YAML, "train": {"steps", "last_loss", "last_eval_loss", "tokens_per_s",
//    "peak_rss_over_load_mb", "memory_per_token_kb" (max over steps)}, "eval": "eval.json" (or null)}
// A point already recorded "ok" with the same resolved recipe is skipped; an interrupted one resumes from
// its checkpoint; anything else starts over. Errors are recorded, not thrown.
#include "models/causal_lm.h"
#include "recipe/sweep_spec.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace mft::sweep {

struct PointRunResult {
  nlohmann::json record;  // as written to point.json
  bool skipped = false;   // finished earlier with the same recipe
  bool interrupted = false;
};

// Runs one training recipe (train::train in this process, or `mamba-ft train` in a child process, which
// measures each run's memory from a fresh heap and survives a crash of the run).
using TrainRunner = std::function<train::TrainResult(const recipe::Recipe&)>;

PointRunResult run_point(const recipe::SweepSpec& spec, const recipe::SweepPoint& point,
                         const TrainRunner& run_training, const std::function<void(const std::string&)>& say);

// point.json of a point folder (null when absent or unreadable).
nlohmann::json read_point_record(const std::string& point_dir);

// What a recipe trained, ready to run: output.dir/final when it exists, else model.path with the adapter
// in output.dir/adapter. fp32, eval mode.
struct TunedModel {
  std::shared_ptr<models::CausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string path;  // the model folder (or preset) loaded
};
TunedModel load_tuned_model(const recipe::Recipe& r);

// Writes `text` to `path` atomically (temporary file + rename).
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace mft::sweep
