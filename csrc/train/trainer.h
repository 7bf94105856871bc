#pragma once
// The trainer: one recipe run, start to finish (reads top to bottom in trainer.cpp).
//   output dir -> model (+ LoRA or freezing) -> precision -> data -> optimizer -> [resume] -> steps
//   (micro-batches, autocast, loss scaling, clipping, schedule) -> eval / checkpoints / metrics -> outputs.
#include "recipe/recipe.h"
#include "train/metrics_log.h"

#include <atomic>
#include <functional>
#include <string>

namespace mft::train {

struct TrainHooks {
  std::function<void(const StepMetrics&)> on_step;  // progress display
  std::function<void(const std::string&)> on_message;
  const std::atomic<bool>* stop = nullptr;  // set by SIGINT/SIGTERM: checkpoint and return
  int64_t stop_after_steps = -1;            // tests: behave as if stopped after this many steps
};

struct TrainResult {
  int64_t steps = 0;
  bool interrupted = false;
  double last_loss = 0, last_eval_loss = -1;
  double tokens_per_s = 0;  // non-padding tokens over the run's step time
  double peak_rss_over_load_mb = 0;
  std::string output_dir, final_dir;
  bool already_finished = false;  // output.resume on a finished run: nothing was done
};

// Also writes the result to output.dir/result.json (interrupted runs too).
TrainResult train(const recipe::Recipe& r, const TrainHooks& hooks = {});

// output.dir/result.json of a run (another process's); throws when missing (the run did not end).
TrainResult read_train_result(const std::string& output_dir);

}  // namespace mft::train
