#include "models/memory_estimate.h"

#include "core/memory.h"
#include "core/system_limits.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace mft::models {
namespace {
// Refused only this far above the budget: estimates are within 30 % of measured peaks, and a job slightly
// over a soft limit may still fit once the page cache gives way.
constexpr double kRefuseAbove = 1.2;
// MKL/oneDNN buffers and allocator slack beyond the tensors counted here: bench-model and bench-train
// at 130M parameters peaked 60-170 MiB above their tensors.
constexpr double kWorkspaceBytes = 128.0 * 1024 * 1024;

double bytes_of(at::ScalarType t) {
  return double(c10::elementSize(t));
}

std::string gib(double bytes) {
  std::ostringstream s;
  s.precision(bytes >= 10.0 * (1 << 30) ? 0 : 2);
  s << std::fixed << bytes / double(1 << 30);
  return s.str();
}

MemoryEstimate base(const ModelFootprint& f) {
  MemoryEstimate e;
  e.parts.emplace_back("this process now", rss_mb() * 1024 * 1024);
  e.parts.emplace_back("weights (fp32)", double(f.parameters) * 4);
  return e;
}
}  // namespace

double MemoryEstimate::total() const {
  double t = 0;
  for (const auto& [what, bytes] : parts) t += bytes;
  return t;
}

std::string MemoryEstimate::describe() const {
  std::string s = format_bytes(total()) + " =";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].second == 0) continue;
    s += (i == 0 ? " " : parts[i].second < 0 ? " - " : " + ") + parts[i].first + " " + gib(std::abs(parts[i].second));
  }
  return s + " GiB";
}

MemoryEstimate estimate_weights(const ModelFootprint& f) {
  return base(f);
}

// fp32 logits and one more (vocab)-sized tensor per token (log-softmax, or the cast to fp32): measured
// +0.38 MiB per token at vocab 50280 (bench-model, 128 -> 2048 prompt tokens).
double logits_bytes(int64_t vocab, double tokens) {
  return tokens * double(vocab) * 4 * 2;
}

MemoryEstimate estimate_inference(const ModelFootprint& f, int64_t batch, int64_t tokens, at::ScalarType dtype) {
  MemoryEstimate e = base(f);
  const double bt = double(batch) * double(tokens);
  const double logits = logits_bytes(f.vocab, bt);
  const double caches = bt * double(f.layers) * f.cache_bytes_per_token_layer +
                        double(batch) * double(f.layers) * f.state_bytes_per_sequence_layer;
  e.parts.emplace_back("logits", logits);
  e.parts.emplace_back("caches", caches);
  e.parts.emplace_back("workspace", kWorkspaceBytes);
  // Cast to bf16/fp16 after building, the weights leave (4 - size) bytes each free in the heap, which the
  // forward passes reuse (bench-model bf16 at 130-160M parameters: the peak is that of the fp32 build).
  const double freed = double(f.parameters) * (4 - bytes_of(dtype));
  e.parts.emplace_back("freed fp32 weights reused", -std::min(freed, logits + caches + kWorkspaceBytes));
  return e;
}

MemoryEstimate estimate_logits(int64_t vocab, int64_t batch, int64_t tokens) {
  MemoryEstimate e;
  e.parts.emplace_back("this process now", rss_mb() * 1024 * 1024);
  e.parts.emplace_back("logits", logits_bytes(vocab, double(batch) * double(tokens)));
  e.parts.emplace_back("workspace", kWorkspaceBytes);
  return e;
}

MemoryEstimate estimate_training(const ModelFootprint& f, const TrainingShape& s) {
  MemoryEstimate e = base(f);
  const double lora_params = s.lora ? double(s.lora_rank) * f.lora_features : 0;
  const double trained = s.lora ? lora_params : double(f.parameters);
  const double frozen = s.lora ? double(f.parameters) : 0;
  if (s.lora) e.parts.emplace_back("adapters", lora_params * 4);
  // Autocast keeps a low-precision copy of each frozen weight for the run (core/cast_cache.h); pure_half
  // stores them in that dtype instead (the fp32 build is freed, but stays in the heap).
  if (s.dtype != at::kFloat && !s.pure_half) e.parts.emplace_back("low-precision copies", frozen * bytes_of(s.dtype));
  e.parts.emplace_back("gradients", trained * 4);
  e.parts.emplace_back("optimizer state", trained * 4 * (s.optimizer == "sgd" ? 1 : 2));
  const double bt = double(s.batch) * double(s.seq);
  e.parts.emplace_back("activations", bt * double(f.layers) * f.train_bytes_per_token_layer);
  e.parts.emplace_back("logits and their gradient", bt * double(f.vocab) * bytes_of(s.dtype) * 2);
  e.parts.emplace_back("workspace", kWorkspaceBytes);
  return e;
}

void check_memory(const MemoryEstimate& e, const std::string& who, const std::string& lower) {
  const char* off = std::getenv("MFT_IGNORE_MEMORY_CHECK");
  if (off != nullptr && off[0] != '\0' && off[0] != '0') return;
  const MemoryBudget budget = memory_budget();
  TORCH_CHECK(e.total() <= kRefuseAbove * double(budget.bytes), who, " needs about ", e.describe(),
              ", but this process may use ", budget.describe(), "; ", lower, ", or pass --ignore-memory-check");
}

void ignore_memory_check() {
  ::setenv("MFT_IGNORE_MEMORY_CHECK", "1", 1);
}

}  // namespace mft::models
