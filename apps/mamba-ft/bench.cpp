// `mamba-ft bench`: the op benchmark (selective scan and causal conv1d at Mamba-130m geometry).
#include "bench/op_bench.h"
#include "cli_checks.h"
#include "commands.h"

#include <memory>

namespace mft::app {

Runner add_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "Time the ops against the exp floor and the eager references");
  auto opt = std::make_shared<bench::BenchOptions>();
  sub->add_option("--batch", opt->batches, "Batch sizes")->check(int_in(1, kMaxBatch))->capture_default_str();
  sub->add_option("--seqlen", opt->seqlens, "Sequence lengths")->check(int_in(1, kMaxTokens))->capture_default_str();
  sub->add_option("--dim", opt->dim, "Channels (d_inner)")->check(int_in(1, 1 << 16))->capture_default_str();
  sub->add_option("--dstate", opt->dstate, "State size")->check(int_in(1, 1024))->capture_default_str();
  sub->add_option("--dtype", opt->dtype, "fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  sub->add_option("--repeats", opt->repeats, "Timed repeats (median)")
      ->check(int_in(1, kMaxRepeats))
      ->capture_default_str();
  sub->add_option("--eager-repeats", opt->eager_repeats, "Timed repeats of the eager baseline")
      ->check(int_in(1, kMaxRepeats))
      ->capture_default_str();
  sub->add_flag("!--no-eager", opt->eager, "Skip the eager baseline");
  sub->add_option("--csv", opt->csv_path, "Also write the rows to this CSV file");
  return [opt] {
    const auto rate = bench::measure_exp_rate();
    bench::report(*opt, rate, bench::run_op_bench(*opt, rate));
    return 0;
  };
}

}  // namespace mft::app
