// `mamba-ft bench-train --model MODEL [--mode full-fp32|lora-bf16] [--seq] [--batch] [--steps] [--warmup]
// [--json]`: training tokens/s and peak memory of the trainer's step against the step's matmul roofline.
#include "bench/train_bench.h"
#include "cli_checks.h"
#include "commands.h"
#include "models/registry.h"

#include <fmt/format.h>

namespace mft::app {

Runner add_bench_train(CLI::App& app) {
  struct Args {
    std::string model;
    uint64_t seed = 0;
    bench::TrainBenchOptions opt;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-train", "Training tokens/s and peak memory against the step's matmul roofline");
  cmd->add_option("--model", a->model, "HF model folder or preset:NAME (random weights)")->required();
  cmd->add_option("--mode", a->opt.mode,
                  "full-fp32, lora-bf16 (also full-bf16, lora-fp32): what is trained, "
                  "and the autocast dtype (fp32 master weights)")
      ->capture_default_str();
  cmd->add_option("--seq", a->opt.seq, "tokens per sequence")->check(int_in(1, kMaxTokens))->capture_default_str();
  cmd->add_option("--batch", a->opt.batch, "sequences per step")->check(int_in(1, kMaxBatch))->capture_default_str();
  cmd->add_option("--steps", a->opt.steps, "timed steps (median)")
      ->check(int_in(1, kMaxRepeats))
      ->capture_default_str();
  cmd->add_option("--warmup", a->opt.warmup, "untimed steps first")
      ->check(int_in(0, kMaxRepeats))
      ->capture_default_str();
  cmd->add_option("--lora-rank", a->opt.lora_rank, "LoRA rank")->check(int_in(1, 1 << 16))->capture_default_str();
  cmd->add_option("--lora-alpha", a->opt.lora_alpha, "LoRA alpha")->capture_default_str();
  cmd->add_option("--lora-targets", a->opt.lora_targets, "LoRA target modules (default: the family's)");
  cmd->add_option("--gemm-repeats", a->opt.gemm_repeats, "best of N for each GEMM of the roofline")
      ->check(int_in(1, kMaxRepeats))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "preset initialisation seed (also LoRA init and tokens)");
  cmd->add_option("--trace", a->opt.trace_path, "profile one more step and write its Chrome trace (JSON) here");
  cmd->add_flag("--json", a->json, "one JSON object on stdout");
  return [a] {
    a->opt.seed = a->seed;
    bench::check_train_bench_options(a->opt);  // before loading a large model
    const models::MemoryEstimate need = bench::train_bench_memory(a->model, a->opt);
    models::check_memory(need, "bench-train", "lower --seq or --batch");
    auto model = models::load_model(a->model, a->seed);
    auto r = bench::run_train_bench(*model, a->opt);
    r.memory_estimate_mb = need.total() / (1024.0 * 1024.0);
    if (a->json) {
      fmt::print("{}\n", r.to_json());
    } else {
      print_train_bench(r);
    }
    return 0;
  };
}

}  // namespace mft::app
