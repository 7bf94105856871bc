#include "analysis/precision.h"

#include "models/registry.h"
#include "train/autocast_scope.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace mft::analysis {
namespace {
struct Pass {
  std::vector<at::Tensor> hidden;  // (1, T, D) fp32 each
  at::Tensor log_probs;            // (T, V) fp32
};

Pass run(models::CausalLM& model, const at::Tensor& ids, at::ScalarType autocast) {
  at::NoGradGuard no_grad;
  Pass p;
  model.record_hidden_states = &p.hidden;
  at::Tensor logits;
  {
    train::AutocastScope scope(autocast);
    logits = model.forward(ids);
  }
  model.record_hidden_states = nullptr;
  for (auto& h : p.hidden) h = h.to(at::kFloat);
  p.log_probs = at::log_softmax(logits[0].to(at::kFloat), -1);
  return p;
}
}  // namespace

PrecisionResult precision_divergence(const std::function<std::shared_ptr<models::CausalLM>()>& load,
                                     const at::Tensor& ids, const std::vector<std::string>& modes) {
  TORCH_CHECK(ids.dim() == 2 && ids.size(0) == 1, "precision: input_ids must be (1, T); got ", ids.sizes());
  auto model = load();
  model->eval();
  const Pass ref = run(*model, ids, at::kFloat);
  PrecisionResult r;
  r.family = model->family();
  r.layers = static_cast<int64_t>(ref.hidden.size()) - 1;
  r.positions = ids.size(1);
  for (const std::string& name : modes) {
    const bool pure = name.size() > 5 && name.compare(name.size() - 5, 5, "-pure") == 0;
    const at::ScalarType dtype = models::parse_dtype(pure ? name.substr(0, name.size() - 5) : name);
    TORCH_CHECK(dtype != at::kFloat, "precision: mode \"", name, "\" is not a lower precision");
    std::shared_ptr<models::CausalLM> m = model;
    if (pure) {
      m = load();
      models::cast_model(*m, dtype);
      m->eval();
    }
    const Pass p = run(*m, ids, pure ? at::kFloat : dtype);
    PrecisionMode mode;
    mode.name = name;
    for (size_t l = 0; l < ref.hidden.size(); ++l) {
      // (T,) norms over the hidden dimension.
      const at::Tensor dev =
          (p.hidden[l] - ref.hidden[l])[0].norm(2, -1) / ref.hidden[l][0].norm(2, -1).clamp_min(1e-30);
      std::vector<double> v(dev.data_ptr<float>(), dev.data_ptr<float>() + dev.numel());
      for (const double x : v) mode.max_relative_deviation = std::max(mode.max_relative_deviation, x);
      mode.relative_deviation.push_back(std::move(v));
    }
    const at::Tensor kl = (ref.log_probs.exp() * (ref.log_probs - p.log_probs)).sum(-1).to(at::kDouble);  // (T,)
    mode.kl.assign(kl.data_ptr<double>(), kl.data_ptr<double>() + kl.numel());
    mode.mean_kl = kl.mean().item<double>();
    r.modes.push_back(std::move(mode));
  }
  return r;
}

nlohmann::json PrecisionResult::to_json() const {
  nlohmann::json j = {{"family", family}, {"layers", layers}, {"positions", positions}};
  for (const auto& m : modes) {
    j["modes"].push_back({{"mode", m.name},
                          {"mean_kl", m.mean_kl},
                          {"max_relative_deviation", m.max_relative_deviation},
                          {"kl", m.kl},
                          {"relative_deviation", m.relative_deviation}});
  }
  return j;
}

}  // namespace mft::analysis
