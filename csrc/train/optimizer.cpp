#include "train/optimizer.h"

#include "core/simd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <cstring>
#include <optional>

namespace mft::train {

namespace {
// The tensors of one at::_fused_adamw_ call: parameters of one group on one device in one dtype.
struct FusedBucket {
  c10::Device device;
  at::ScalarType dtype;
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
};

FusedBucket& bucket_for(std::vector<FusedBucket>& buckets, const at::Tensor& p) {
  for (auto& b : buckets) {
    if (b.device == p.device() && b.dtype == p.scalar_type()) return b;
  }
  buckets.push_back(FusedBucket{p.device(), p.scalar_type(), {}, {}, {}, {}, {}, {}});
  return buckets.back();
}

// The fused kernel walks each tensor as one flat array; the moments are ours, so make them so.
void make_contiguous(at::Tensor& t) {
  if (t.defined() && !t.is_contiguous()) t = t.contiguous();
}
}  // namespace

at::Tensor FusedAdamW::step_with_grad_factor(double grad_factor, LossClosure closure) {
  TORCH_CHECK(std::isfinite(grad_factor) && grad_factor > 0, "FusedAdamW: grad_factor must be finite and > 0; got ",
              grad_factor);
  at::NoGradGuard no_grad;
  at::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<FusedBucket> buckets;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor& grad = p.grad();
      TORCH_CHECK(!grad.is_sparse(), "AdamW does not support sparse gradients");
      TORCH_CHECK(p.is_contiguous(), "FusedAdamW: parameters must be contiguous; got strides ", p.strides(),
                  " for sizes ", p.sizes());
      TORCH_CHECK(grad.scalar_type() == p.scalar_type(), "FusedAdamW: gradient dtype ", grad.scalar_type(),
                  " differs from its parameter's ", p.scalar_type());
      // State exactly as torch::optim::AdamW creates it, so checkpoints are interchangeable.
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        if (o.amsgrad()) s->max_exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      s.step(s.step() + 1);
      make_contiguous(s.exp_avg());
      make_contiguous(s.exp_avg_sq());
      if (o.amsgrad() && !s.max_exp_avg_sq().defined()) {
        s.max_exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
      }
      if (o.amsgrad()) make_contiguous(s.max_exp_avg_sq());
      FusedBucket& b = bucket_for(buckets, p);
      b.params.push_back(p);
      b.grads.push_back(grad.contiguous());
      b.exp_avgs.push_back(s.exp_avg());
      b.exp_avg_sqs.push_back(s.exp_avg_sq());
      if (o.amsgrad()) b.max_exp_avg_sqs.push_back(s.max_exp_avg_sq());
      // The kernel reads the already incremented step as a float scalar (as torch.optim's fused path
      // keeps it); exact up to 2^24 steps.
      b.steps.push_back(at::scalar_tensor(double(s.step()), at::TensorOptions().dtype(at::kFloat).device(p.device())));
    }
    const auto [beta1, beta2] = o.betas();
    for (auto& b : buckets) {
      // The kernel divides each gradient by grad_scale (a float on the parameters' device).
      std::optional<at::Tensor> grad_scale;
      if (grad_factor != 1.0) {
        grad_scale = at::scalar_tensor(1.0 / grad_factor, at::TensorOptions().dtype(at::kFloat).device(b.device));
      }
      at::_fused_adamw_(b.params, b.grads, b.exp_avgs, b.exp_avg_sqs, b.max_exp_avg_sqs, b.steps, o.lr(), beta1, beta2,
                        o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false, grad_scale);
    }
  }
  return loss;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& params,
                                                        const recipe::OptimizerSection& o) {
  // Weight decay on matrices only (not on norms, biases, A_log, D), as is usual for AdamW.
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : params) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  if (o.name == "adamw") {
    auto opts = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!decay.empty()) {
      groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(o.weight_decay)));
    }
    if (!no_decay.empty())
      groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(0.0)));
    return std::make_unique<FusedAdamW>(groups, opts);
  }
  TORCH_CHECK(o.name == "sgd", "train: optimizer.name must be adamw or sgd; got \"", o.name, "\"");
  auto opts = torch::optim::SGDOptions(o.lr).momentum(o.momentum);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty())
    groups.emplace_back(decay, std::make_unique<torch::optim::SGDOptions>(opts.weight_decay(o.weight_decay)));
  if (!no_decay.empty())
    groups.emplace_back(no_decay, std::make_unique<torch::optim::SGDOptions>(opts.weight_decay(0.0)));
  return std::make_unique<torch::optim::SGD>(groups, opts);
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

namespace {

// Σ x² over contiguous CPU fp32 tensors, in one parallel pass: the tensors are cut into fixed blocks of
// 64 Ki elements, each summed by simd::dot, the blocks' sums added in order in fp64 (a fixed order: the
// same bits at any thread count). On CPU at::_foreach_norm falls back to one norm per tensor
// (mamba-130m: 243 calls, 46 ms).
double cpu_fp32_sum_of_squares(const std::vector<at::Tensor>& ts) {
  constexpr int64_t kBlock = int64_t(1) << 16;
  struct Block {
    const float* p;
    int64_t n;
  };
  std::vector<Block> blocks;
  for (const auto& t : ts) {
    const float* p = t.const_data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); i += kBlock) blocks.push_back({p + i, std::min(kBlock, t.numel() - i)});
  }
  std::vector<double> sums(blocks.size(), 0.0);
  at::parallel_for(0, int64_t(blocks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      sums[b] = double(simd::dot(blocks[b].p, blocks[b].p, blocks[b].n));
    }
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

bool all_cpu_fp32_contiguous(const std::vector<at::Tensor>& ts) {
  for (const auto& t : ts) {
    if (!t.device().is_cpu() || t.scalar_type() != at::kFloat || !t.is_contiguous() || t.is_sparse()) return false;
  }
  return true;
}

std::vector<at::Tensor> gradients_of(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

// Exact check and fp64 norm, for the rare sum that came out non-finite.
GradNorm exact_grad_norm(const std::vector<at::Tensor>& grads) {
  GradNorm r;
  double sum_sq = 0;
  for (const auto& g : grads) {
    if (!at::isfinite(g).all().item<bool>()) {
      r.finite = false;
      return r;
    }
    sum_sq += g.to(at::kDouble).pow(2).sum().item<double>();
  }
  r.norm = std::sqrt(sum_sq);
  return r;
}

// Every gradient times `factor` in one pass (none when it is 1).
void scale_gradients(const std::vector<at::Tensor>& params, double factor) {
  if (factor == 1.0) return;
  at::NoGradGuard no_grad;
  at::_foreach_mul_(gradients_of(params), factor);
}
}  // namespace

GradNorm measure_gradients(const std::vector<at::Tensor>& params, double unscale, double max_norm) {
  TORCH_CHECK(std::isfinite(unscale) && unscale > 0, "measure_gradients: unscale must be finite and > 0; got ",
              unscale);
  const std::vector<at::Tensor> grads = gradients_of(params);
  GradNorm r;
  if (grads.empty()) return r;
  at::NoGradGuard no_grad;
  double scaled_norm = 0;
  if (all_cpu_fp32_contiguous(grads)) {
    scaled_norm = std::sqrt(cpu_fp32_sum_of_squares(grads));
  } else {
    const std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
    scaled_norm = (norms.size() == 1 ? norms[0] : at::stack(norms).norm(2)).item<double>();
  }
  if (!std::isfinite(scaled_norm)) {
    r = exact_grad_norm(grads);
    if (!r.finite) return r;
    scaled_norm = r.norm;
  }
  r.norm = scaled_norm * unscale;
  r.factor = unscale;
  if (max_norm > 0) {
    // torch's coefficient, in fp32 (the norm's dtype for fp32 gradients): max_norm / (norm + 1e-6), <= 1.
    const float coef = float(max_norm) / (float(r.norm) + 1e-6f);
    if (coef < 1.0f) r.factor *= double(coef);
  }
  return r;
}

void step_with_grad_factor(torch::optim::Optimizer& opt, const std::vector<at::Tensor>& params, double grad_factor) {
  if (auto* adamw = dynamic_cast<FusedAdamW*>(&opt)) {
    adamw->step_with_grad_factor(grad_factor);
    return;
  }
  scale_gradients(params, grad_factor);
  opt.step();
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  const GradNorm r = measure_gradients(params, 1.0, max_norm);
  if (r.finite) scale_gradients(params, r.factor);
  return r.norm;
}

}  // namespace mft::train
