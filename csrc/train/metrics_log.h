#pragma once
// Per-step training metrics appended to metrics.csv and metrics.jsonl in the output folder (one write(2)
// per line, so a crash loses nothing already logged and a full disk is an error at once; a resumed run
// first cuts both files back to its checkpoint's step, then appends), and optionally to a TensorBoard
// event file in <dir>/tensorboard/ (a resumed run adds a new file there).
#include "core/file_io.h"
#include "train/tensorboard.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mft::train {

struct StepMetrics {
  int64_t step = 0;  // optimizer steps done
  double loss = 0;   // mean over trained tokens of this step (all micro-batches)
  double lr = 0;
  double grad_norm = 0;     // before clipping
  double loss_scale = 1;    // fp16 dynamic scale (1 otherwise)
  bool skipped = false;     // non-finite gradients (fp16): no update
  double tokens_per_s = 0;  // non-padding tokens / step wall time
  double peak_rss_mb = 0;
  double memory_per_token_kb = 0;  // (peak RSS - RSS after loading) / non-padding tokens per step
  double eval_loss = -1;           // < 0: not evaluated at this step
  double elapsed_s = 0;
};

// TensorBoard scalars of a step: train/{loss, lr, grad_norm, loss_scale, tokens_per_s, peak_rss_mb,
// memory_per_token_kb}, and eval/loss when the step evaluated.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const StepMetrics& m);

// The rows of a metrics.csv / metrics.jsonl text logged at steps <= `step` (the CSV header kept).
std::string metrics_csv_up_to(const std::string& text, int64_t step);
std::string metrics_jsonl_up_to(const std::string& text, int64_t step);

class MetricsLog {
 public:
  // resume_step < 0: a new run (files started afresh); else the step of the checkpoint a run resumes.
  MetricsLog(const std::string& dir, int64_t resume_step, bool tensorboard = false);
  void write(const StepMetrics& m);
  double last_loss() const { return last_loss_; }  // of the last step logged (0 when none)

 private:
  double last_loss_ = 0;
  std::unique_ptr<AppendFile> csv_, jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // null unless asked for
};

}  // namespace mft::train
