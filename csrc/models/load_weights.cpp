#include "models/load_weights.h"

#include <ATen/ATen.h>

namespace mft::models {

void load_weights(const std::string& family, const std::string& dir, const std::map<std::string, at::Tensor>& table,
                  const std::map<std::string, at::Tensor>& tensors, const std::set<std::string>& tolerated) {
  at::NoGradGuard no_grad;
  for (const auto& [name, param] : table) {
    const auto it = tensors.find(name);
    TORCH_CHECK(it != tensors.end(), family, ": ", dir, " lacks tensor '", name, "'");
    TORCH_CHECK(it->second.sizes() == param.sizes(), family, ": ", dir, ": tensor '", name, "' has shape ",
                it->second.sizes(), " but config.json implies ", param.sizes());
    at::Tensor target = param;
    target.copy_(it->second);
  }
  for (const auto& [name, t] : tensors) {
    TORCH_CHECK(table.count(name) > 0 || tolerated.count(name) > 0, family, ": ", dir, " has unexpected tensor '", name,
                "' for this config");
  }
}

}  // namespace mft::models
