#pragma once
// Precision divergence of the forward pass (paper E3): the same tokens through the model in fp32 and in
// lower precision — autocast (fp32 weights, bf16/fp16 compute) and pure half (weights cast; A_log, D and dt
// biases stay fp32) — compared per layer and per position: the relative deviation ||h - h32|| / ||h32|| of
// the residual stream after each block, and the KL divergence KL(p32 || p) of the next-token distributions.
#include "models/causal_lm.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mft::analysis {

struct PrecisionMode {
  std::string name;                                     // "bf16", "fp16" (autocast), "bf16-pure", "fp16-pure"
  std::vector<std::vector<double>> relative_deviation;  // [layer 0 = embedding .. n][position]
  std::vector<double> kl;                               // [position], nats
  double mean_kl = 0, max_relative_deviation = 0;
};

struct PrecisionResult {
  std::string family;
  int64_t layers = 0, positions = 0;
  std::vector<PrecisionMode> modes;
  nlohmann::json to_json() const;
};

// `load` returns a fresh fp32 copy of the model (pure-half modes cast their own copy). input_ids (1, T).
PrecisionResult precision_divergence(const std::function<std::shared_ptr<models::CausalLM>()>& load,
                                     const at::Tensor& input_ids,
                                     const std::vector<std::string>& modes = {"bf16", "fp16", "bf16-pure",
                                                                              "fp16-pure"});

}  // namespace mft::analysis
