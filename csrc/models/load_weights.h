#pragma once
// Copies a checkpoint's tensors into a model's parameters by a name table (HF name -> parameter).
// Every table entry must be present with the table's shape; a checkpoint tensor neither in the table
// nor in `tolerated` (e.g. a tied head) is an error. Messages start with `family` and name `dir`.
#include <ATen/core/Tensor.h>

#include <map>
#include <set>
#include <string>

namespace mft::models {

void load_weights(const std::string& family, const std::string& dir, const std::map<std::string, at::Tensor>& table,
                  const std::map<std::string, at::Tensor>& tensors, const std::set<std::string>& tolerated = {});

}  // namespace mft::models
