#include "bench/op_bench.h"

#include "core/simd.h"
#include "ops/causal_conv1d.h"
#include "ops/lora_linear.h"
#include "ops/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <fmt/format.h>
#include <torch/autograd.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace mft::bench {
namespace {
using Clock = std::chrono::steady_clock;

double time_ms(const std::function<void()>& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One warm-up, then the median of `repeats` timed runs.
double median_ms(const std::function<void()>& fn, int repeats) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < std::max(1, repeats); ++i) t.push_back(time_ms(fn));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Wraps LibTorch's CPU allocator to count the bytes of live tensors and their peak, so the benchmark
// can report the memory an op really allocates (outputs, gradients, workspaces). Each block's context
// is its data pointer (looked up in a table on release), as Allocator::raw_allocate requires (oneDNN's
// bf16 matmuls allocate through it).
class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) { instance_ = this; }
  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    if (data == nullptr) return inner;  // empty tensors: nothing to count
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_.emplace(data, Block{std::move(inner), n});
    }
    const int64_t now = live_ += int64_t(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, data, &CountingAllocator::release, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CountingAllocator::release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
  // Starts a measurement: the peak restarts from what is live now.
  int64_t reset_peak() { return peak_ = live_.load(); }
  int64_t peak() const { return peak_; }

 private:
  struct Block {
    c10::DataPtr inner;
    size_t bytes;
  };
  static void release(void* p) {
    CountingAllocator* self = instance_;
    c10::DataPtr inner;  // freed after the lock is released
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      auto it = self->blocks_.find(p);
      if (it == self->blocks_.end()) return;
      self->live_ -= int64_t(it->second.bytes);
      inner = std::move(it->second.inner);
      self->blocks_.erase(it);
    }
  }
  static inline CountingAllocator* instance_ = nullptr;
  c10::Allocator* base_;
  std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::atomic<int64_t> live_{0}, peak_{0};
};

CountingAllocator& counting_allocator() {
  static CountingAllocator* alloc = [] {
    auto* a = new CountingAllocator(c10::GetDefaultCPUAllocator());  // lives as long as the tensors it made
    c10::SetCPUAllocator(a, /*priority=*/1);
    return a;
  }();
  return *alloc;
}

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "fp32") return at::kFloat;
  if (s == "bf16") return at::kBFloat16;
  if (s == "fp16") return at::kHalf;
  throw std::invalid_argument("bench: dtype must be fp32, bf16 or fp16; got '" + s + "'");
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

// Mamba-like inputs: delta through softplus with a dt bias, A = -(1..N), z gate, D.
struct ScanInputs {
  at::Tensor u, delta, A, B, C, D, z, bias;
  ScanInputs(int64_t batch, int64_t dim, int64_t dstate, int64_t seqlen, at::ScalarType dt) {
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    u = at::randn({batch, dim, seqlen}, f32).to(dt);
    delta = (at::rand({batch, dim, seqlen}, f32) * 0.5 - 4.0).to(dt);
    A = -at::arange(1, dstate + 1, f32).repeat({dim, 1});
    B = at::randn({batch, 1, dstate, seqlen}, f32).to(dt);
    C = at::randn({batch, 1, dstate, seqlen}, f32).to(dt);
    D = at::ones({dim}, f32);
    z = at::randn({batch, dim, seqlen}, f32).to(dt);
    bias = at::rand({dim}, f32) - 4.0;
  }
  std::vector<at::Tensor> leaves() { return {u, delta, A, B, C, D, z, bias}; }
};

template <typename Fn>
double fwd_bwd_ms(std::vector<at::Tensor> leaves, Fn forward, int repeats) {
  for (auto& t : leaves) t.requires_grad_(true);
  return median_ms(
      [&] {
        at::Tensor out = forward();
        out.backward(at::ones_like(out));
        for (auto& t : leaves) t.mutable_grad() = at::Tensor();
      },
      repeats);
}

BenchRow bench_scan(const BenchOptions& opt, const ExpRate& rate, int64_t batch, int64_t seqlen) {
  const at::ScalarType dt = parse_dtype(opt.dtype);
  ScanInputs in(batch, opt.dim, opt.dstate, seqlen, dt);
  BenchRow row;
  row.op = "selective_scan";
  row.shape = fmt::format("b{} d{} n{} l{}", batch, opt.dim, opt.dstate, seqlen);
  row.dtype = opt.dtype;
  auto ours = [&] {
    return std::get<0>(mft::selective_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias, true));
  };
  auto eager = [&] {
    return std::get<0>(mft::reference::selective_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias, true));
  };
  {
    at::NoGradGuard no_grad;
    row.fwd_ms = median_ms([&] { ours(); }, opt.repeats);
  }
  {
    // Peak allocation of one fwd+bwd beyond the inputs, minus what any implementation must return
    // (out and one gradient per input): the op's own workspace.
    auto leaves = in.leaves();
    for (auto& t : leaves) t.requires_grad_(true);
    const int64_t before = counting_allocator().reset_peak();
    at::Tensor out = ours();
    out.backward(at::ones_like(out));
    double must = 2.0 * out.nbytes();  // out and its incoming gradient
    for (auto& t : leaves) must += t.nbytes();
    row.extra_mem_mb = (double(counting_allocator().peak() - before) - must) / (1 << 20);
    for (auto& t : leaves) {
      t.mutable_grad() = at::Tensor();
      t.requires_grad_(false);
    }
  }
  row.fwdbwd_ms = fwd_bwd_ms(in.leaves(), ours, opt.repeats);
  for (auto& t : in.leaves()) t.requires_grad_(false);
  const ScanGeometry g{batch, opt.dim, seqlen, opt.dstate, 1, true, true};
  row.floor_ms = selective_scan_exp_count(g) / rate.best() * 1e3;
  row.naive_state_mb = selective_scan_exp_count(g) * 4.0 / (1 << 20);
  row.fwd_gbps = selective_scan_fwd_bytes(in.u, in.delta, in.B, in.C, in.z) / (row.fwd_ms * 1e6);
  if (opt.eager) {
    {
      at::NoGradGuard no_grad;
      row.eager_fwd_ms = median_ms([&] { eager(); }, opt.eager_repeats);
    }
    row.eager_fwdbwd_ms = fwd_bwd_ms(in.leaves(), eager, opt.eager_repeats);
  }
  return row;
}

BenchRow bench_conv(const BenchOptions& opt, int64_t batch, int64_t seqlen) {
  const at::ScalarType dt = parse_dtype(opt.dtype);
  at::Tensor x = at::randn({batch, opt.dim, seqlen}).to(dt);
  at::Tensor w = at::randn({opt.dim, opt.conv_width}).to(dt);
  at::Tensor b = at::randn({opt.dim}).to(dt);
  BenchRow row;
  row.op = "causal_conv1d";
  row.shape = fmt::format("b{} d{} w{} l{}", batch, opt.dim, opt.conv_width, seqlen);
  row.dtype = opt.dtype;
  auto ours = [&] { return mft::causal_conv1d(x, w, b, {}, true); };
  auto eager = [&] { return mft::reference::causal_conv1d(x, w, b, {}, true); };
  {
    at::NoGradGuard no_grad;
    row.fwd_ms = median_ms([&] { ours(); }, opt.repeats);
  }
  row.fwdbwd_ms = fwd_bwd_ms({x, w, b}, ours, opt.repeats);
  for (auto* t : {&x, &w, &b}) t->requires_grad_(false);
  row.fwd_gbps = causal_conv1d_fwd_bytes(x, w) / (row.fwd_ms * 1e6);
  if (opt.eager) {
    {
      at::NoGradGuard no_grad;
      row.eager_fwd_ms = median_ms([&] { eager(); }, opt.repeats);
    }
    row.eager_fwdbwd_ms = fwd_bwd_ms({x, w, b}, eager, opt.repeats);
  }
  return row;
}

// mft::lora_linear at Mamba's in_proj geometry (dim / 2 -> 2 dim, rank 8, frozen base, fp32 adapters as the
// trainer keeps them) against the plain formula in the activations' dtype (what HF peft runs under
// autocast).
BenchRow bench_lora(const BenchOptions& opt, int64_t batch, int64_t seqlen) {
  const at::ScalarType dt = parse_dtype(opt.dtype);
  const int64_t in = opt.dim / 2, out = 2 * opt.dim, rank = 8;
  at::Tensor x = at::randn({batch, seqlen, in}).to(dt);
  const at::Tensor w = (at::randn({out, in}) * 0.03).to(dt);
  at::Tensor A = at::randn({rank, in}) * 0.03, B = at::randn({out, rank}) * 0.03;
  at::Tensor A_dt = A.to(dt), B_dt = B.to(dt);
  BenchRow row;
  row.op = "lora_linear";
  row.shape = fmt::format("b{} l{} {}->{} r{}", batch, seqlen, in, out, rank);
  row.dtype = opt.dtype;
  auto ours = [&] { return mft::lora_linear(x, w, {}, A, B, 2.0); };
  auto eager = [&] { return mft::reference::lora_linear(x, w, {}, A_dt, B_dt, 2.0); };
  {
    at::NoGradGuard no_grad;
    row.fwd_ms = median_ms([&] { ours(); }, opt.repeats);
  }
  row.fwdbwd_ms = fwd_bwd_ms({x, A, B}, ours, opt.repeats);
  row.fwd_gbps = double(x.nbytes() + w.nbytes() + x.nbytes() / in * out) / (row.fwd_ms * 1e6);
  if (opt.eager) {
    {
      at::NoGradGuard no_grad;
      row.eager_fwd_ms = median_ms([&] { eager(); }, opt.repeats);
    }
    row.eager_fwdbwd_ms = fwd_bwd_ms({x, A_dt, B_dt}, eager, opt.repeats);
  }
  return row;
}

std::string ratio(double num, double den) {
  return den > 0 && num > 0 ? fmt::format("{:.2f}", num / den) : "-";
}
}  // namespace

// Best of `repeats` runs: the floor is what the machine can do at its best.
double best_ms(const std::function<void()>& fn, int repeats) {
  fn();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) best = std::min(best, time_ms(fn));
  return best;
}

ExpRate measure_exp_rate() {
  using simd::VF;
  constexpr int64_t kVectors = 1 << 12;  // 256 KiB of lanes per thread: L2-resident, compute-bound
  constexpr int kPasses = 256;
  constexpr int kRepeats = 7;
  ExpRate rate;
  const int threads = at::get_num_threads();
  std::vector<std::vector<VF>> buffers(threads, std::vector<VF>(kVectors, simd::splat<VF>(-0.5f)));
  auto run = [&] {
    at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t th = b; th < e; ++th) {
        VF* v = buffers[th].data();
        for (int p = 0; p < kPasses; ++p) {
          for (int64_t i = 0; i < kVectors; ++i) v[i] = simd::vexp(v[i]) - 1.5f;  // stays in (-1.5, -0.5]
        }
      }
    });
  };
  rate.ours_per_s = double(threads) * kVectors * kPasses * simd::kLanes / (best_ms(run, kRepeats) * 1e-3);
  // The scan evaluates exp(delta A) as 2^(delta A log2 e): its cheaper exp2 counts as the machine's rate too.
  auto run2 = [&] {
    at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t th = b; th < e; ++th) {
        VF* v = buffers[th].data();
        for (int p = 0; p < kPasses; ++p) {
          for (int64_t i = 0; i < kVectors; ++i) v[i] = simd::vexp2(v[i]) - 1.5f;
        }
      }
    });
  };
  rate.ours2_per_s = double(threads) * kVectors * kPasses * simd::kLanes / (best_ms(run2, kRepeats) * 1e-3);
  at::Tensor big = at::rand({int64_t(threads) * kVectors * simd::kLanes}) - 0.5;
  at::Tensor out = at::empty_like(big);
  auto aten = [&] {
    for (int p = 0; p < kPasses / 16; ++p) at::exp_out(out, big);
  };
  rate.aten_per_s = double(big.numel()) * (kPasses / 16) / (best_ms(aten, kRepeats) * 1e-3);
  return rate;
}

std::vector<BenchRow> run_op_bench(const BenchOptions& opt, const ExpRate& rate) {
  counting_allocator();
  std::vector<BenchRow> rows;
  const size_t total = 3 * opt.seqlens.size() * opt.batches.size();
  auto progress = [&] {
    fmt::print(stderr, "\rbench: {}/{} {} {}", rows.size(), total, rows.back().op, rows.back().shape);
  };
  for (int64_t seqlen : opt.seqlens) {
    for (int64_t batch : opt.batches) {
      rows.push_back(bench_scan(opt, rate, batch, seqlen));
      progress();
      rows.push_back(bench_conv(opt, batch, seqlen));
      progress();
      rows.push_back(bench_lora(opt, batch, seqlen));
      progress();
    }
  }
  fmt::print(stderr, "\n");
  return rows;
}

void report(const BenchOptions& opt, const ExpRate& rate, const std::vector<BenchRow>& rows) {
  fmt::print("machine: {} | threads {} | LibTorch {} | dtype {} | median of {} (eager: {})\n", cpu_model(),
             at::get_num_threads(), TORCH_VERSION, opt.dtype, opt.repeats, opt.eager_repeats);
  fmt::print(
      "vectorised exp rate (best of 7): mft exp {:.2f} G/s, mft exp2 {:.2f} G/s, ATen exp {:.2f} G/s "
      "(floor uses the fastest)\n",
      rate.ours_per_s * 1e-9, rate.ours2_per_s * 1e-9, rate.aten_per_s * 1e-9);
  fmt::print("{:<15} {:<22} {:>9} {:>10} {:>7} {:>9} {:>9} {:>8} {:>10} {:>10} {:>9} {:>9}\n", "op", "shape", "fwd ms",
             "fwd+bwd ms", "GB/s", "floor ms", "floor/fwd", "fb/fwd", "eager fwd", "eager f+b", "x fwd", "x f+b");
  for (const auto& r : rows) {
    fmt::print("{:<15} {:<22} {:>9.2f} {:>10.2f} {:>7.2f} {:>9} {:>9} {:>8} {:>10} {:>10} {:>9} {:>9}\n", r.op, r.shape,
               r.fwd_ms, r.fwdbwd_ms, r.fwd_gbps, r.floor_ms > 0 ? fmt::format("{:.2f}", r.floor_ms) : "-",
               ratio(r.floor_ms, r.fwd_ms), ratio(r.fwdbwd_ms, r.fwd_ms),
               r.eager_fwd_ms > 0 ? fmt::format("{:.1f}", r.eager_fwd_ms) : "-",
               r.eager_fwdbwd_ms > 0 ? fmt::format("{:.1f}", r.eager_fwdbwd_ms) : "-", ratio(r.eager_fwd_ms, r.fwd_ms),
               ratio(r.eager_fwdbwd_ms, r.fwdbwd_ms));
  }
  for (const auto& r : rows) {
    if (r.op == "selective_scan") {
      fmt::print(
          "memory {} {}: workspace of fwd+bwd beyond inputs, out and gradients {:.1f} MiB "
          "(storing every state would take {:.1f} MiB)\n",
          r.op, r.shape, r.extra_mem_mb, r.naive_state_mb);
    }
  }
  fmt::print("goals (scan and conv): scan floor/fwd >= 0.50, fb/fwd <= 4, x fwd (speed-up vs eager) > 3\n");
  if (!opt.csv_path.empty()) {
    const std::string tmp = opt.csv_path + ".tmp";
    {
      std::ofstream f(tmp);
      if (!f) throw std::runtime_error("bench: cannot write " + tmp);
      f << "op,shape,dtype,threads,fwd_ms,fwdbwd_ms,fwd_gbps,floor_ms,eager_fwd_ms,eager_fwdbwd_ms,extra_mem_mb\n";
      for (const auto& r : rows) {
        f << fmt::format("{},{},{},{},{:.4f},{:.4f},{:.3f},{:.4f},{:.3f},{:.3f},{:.1f}\n", r.op, r.shape, r.dtype,
                         at::get_num_threads(), r.fwd_ms, r.fwdbwd_ms, r.fwd_gbps, r.floor_ms, r.eager_fwd_ms,
                         r.eager_fwdbwd_ms, r.extra_mem_mb);
      }
      if (!f) throw std::runtime_error("bench: write failed for " + tmp);
    }
    if (std::rename(tmp.c_str(), opt.csv_path.c_str()) != 0) throw std::runtime_error("bench: cannot rename " + tmp);
    fmt::print("wrote {}\n", opt.csv_path);
  }
}

}  // namespace mft::bench
