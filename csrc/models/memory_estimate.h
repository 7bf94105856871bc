#pragma once
// The memory a job will need, estimated from the model's config (models/footprint.h) before anything is
// allocated, and compared with what this process may use (core/system_limits.h: the cgroup limit, else
// MemAvailable, shared among a launcher's local ranks). A job is refused only above 1.2 x that budget,
// with the estimate, its parts and the setting to lower; `mamba-ft --ignore-memory-check` (or
// MFT_IGNORE_MEMORY_CHECK=1) skips the check. The estimate includes what the process already holds, so it
// can be compared with the measured peak RSS (the bench-train and bench-model configurations within 30 %,
// tests/cli/test_memory.sh).
#include "models/footprint.h"

#include <c10/core/ScalarType.h>

#include <string>
#include <utility>
#include <vector>

namespace mft::models {

struct MemoryEstimate {
  std::vector<std::pair<std::string, double>> parts;  // (what, bytes), e.g. ("weights (fp32)", 5.2e8)
  double total() const;
  std::string describe() const;  // "2.9 GiB = this process now 0.3 + weights (fp32) 0.5 + ..."
};

// The model alone: this process now + its fp32 weights (models are built in fp32, then cast).
MemoryEstimate estimate_weights(const ModelFootprint& f);

// Forward passes over `batch` sequences of `tokens` (scoring, prefill, generation) with weights in `dtype`:
// the fp32 build, fp32 logits and their log-softmax, keys/values or recurrent states, workspace.
MemoryEstimate estimate_inference(const ModelFootprint& f, int64_t batch, int64_t tokens, at::ScalarType dtype);

// A forward pass of a model already in memory (counted in "this process now"): the logits of `batch`
// sequences of `tokens` and the workspace.
MemoryEstimate estimate_logits(int64_t vocab, int64_t batch, int64_t tokens);

struct TrainingShape {
  int64_t batch = 1, seq = 512;       // one micro-batch
  at::ScalarType dtype = at::kFloat;  // autocast dtype
  bool lora = false;
  int64_t lora_rank = 8;
  bool pure_half = false;           // frozen base weights stored in dtype
  std::string optimizer = "adamw";  // adamw: 2 states per trained weight; sgd: 1 (momentum)
};

// One training step: master weights, low-precision copies of frozen weights, gradients and optimizer state
// of what is trained, activations kept for the backward pass, logits and their gradient, workspace.
MemoryEstimate estimate_training(const ModelFootprint& f, const TrainingShape& s);

// Throws "<who> needs about X (parts) but this process may use Y (source); <lower>, or pass
// --ignore-memory-check" when e.total() > 1.2 x the budget, unless the check is switched off.
void check_memory(const MemoryEstimate& e, const std::string& who, const std::string& lower);

// --ignore-memory-check: sets MFT_IGNORE_MEMORY_CHECK=1, which child processes (sweep points) inherit.
void ignore_memory_check();

}  // namespace mft::models
