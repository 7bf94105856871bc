#include "bench/model_bench.h"

#include "models/registry.h"

#include "bench/gemm_floor.h"
#include "core/memory.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>

namespace mft::bench {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

models::MemoryEstimate model_bench_memory(const std::string& spec, const ModelBenchOptions& o, at::ScalarType dtype) {
  return models::estimate_inference(models::model_footprint(spec), 1, o.prompt_tokens + o.decode_tokens, dtype);
}

ModelBenchResult run_model_bench(models::CausalLM& model, const ModelBenchOptions& o) {
  at::NoGradGuard no_grad;
  ModelBenchResult r;
  r.rss_after_load_mb = rss_mb();
  reset_peak_rss();
  r.family = model.family();
  const auto params = model.parameters();
  const auto opts = params.front().options();
  r.dtype = c10::toString(opts.dtype().toScalarType());
  r.threads = at::get_num_threads();
  std::set<const void*> seen;
  double param_bytes = 0;
  for (const auto& p : params) {
    if (seen.insert(p.data_ptr()).second) {
      r.parameters += p.numel();
      param_bytes += double(p.nbytes());
    }
  }
  at::manual_seed(0);
  const int64_t V = model.vocab_size();
  const at::Tensor prompt = at::randint(0, V, {1, o.prompt_tokens}, opts.dtype(at::kLong));

  // Prefill: the whole prompt into a fresh cache (what generation does first).
  model.forward_cached(prompt.narrow(1, 0, 8), *model.new_cache(1));  // warm-up
  r.prefill_s = best_of(o.repeats, [&] { model.forward_cached(prompt, *model.new_cache(1)); });
  r.prefill_tokens_per_s = double(o.prompt_tokens) / r.prefill_s;

  // Decode: one token at a time after the prompt.
  auto cache = model.new_cache(1);
  at::Tensor logits = model.forward_cached(prompt, *cache);
  at::Tensor next = logits.select(1, -1).argmax(-1, true);                                               // (1, 1)
  for (int i = 0; i < 2; ++i) next = model.forward_cached(next, *cache).select(1, -1).argmax(-1, true);  // warm-up
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < o.decode_tokens; ++i)
    next = model.forward_cached(next, *cache).select(1, -1).argmax(-1, true);
  r.decode_s_per_token = std::chrono::duration<double>(Clock::now() - t0).count() / double(o.decode_tokens);
  r.decode_tokens_per_s = 1.0 / r.decode_s_per_token;
  r.peak_rss_over_load_mb = peak_rss_mb() - r.rss_after_load_mb;
  r.peak_rss_mb = r.rss_after_load_mb + r.peak_rss_over_load_mb;

  // Prefill floor: every matmul of the forward timed alone (same shapes, dtype, threads).
  bool tied = false;
  GemmTimer timer(std::max(o.repeats, 5));
  double flops = 0;
  for (const auto& [name, w] : gemm_weights(model, &tied)) {
    const Gemm g = linear_forward(o.prompt_tokens, w.size(1), w.size(0), w.scalar_type());
    r.prefill_gemm_floor_s += timer.seconds(g);
    flops += g.flops();
  }
  r.gemm_gflops = flops / r.prefill_gemm_floor_s / 1e9;

  // Decode floor: every weight once per token (the embedding: one row, unless it is also the head).
  r.weight_bytes_per_token = param_bytes;
  if (!tied) {
    for (const auto& [name, t] : model.hf_state_dict()) {
      if (name.find("embeddings.weight") != std::string::npos || name.find("embed_in") != std::string::npos)
        r.weight_bytes_per_token -= double(t.nbytes());
    }
  }
  {
    // Read bandwidth: a sum over 512 MiB (far beyond the caches), best of 5.
    const at::Tensor big = at::ones({int64_t(128) << 20}, at::kFloat);
    big.sum();
    const double s = best_of(5, [&] { big.sum().item<float>(); });
    r.read_gb_per_s = double(big.nbytes()) / s / 1e9;
  }
  r.decode_floor_s_per_token = r.weight_bytes_per_token / (r.read_gb_per_s * 1e9);
  return r;
}

std::string ModelBenchResult::to_json() const {
  nlohmann::json j{{"family", family},
                   {"dtype", dtype},
                   {"threads", threads},
                   {"parameters", parameters},
                   {"prefill_s", prefill_s},
                   {"prefill_tokens_per_s", prefill_tokens_per_s},
                   {"prefill_gemm_floor_s", prefill_gemm_floor_s},
                   {"gemm_gflops", gemm_gflops},
                   {"decode_s_per_token", decode_s_per_token},
                   {"decode_tokens_per_s", decode_tokens_per_s},
                   {"weight_bytes_per_token", weight_bytes_per_token},
                   {"read_gb_per_s", read_gb_per_s},
                   {"decode_floor_s_per_token", decode_floor_s_per_token},
                   {"rss_after_load_mb", rss_after_load_mb},
                   {"peak_rss_over_load_mb", peak_rss_over_load_mb},
                   {"memory_estimate_mb", memory_estimate_mb},
                   {"peak_rss_mb", peak_rss_mb}};
  return j.dump();
}

void print_model_bench(const ModelBenchResult& r) {
  fmt::print("{} {} ({:.1f} M parameters), {} threads\n", r.family, r.dtype, r.parameters / 1e6, r.threads);
  fmt::print("  prefill  {:8.1f} tokens/s   {:.3f} s; matmul floor {:.3f} s ({:.1f} GFLOP/s) -> {:.0f}% of floor\n",
             r.prefill_tokens_per_s, r.prefill_s, r.prefill_gemm_floor_s, r.gemm_gflops,
             100.0 * r.prefill_gemm_floor_s / r.prefill_s);
  fmt::print(
      "  decode   {:8.1f} tokens/s   {:.2f} ms/token; floor {:.2f} ms ({:.0f} MB at {:.1f} GB/s) -> {:.0f}% of floor\n",
      r.decode_tokens_per_s, 1e3 * r.decode_s_per_token, 1e3 * r.decode_floor_s_per_token,
      r.weight_bytes_per_token / 1e6, r.read_gb_per_s, 100.0 * r.decode_floor_s_per_token / r.decode_s_per_token);
  fmt::print(
      "  memory   RSS after load {:.0f} MiB, peak during prefill+decode +{:.0f} MiB; peak {:.0f} MiB vs {:.0f} "
      "MiB estimated before loading\n",
      r.rss_after_load_mb, r.peak_rss_over_load_mb, r.peak_rss_mb, r.memory_estimate_mb);
}

}  // namespace mft::bench
