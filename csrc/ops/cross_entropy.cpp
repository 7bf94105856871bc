#include "ops/cross_entropy.h"

#include "core/simd.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace mft {
namespace {

// max_v x[v] and log Σ_v exp(x[v] − max), in kLanes partial results (a fixed order: deterministic).
template <typename S>
S row_logsumexp(const S* x, int64_t n) {
  using V = simd::Vec<S>;
  constexpr int64_t kL = simd::kLanes;
  S m = -std::numeric_limits<S>::infinity();
  int64_t v = 0;
  if (n >= kL) {
    V mv;
    std::memcpy(&mv, x, sizeof mv);
    for (v = kL; v + kL <= n; v += kL) {
      V xv;
      std::memcpy(&xv, x + v, sizeof xv);
      mv = xv > mv ? xv : mv;
    }
    for (int k = 0; k < kL; ++k) m = std::max(m, mv[k]);
  }
  for (; v < n; ++v) m = std::max(m, x[v]);
  if (!std::isfinite(m)) return m;  // +inf or NaN propagate; all -inf gives -inf
  S sum = 0;
  v = 0;
  if constexpr (std::is_same_v<S, float>) {
    V acc{};
    const V mv = simd::splat<V>(m);
    for (; v + kL <= n; v += kL) {
      V xv;
      std::memcpy(&xv, x + v, sizeof xv);
      acc += simd::vexp(xv - mv);
    }
    sum = simd::hsum(acc);
  }
  for (; v < n; ++v) sum += std::exp(x[v] - m);
  return m + std::log(sum);
}

// g[v] = scale · exp(x[v] − lse) for all v.
template <typename S>
void row_softmax_scaled(const S* x, S lse, S scale, S* g, int64_t n) {
  using V = simd::Vec<S>;
  constexpr int64_t kL = simd::kLanes;
  int64_t v = 0;
  if constexpr (std::is_same_v<S, float>) {
    const V lv = simd::splat<V>(lse), sv = simd::splat<V>(scale);
    for (; v + kL <= n; v += kL) {
      V xv;
      std::memcpy(&xv, x + v, sizeof xv);
      const V gv = simd::vexp(xv - lv) * sv;
      std::memcpy(g + v, &gv, sizeof gv);
    }
  }
  for (; v < n; ++v) g[v] = scale * std::exp(x[v] - lse);
}

// Rows per parallel task: a few MB of logits each.
int64_t grain(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(vocab, 1));
}

void check_labels(const at::Tensor& labels, int64_t vocab, int64_t ignore_index) {
  const at::Tensor bad = labels.ne(ignore_index).logical_and(labels.lt(0).logical_or(labels.ge(vocab)));
  if (!bad.any().item<bool>()) return;
  const int64_t i = bad.nonzero().select(1, 0)[0].item<int64_t>();
  TORCH_CHECK(false, "cross_entropy_sum: labels[", i, "] = ", labels[i].item<int64_t>(),
              " is outside the vocabulary [0, ", vocab, ") and is not ignore_index (", ignore_index, ")");
}

// The compute type of logits of type T: fp64 for fp64, else fp32 (bf16/fp16 logits are read into fp32).
template <typename T>
using ComputeOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Row i of the logits in the compute type: the row itself, or converted into `buf` (V elements).
template <typename T, typename S = ComputeOf<T>>
const S* row_in(const T* x, int64_t V, std::vector<S>& buf) {
  if constexpr (std::is_same_v<T, S>) {
    return x;
  } else {
    for (int64_t v = 0; v < V; ++v) buf[v] = static_cast<S>(x[v]);
    return buf.data();
  }
}

// Forward: per-row logsumexp (N,) in the compute type and the summed loss (fp64 accumulation, in row
// order).
template <typename T>
std::pair<at::Tensor, double> forward_cpu(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index) {
  using S = ComputeOf<T>;
  const int64_t N = logits.size(0), V = logits.size(1);
  at::Tensor lse = at::empty({N}, logits.options().dtype(c10::CppTypeToScalarType<S>::value));
  std::vector<double> row_loss(N, 0.0);
  const T* x = logits.const_data_ptr<T>();
  const int64_t* y = labels.const_data_ptr<int64_t>();
  S* l = lse.mutable_data_ptr<S>();
  at::parallel_for(0, N, grain(V), [&](int64_t begin, int64_t end) {
    std::vector<S> buf(std::is_same_v<T, S> ? 0 : V);
    for (int64_t i = begin; i < end; ++i) {
      if (y[i] == ignore_index) {
        l[i] = 0;
        continue;
      }
      const S* xi = row_in(x + i * V, V, buf);
      l[i] = row_logsumexp(xi, V);
      row_loss[i] = double(l[i]) - double(xi[y[i]]);
    }
  });
  double total = 0;
  for (double r : row_loss) total += r;
  return {lse, total};
}

// Backward: d logits (N, V) = g · (softmax − one-hot) on trained rows, 0 on ignored ones; computed in
// the compute type and rounded once to the logits' type (what autograd gives through a cast to fp32).
template <typename T>
at::Tensor backward_cpu(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& lse, double g,
                        int64_t ignore_index) {
  using S = ComputeOf<T>;
  const int64_t N = logits.size(0), V = logits.size(1);
  at::Tensor grad = at::empty_like(logits, at::MemoryFormat::Contiguous);
  const T* x = logits.const_data_ptr<T>();
  const int64_t* y = labels.const_data_ptr<int64_t>();
  const S* l = lse.const_data_ptr<S>();
  T* d = grad.mutable_data_ptr<T>();
  at::parallel_for(0, N, grain(V), [&](int64_t begin, int64_t end) {
    constexpr bool kDirect = std::is_same_v<T, S>;
    std::vector<S> buf(kDirect ? 0 : V), out(kDirect ? 0 : V);
    for (int64_t i = begin; i < end; ++i) {
      T* di = d + i * V;
      if (y[i] == ignore_index) {
        std::fill(di, di + V, T(0));
        continue;
      }
      S* gi = kDirect ? reinterpret_cast<S*>(di) : out.data();
      row_softmax_scaled(row_in(x + i * V, V, buf), l[i], S(g), gi, V);
      gi[y[i]] -= S(g);
      if constexpr (!kDirect) {
        for (int64_t v = 0; v < V; ++v) di[v] = static_cast<T>(gi[v]);
      }
    }
  });
  return grad;
}

struct CrossEntropySum : public torch::autograd::Function<CrossEntropySum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& labels,
                            int64_t ignore_index) {
    const at::Tensor x = logits.contiguous(), y = labels.contiguous();
    auto [lse, total] = AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "cross_entropy_sum",
                                                        [&] { return forward_cpu<scalar_t>(x, y, ignore_index); });
    ctx->save_for_backward({x, y, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    return at::scalar_tensor(total, lse.options());  // fp32 for bf16/fp16 logits (as autocast computes it)
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const double g = grads[0].item<double>();
    const at::Tensor& x = saved[0];
    at::Tensor d = AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "cross_entropy_sum", [&] {
      return backward_cpu<scalar_t>(x, saved[1], saved[2], g, ignore_index);
    });
    return {d, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index) {
  TORCH_CHECK(logits.dim() == 2, "cross_entropy_sum: logits must be (N, V); got ", logits.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0),
              "cross_entropy_sum: labels must be (N,) with N = ", logits.size(0), "; got ", labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kLong, "cross_entropy_sum: labels must be int64; got ", labels.scalar_type());
  const at::ScalarType t = logits.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf,
              "cross_entropy_sum: logits must be fp32, fp64, bf16 or fp16; got ", t);
  TORCH_CHECK(labels.device() == logits.device(), "cross_entropy_sum: labels are on ", labels.device(), ", logits on ",
              logits.device());
  if (!logits.device().is_cpu() || logits.size(1) == 0) {
    const at::Tensor x = t == at::kDouble ? logits : logits.to(at::kFloat);
    return at::cross_entropy_loss(x, labels, {}, at::Reduction::Sum, ignore_index);
  }
  check_labels(labels, logits.size(1), ignore_index);
  return CrossEntropySum::apply(logits, labels, ignore_index);
}

}  // namespace mft
