#include "analysis/perturbation.h"

#include "models/gpt_neox.h"
#include "models/mamba.h"
#include "models/mamba2.h"
#include "models/registry.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace mft::analysis {
namespace {
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Per-step deviations (output, state) of one block for one ε.
struct Trace {
  std::vector<double> output, state;
};

template <typename Block, typename State>
Trace recurrent_trace(Block& block, State s0, const at::Tensor& u, double eps) {
  State s1 = s0;
  s1.conv = s0.conv + eps;
  s1.ssm = s0.ssm + eps;
  s0.conv = s0.conv.clone();
  s0.ssm = s0.ssm.clone();
  Trace tr;
  for (int64_t t = 0; t < u.size(1); ++t) {
    const at::Tensor x = u.narrow(1, t, 1);
    const at::Tensor y0 = block.forward(x, &s0);
    const at::Tensor y1 = block.forward(t == 0 ? x + eps : x, &s1);
    tr.output.push_back(max_abs_diff(y0, y1));
    tr.state.push_back(max_abs_diff(s0.ssm, s1.ssm));
  }
  return tr;
}

Trace attention_trace(models::GPTNeoXForCausalLMImpl& m, const at::Tensor& u, double eps) {
  auto& layer = *m.layers[0]->as<models::GPTNeoXLayer>();
  const int64_t L = u.size(1), rot = m.config.rotary_ndims();
  // Rotary tables for positions 0..L-1, as GPTNeoXForCausalLMImpl builds them.
  const auto f32 = u.options().dtype(at::kFloat);
  const at::Tensor inv_freq =
      at::pow(m.config.rotary_emb_base, -at::arange(0, rot, 2, f32) / double(std::max<int64_t>(rot, 1)));
  const at::Tensor freqs = at::arange(L, f32).unsqueeze(-1) * inv_freq;
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  const at::Tensor cos = emb.cos(), sin = emb.sin();
  at::Tensor u1 = u.clone();
  u1.narrow(1, 0, 1).add_(eps);
  const at::Tensor y0 = layer.forward(u, cos, sin), y1 = layer.forward(u1, cos, sin);
  Trace tr;
  for (int64_t t = 0; t < L; ++t) tr.output.push_back(max_abs_diff(y0.narrow(1, t, 1), y1.narrow(1, t, 1)));
  return tr;
}
}  // namespace

double log_slope(const std::vector<double>& values, int64_t first) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int64_t n = 0;
  for (int64_t t = first; t < static_cast<int64_t>(values.size()); ++t) {
    if (!(values[static_cast<size_t>(t)] > 0)) continue;
    const double x = double(t), y = std::log(values[static_cast<size_t>(t)]);
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++n;
  }
  if (n < 2) return 0;
  return (double(n) * sxy - sx * sy) / (double(n) * sxx - sx * sx);
}

PerturbationResult perturbation_experiment(const PerturbationOptions& o) {
  TORCH_CHECK(o.blocks >= 1 && o.steps >= 3 && !o.eps.empty(), "stability: need blocks >= 1, steps >= 3 and an ε");
  for (const double e : o.eps) TORCH_CHECK(e > 0, "stability: ε must be > 0; got ", e);
  at::NoGradGuard no_grad;
  PerturbationResult r;
  r.preset = o.preset;
  r.blocks = o.blocks;
  r.steps = o.steps;
  std::vector<std::vector<Trace>> traces(o.eps.size());
  for (int64_t b = 0; b < o.blocks; ++b) {
    auto model = models::load_model("preset:" + o.preset, static_cast<uint64_t>(b));
    model->eval();
    r.family = model->family();
    at::Generator gen = at::detail::createCPUGenerator(o.input_seed + static_cast<uint64_t>(b));
    for (size_t e = 0; e < o.eps.size(); ++e) {
      if (auto* m = dynamic_cast<models::MambaForCausalLMImpl*>(model.get())) {
        auto& block = *m->layers[0]->as<models::MambaBlock>();
        const at::Tensor u = at::randn({1, o.steps, m->config.hidden_size}, gen);
        auto cache = m->new_cache(1);
        traces[e].push_back(recurrent_trace(block, dynamic_cast<models::MambaCache&>(*cache).layers[0], u, o.eps[e]));
      } else if (auto* m2 = dynamic_cast<models::Mamba2ForCausalLMImpl*>(model.get())) {
        auto& block = *m2->layers[0]->as<models::Mamba2Block>();
        const at::Tensor u = at::randn({1, o.steps, m2->config.hidden_size}, gen);
        auto cache = m2->new_cache(1);
        traces[e].push_back(recurrent_trace(block, dynamic_cast<models::Mamba2Cache&>(*cache).layers[0], u, o.eps[e]));
      } else if (auto* n = dynamic_cast<models::GPTNeoXForCausalLMImpl*>(model.get())) {
        const at::Tensor u = at::randn({1, o.steps, n->config.hidden_size}, gen);
        traces[e].push_back(attention_trace(*n, u, o.eps[e]));
      } else {
        TORCH_CHECK(false, "stability: no perturbation experiment for the ", model->family(), " family");
      }
    }
  }
  for (size_t e = 0; e < o.eps.size(); ++e) {
    PerturbationCurve c;
    c.eps = o.eps[e];
    for (const Trace& t : traces[e]) {
      c.rates.push_back(t.state.empty() ? log_slope(t.output, 1)
                                        : log_slope(t.state, std::min<int64_t>(4, o.steps - 2)));
    }
    for (int64_t t = 0; t < o.steps; ++t) {
      std::vector<double> out, st;
      for (const Trace& tr : traces[e]) {
        out.push_back(tr.output[static_cast<size_t>(t)] / c.eps);
        if (!tr.state.empty()) st.push_back(tr.state[static_cast<size_t>(t)] / c.eps);
      }
      c.median_output.push_back(median(out));
      if (!st.empty()) c.median_state.push_back(median(st));
    }
    c.median_rate = median(c.rates);
    double sum = 0;
    int64_t decaying = 0;
    for (const double v : c.rates) sum += v, decaying += v < 0;
    c.mean_rate = sum / double(c.rates.size());
    c.fraction_decaying = double(decaying) / double(c.rates.size());
    r.curves.push_back(c);
  }
  return r;
}

nlohmann::json PerturbationResult::to_json() const {
  nlohmann::json j = {{"family", family}, {"preset", preset}, {"blocks", blocks}, {"steps", steps}};
  for (const auto& c : curves) {
    j["curves"].push_back({{"eps", c.eps},
                           {"median_rate", c.median_rate},
                           {"mean_rate", c.mean_rate},
                           {"fraction_decaying", c.fraction_decaying},
                           {"rates", c.rates},
                           {"median_output_deviation", c.median_output},
                           {"median_state_deviation", c.median_state}});
  }
  return j;
}

}  // namespace mft::analysis
