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
  at::Tensor step(LossClosure closure = nullptr) override;
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& params,
                                                        const recipe::OptimizerSection& o);

// Sets the learning rate of every parameter group (the schedule's value for this step).
void set_lr(torch::optim::Optimizer& opt, double lr);

// torch::nn::utils::clip_grad_norm_ (L2, same formula: coefficient max_norm / (norm + 1e-6) clamped to
// 1): the norm in one parallel pass over CPU fp32 gradients (at::_foreach_norm otherwise), and no pass
// over the gradients when the coefficient is 1 (multiplying by 1 changes nothing). Returns the total
// norm before clipping; 0 when no parameter has a gradient. max_norm <= 0: only measures.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace mft::train
