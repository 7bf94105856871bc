#pragma once
// The recipe's optimizer: AdamW (decoupled weight decay) or SGD with momentum, weight decay on matrices
// only (not on norms, biases, A_log, D); and gradient clipping by the global norm.
#include "recipe/recipe.h"

#include <ATen/core/Tensor.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

namespace mft::train {

// torch::optim::AdamW whose step runs ATen's fused kernel (at::_fused_adamw_: one pass over param, grad
// and moments instead of about eight), with the same options, the same per-parameter state
// (AdamWParamState: step, exp_avg, exp_avg_sq, max_exp_avg_sq) and so the same save/load format; the
// parameters after a step equal torch::optim::AdamW's to fp32 rounding (tests/train/test_trainer.cpp).
// bench-train, mamba-130m full-fp32, seq 512, 2 threads: clipping + optimizer 0.38 s -> 0.17 s a step.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  at::Tensor step(LossClosure closure = nullptr) override { return step_with_grad_factor(1.0, closure); }
  // A step on the gradients times `grad_factor` (> 0), applied inside the fused kernel's pass (its
  // grad_scale, which also writes the scaled gradients back): unscaling and clipping cost no pass of
  // their own.
  at::Tensor step_with_grad_factor(double grad_factor, LossClosure closure = nullptr);
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& params,
                                                        const recipe::OptimizerSection& o);

// Sets the learning rate of every parameter group (the schedule's value for this step).
void set_lr(torch::optim::Optimizer& opt, double lr);

// The gradients' global L2 norm, whether every element is finite, and the factor the step is to
// apply to them (1 / loss scale times the clip coefficient).
struct GradNorm {
  double norm = 0;
  bool finite = true;
  double factor = 1.0;
};

// What the trainer does between backward and the optimizer step, reading the gradients once and
// writing nothing: the norm and finiteness of the (loss-scaled) gradients from one pass (CPU fp32: fixed
// 64 Ki blocks summed in fp64, the same bits at any thread count; elsewhere at::_foreach_norm); a
// non-finite sum is re-checked element by element, since squares of finite values above ~1.8e19
// overflow fp32. `norm` is the unscaled norm (0 when nothing has a gradient); `factor` = unscale times
// torch::nn::utils::clip_grad_norm_'s coefficient min(1, max_norm / (norm + 1e-6)) (max_norm <= 0: no
// clipping). (A separate isfinite pass per parameter cost 0.35 s a step on mamba-130m's 129 M
// gradients.)
GradNorm measure_gradients(const std::vector<at::Tensor>& params, double unscale, double max_norm);

// The optimizer's step on the gradients times `grad_factor`: inside FusedAdamW's pass, else by one
// multiplication first (none when the factor is 1).
void step_with_grad_factor(torch::optim::Optimizer& opt, const std::vector<at::Tensor>& params, double grad_factor);

// torch::nn::utils::clip_grad_norm_: measure_gradients, then the gradients multiplied by the clip
// coefficient (when finite and below 1). Returns the norm before clipping. max_norm <= 0: only measures.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace mft::train
