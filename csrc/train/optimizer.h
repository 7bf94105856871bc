#pragma once
// The recipe's optimizer: AdamW (decoupled weight decay) or SGD with momentum, weight decay on matrices
// only (not on norms, biases, A_log, D).
#include "recipe/recipe.h"

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

namespace mft::train {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& params,
                                                        const recipe::OptimizerSection& o);

// Sets the learning rate of every parameter group (the schedule's value for this step).
void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace mft::train
