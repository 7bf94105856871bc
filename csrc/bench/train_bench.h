#pragma once
// Training benchmark: tokens/s and peak memory of the trainer's step on random tokens, against the
// step's matmul roofline measured in the same process:
//   step     = zero_grad, forward (autocast in the mode's dtype) + cross-entropy on every token, backward,
//              global grad-norm clipping, AdamW step (what csrc/train/trainer.cpp does per step);
//   roofline = every GEMM of that step timed alone at its shape, layout and dtype (GemmTimer): the
//              forward's weight GEMMs and LM head, dX of each (all on the gradient path when the
//              embedding is trained or adapted), dW of trained weights only, and LoRA's thin GEMMs.
// On CPU the matmuls dominate a step, so roofline / step says how much of the step is anything else. The
// floor is measured again right after every timed step and each step is set against its own floor.
#include "bench/gemm_floor.h"
#include "models/causal_lm.h"
#include "models/memory_estimate.h"

#include <map>
#include <string>
#include <vector>

namespace mft::bench {

struct TrainBenchOptions {
  std::string mode = "full-fp32";  // {full|lora}-{fp32|bf16}: what is trained, and the autocast dtype
  int64_t seq = 512, batch = 1;
  int64_t steps = 5, warmup = 2;  // timed steps (median), untimed steps before them
  int64_t lora_rank = 8;
  double lora_alpha = 16;
  std::vector<std::string> lora_targets;  // empty: the family's defaults (peft::default_lora_targets)
  int gemm_repeats = 5;                   // best of N for each GEMM of the roofline
  uint64_t seed = 0;                      // LoRA init, tokens
  std::string trace_path;                 // non-empty: profile one more step, write its Chrome trace here
};

// Throws a clear error for a bad mode or size (call before loading a large model).
void check_train_bench_options(const TrainBenchOptions& o);

struct TrainBenchResult {
  std::string family, mode, method, dtype;
  int threads = 0;
  int64_t batch = 0, seq = 0, steps = 0, warmup = 0;
  int64_t parameters = 0, trained_parameters = 0;
  int64_t lora_rank = 0;
  double lora_alpha = 0;
  std::vector<std::string> lora_targets;
  std::vector<double> step_times_s;                       // every timed step
  double step_s = 0, tokens_per_s = 0;                    // median step
  double forward_s = 0, backward_s = 0, optimizer_s = 0;  // medians of the step's parts
  double loss_first = 0, loss_last = 0;
  double gemm_gflop = 0;  // matmul work of one step
  // Floors measured after each timed step; roofline_* are their medians, roofline_pct the median of
  // the per-step ratios floor / step (roofline_pct_per_step).
  double roofline_s = 0, roofline_forward_s = 0, roofline_backward_s = 0, roofline_pct = 0;
  std::vector<double> roofline_pct_per_step;
  std::map<std::string, double> gemm_gflops;  // measured rate per dtype over the step's GEMMs of that dtype
  // The step's selective scans timed alone (0 without any), and the roofline share a step could reach
  // if nothing but the matmuls and the scans took time: roofline_s / (roofline_s + scan_s).
  double scan_s = 0, roofline_pct_max = 0;
  double rss_after_load_mb = 0, peak_rss_over_load_mb = 0, memory_per_token_kb = 0;
  // The memory check's estimate made before loading (train_bench_memory), and the measured peak it is
  // compared with: RSS after load + the steps' peak over it.
  double memory_estimate_mb = 0, peak_rss_mb = 0;
  std::string to_json() const;
};

// What this benchmark of model `spec` needs (models/memory_estimate.h), from its config: checked before
// loading it, reported beside the measured peak.
models::MemoryEstimate train_bench_memory(const std::string& spec, const TrainBenchOptions& o);

// Sets the model up for the mode (LoRA adapters with a frozen base, or everything trained), then runs
// warmup + steps training steps and the roofline. `rss_after_load_mb` is measured after the set-up,
// and the peak is reset there.
TrainBenchResult run_train_bench(models::CausalLM& model, const TrainBenchOptions& options);

// Human-readable report.
void print_train_bench(const TrainBenchResult& r);

}  // namespace mft::bench
