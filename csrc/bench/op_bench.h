#pragma once
// Op benchmark harness: times mft::selective_scan, mft::causal_conv1d and mft::lora_linear forward and
// forward+backward, against (a) the machine's vectorised exp rate measured in the same run (the scan's
// physical floor: one exp per (batch, dim, seqlen, dstate)) and (b) the eager references (a loop of ATen
// ops over time; for lora_linear the plain formula in the activations' dtype) run in the same process.
// Not a test: it reports, it asserts nothing.
#include <algorithm>
#include <string>
#include <vector>

namespace mft::bench {

struct BenchOptions {
  std::vector<int64_t> batches{1, 4};
  std::vector<int64_t> seqlens{512, 2048};
  int64_t dim = 1536;  // Mamba-130m: d_inner = 2 * 768
  int64_t dstate = 16;
  int64_t conv_width = 4;
  std::string dtype = "fp32";
  int repeats = 5;        // timed repeats per measurement (median reported)
  int eager_repeats = 1;  // the eager baseline is slow: fewer repeats
  bool eager = true;
  std::string csv_path;  // also write rows as CSV when set
};

struct BenchRow {
  std::string op, shape, dtype;
  double fwd_ms = 0, fwdbwd_ms = 0;              // optimised op (median)
  double eager_fwd_ms = 0, eager_fwdbwd_ms = 0;  // eager reference (0 when skipped)
  double fwd_gbps = 0;                           // minimum bytes moved / forward time
  double floor_ms = 0;                           // exp floor (scan only)
  double extra_mem_mb = 0;                       // fwd+bwd workspace beyond inputs, out and grads
  double naive_state_mb = 0;                     // what storing every state would take (B*D*L*N*4)
};

struct ExpRate {
  double ours_per_s = 0;   // simd::vexp
  double ours2_per_s = 0;  // simd::vexp2 (what the scan uses)
  double aten_per_s = 0;   // at::exp on a large tensor
  double best() const { return std::max({ours_per_s, ours2_per_s, aten_per_s}); }
};

ExpRate measure_exp_rate();
std::vector<BenchRow> run_op_bench(const BenchOptions& opt, const ExpRate& rate);
// Prints the machine line, the table and the ratios; writes CSV when asked.
void report(const BenchOptions& opt, const ExpRate& rate, const std::vector<BenchRow>& rows);

}  // namespace mft::bench
