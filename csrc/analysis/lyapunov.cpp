#include "analysis/lyapunov.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace mft::analysis {

Spectrum benettin(const StateMap& f, const at::Tensor& x0, int64_t steps, int64_t k, double eps, uint64_t seed,
                  int64_t warmup) {
  TORCH_CHECK(x0.dim() == 1 && x0.numel() >= 1, "benettin: the state must be a vector; got ", x0.sizes());
  const int64_t n = x0.numel();
  TORCH_CHECK(k >= 1 && k <= n, "benettin: need 1 <= k <= state size ", n, "; got ", k);
  TORCH_CHECK(steps > warmup && warmup >= 0 && eps > 0, "benettin: need steps > warmup >= 0 and eps > 0");
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor Q = k == n ? at::eye(n, opts) : std::get<0>(at::linalg_qr(at::randn({n, k}, gen, opts)));  // (n, k)
  at::Tensor x = x0.to(at::kDouble);
  std::vector<double> sums(static_cast<size_t>(k), 0.0);
  for (int64_t t = 0; t < steps; ++t) {
    // Rows: x, then x ± eps q_j; one batched evaluation.
    const double step = eps * std::max(1.0, x.abs().max().item<double>());
    const at::Tensor dirs = Q.t() * step;                                                             // (k, n)
    const at::Tensor X = at::cat({x.unsqueeze(0), x.unsqueeze(0) + dirs, x.unsqueeze(0) - dirs}, 0);  // (2k+1, n)
    const at::Tensor Y = f(X, t).to(at::kDouble);
    const at::Tensor JQ = ((Y.narrow(0, 1, k) - Y.narrow(0, 1 + k, k)) / (2 * step)).t();  // (n, k)
    auto [Qn, R] = at::linalg_qr(JQ);
    const at::Tensor diag = R.diagonal().abs().clamp_min(1e-300).log();
    if (t >= warmup) {
      for (int64_t j = 0; j < k; ++j) sums[static_cast<size_t>(j)] += diag[j].item<double>();
    }
    Q = Qn;
    x = Y[0];
  }
  Spectrum s;
  s.steps = steps - warmup;
  for (const double v : sums) s.exponents.push_back(v / double(s.steps));
  std::sort(s.exponents.rbegin(), s.exponents.rend());
  return s;
}

std::vector<double> exact_lambda(models::CausalLM& model, const at::Tensor& input_ids, int64_t first) {
  TORCH_CHECK(first >= 0 && first < input_ids.size(-1), "lyapunov: the first measured step ", first, " is beyond the ",
              input_ids.size(-1), " tokens");
  at::NoGradGuard no_grad;
  std::vector<double> out;
  for (const auto& d : model.recurrence_decays(input_ids)) {
    // mean over batch and time of Δ (C,), times A (C, S): the exponent of every (channel, state).
    const at::Tensor window = d.delta.narrow(1, first, d.delta.size(1) - first);
    const at::Tensor mean_delta = window.to(at::kDouble).mean(at::IntArrayRef{0, 1});  // (C,)
    out.push_back((mean_delta.unsqueeze(1) * d.A.to(at::kDouble)).max().item<double>());
  }
  TORCH_CHECK(!out.empty(), "lyapunov: the ", model.family(), " model has no diagonal recurrence (λ̂ is defined for ",
              "Mamba and Mamba-2)");
  return out;
}

namespace {
// The decode step of `model` on token t of `ids` as a map of the recurrent states of `layers` (flattened,
// fp64); the other layers' states are those of the reference trajectory at t.
class ModelStateMap {
 public:
  ModelStateMap(models::CausalLM& model, const at::Tensor& ids, std::vector<int64_t> layers)
      : model_(model), ids_(ids), layers_(std::move(layers)), cache_(model.new_cache(1)) {
    TORCH_CHECK(!cache_->recurrent_states().empty(), "lyapunov: the ", model.family(),
                " model has no fixed-size recurrent state");
  }

  at::Tensor state() {  // (n,) of the reference trajectory
    std::vector<at::Tensor> parts;
    auto states = cache_->recurrent_states();
    for (const int64_t l : layers_) parts.push_back(states[static_cast<size_t>(l)]->reshape({-1}).to(at::kDouble));
    return at::cat(parts);
  }

  at::Tensor operator()(const at::Tensor& X, int64_t t) {
    at::NoGradGuard no_grad;
    const int64_t m = X.size(0);
    auto batch = cache_->repeat(m);
    auto states = batch->recurrent_states();
    int64_t offset = 0;
    for (const int64_t l : layers_) {
      at::Tensor& s = *states[static_cast<size_t>(l)];
      const int64_t size = s.numel() / m;
      s.copy_(X.narrow(1, offset, size).reshape(s.sizes()).to(s.scalar_type()));
      offset += size;
    }
    model_.forward_cached(ids_.select(1, t).unsqueeze(1).expand({m, 1}).contiguous(), *batch);
    std::vector<at::Tensor> parts;
    for (const int64_t l : layers_) parts.push_back(states[static_cast<size_t>(l)]->reshape({m, -1}).to(at::kDouble));
    // Advance the reference trajectory (row 0 is the unperturbed state).
    model_.forward_cached(ids_.select(1, t).unsqueeze(1).contiguous(), *cache_);
    return at::cat(parts, 1);
  }

 private:
  models::CausalLM& model_;
  at::Tensor ids_;
  std::vector<int64_t> layers_;
  std::unique_ptr<models::DecodeCache> cache_;
};

// Elements of all layers' recurrent states together (batch 1): the largest state map's size.
int64_t recurrent_state_size(models::CausalLM& model) {
  at::NoGradGuard no_grad;
  const auto cache = model.new_cache(1);
  int64_t n = 0;
  for (const at::Tensor* s : cache->recurrent_states()) n += s->numel();
  return n;
}

Spectrum estimate(models::CausalLM& model, const at::Tensor& ids, std::vector<int64_t> layers, int64_t k,
                  int64_t warmup, double eps, uint64_t seed) {
  ModelStateMap f(model, ids, std::move(layers));
  const at::Tensor x0 = f.state();
  return benettin([&](const at::Tensor& X, int64_t t) { return f(X, t); }, x0, ids.size(1),
                  std::min<int64_t>(k, x0.numel()), eps, seed, warmup);
}
}  // namespace

ModelLyapunov model_lyapunov(models::CausalLM& model, const at::Tensor& input_ids, int64_t k, int64_t warmup,
                             double eps, uint64_t seed) {
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.size(0) == 1 && input_ids.size(1) >= 1,
              "lyapunov: input_ids must be (1, T); got ", input_ids.sizes());
  TORCH_CHECK(k >= 0 && warmup >= 0 && warmup < input_ids.size(1),
              "lyapunov: need k >= 0 and 0 <= warmup < T = ", input_ids.size(1), "; got k ", k, ", warmup ", warmup);
  ModelLyapunov out;
  const std::vector<double> exact = exact_lambda(model, input_ids, warmup);  // fails for non-recurrent models
  if (k > 0) {  // beyond every state map's size k cannot mean anything (and costs (2k + 1) decode steps)
    const int64_t n = recurrent_state_size(model);
    TORCH_CHECK(k <= n, "lyapunov: k = ", k, " directions exceed the model's recurrent state size ", n,
                " (layers x channels x states); use k <= ", n);
  }
  std::vector<int64_t> all;
  for (size_t l = 0; l < exact.size(); ++l) {
    LayerExponent e{static_cast<int64_t>(l), exact[l], std::nan("")};
    if (k > 0) e.estimated = estimate(model, input_ids, {static_cast<int64_t>(l)}, k, warmup, eps, seed).exponents[0];
    out.layers.push_back(e);
    all.push_back(static_cast<int64_t>(l));
  }
  // Later layers first: a layer's state depends on earlier layers' states, never on later ones, so in this
  // order the stack's Jacobian is block upper triangular and the identity frame (k = n) stays exact.
  std::reverse(all.begin(), all.end());
  if (k > 0) out.stack = estimate(model, input_ids, all, k, warmup, eps, seed);
  return out;
}

}  // namespace mft::analysis
