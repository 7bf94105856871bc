// `mamba-ft bench-model --model MODEL [--dtype] [--prompt-tokens] [--decode-tokens] [--json]`: prefill and
// decode speed of a model against its measured matmul and memory-bandwidth floors.
#include "bench/model_bench.h"
#include "cli_checks.h"
#include "commands.h"
#include "model_args.h"
#include "models/registry.h"

#include <fmt/format.h>

namespace mft::app {

Runner add_bench_model(CLI::App& app) {
  struct Args {
    std::string model, dtype = "fp32";
    uint64_t seed = 0;
    bench::ModelBenchOptions opt;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-model", "Prefill and decode tokens/s against the GEMM and bandwidth floors");
  cmd->add_option("--model", a->model, "HF model folder or preset:NAME")->required();
  cmd->add_option("--dtype", a->dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--seed", a->seed, "preset initialisation seed");
  cmd->add_option("--prompt-tokens", a->opt.prompt_tokens, "prefill length")
      ->check(int_in(1, kMaxTokens))
      ->capture_default_str();
  cmd->add_option("--decode-tokens", a->opt.decode_tokens, "timed decode steps")
      ->check(int_in(1, kMaxTokens))
      ->capture_default_str();
  cmd->add_option("--repeats", a->opt.repeats, "best of N prefills")
      ->check(int_in(1, kMaxRepeats))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "one JSON object on stdout");
  return [a] {
    const models::MemoryEstimate need = bench::model_bench_memory(a->model, a->opt, models::parse_dtype(a->dtype));
    models::check_memory(need, "bench-model", "lower --prompt-tokens or --decode-tokens");
    auto model = models::load_model(a->model, a->seed);
    models::cast_model(*model, models::parse_dtype(a->dtype));
    model->eval();
    auto r = bench::run_model_bench(*model, a->opt);
    r.memory_estimate_mb = need.total() / (1024.0 * 1024.0);
    if (a->json) {
      fmt::print("{}\n", r.to_json());
    } else {
      print_model_bench(r);
    }
    return 0;
  };
}

}  // namespace mft::app
