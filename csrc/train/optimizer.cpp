#include "train/optimizer.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace mft::train {

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
    if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(0.0)));
    return std::make_unique<torch::optim::AdamW>(groups, opts);
  }
  TORCH_CHECK(o.name == "sgd", "train: optimizer.name must be adamw or sgd; got \"", o.name, "\"");
  auto opts = torch::optim::SGDOptions(o.lr).momentum(o.momentum);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, std::make_unique<torch::optim::SGDOptions>(opts.weight_decay(o.weight_decay)));
  if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::SGDOptions>(opts.weight_decay(0.0)));
  return std::make_unique<torch::optim::SGD>(groups, opts);
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

}  // namespace mft::train
