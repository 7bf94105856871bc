#pragma once
// Model-level benchmark: prefill tokens/s (one prompt) and batch-1 decode tokens/s of a CausalLM,
// against the physical floors measured in the same process:
//   prefill floor = the forward's matmuls, each timed alone at its shape and dtype (GEMM-bound);
//   decode floor  = weight bytes read per token / read bandwidth of a large streaming pass.
#include "models/causal_lm.h"
#include "models/memory_estimate.h"

#include <string>

namespace mft::bench {

struct ModelBenchOptions {
  int64_t prompt_tokens = 512;
  int64_t decode_tokens = 64;
  int repeats = 3;  // best of
};

struct ModelBenchResult {
  std::string family, dtype;
  int threads = 0;
  int64_t parameters = 0;
  double prefill_s = 0, prefill_tokens_per_s = 0, prefill_gemm_floor_s = 0, gemm_gflops = 0;
  double decode_s_per_token = 0, decode_tokens_per_s = 0, weight_bytes_per_token = 0, read_gb_per_s = 0;
  double decode_floor_s_per_token = 0;
  double rss_after_load_mb = 0, peak_rss_over_load_mb = 0;
  // The memory check's estimate made before loading (model_bench_memory) and the measured peak it is
  // compared with: RSS after load + the peak over it.
  double memory_estimate_mb = 0, peak_rss_mb = 0;
  std::string to_json() const;
};

// What this benchmark of model `spec` needs (models/memory_estimate.h), from its config.
models::MemoryEstimate model_bench_memory(const std::string& spec, const ModelBenchOptions& o, at::ScalarType dtype);

// `rss_after_load_mb` is measured when this is called (right after loading).
ModelBenchResult run_model_bench(models::CausalLM& model, const ModelBenchOptions& options);

// Human-readable report.
void print_model_bench(const ModelBenchResult& r);

}  // namespace mft::bench
