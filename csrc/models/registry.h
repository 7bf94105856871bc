#pragma once
// One entry point for every model the CLI accepts: an HF (or original state-spaces) folder, or
// `preset:NAME` for a randomly initialised published or tiny geometry.
#include "models/causal_lm.h"
#include "models/footprint.h"

#include <memory>
#include <string>
#include <vector>

namespace mft::models {

struct PresetInfo {
  std::string name, family;  // e.g. "mamba-130m", "mamba"
  std::string config_json;   // HF config.json content
};

// Every preset: mamba-{130m,370m,790m,1.4b,2.8b}, mamba2-{130m,370m,780m,1.3b,2.7b},
// pythia-{160m,410m,1b,1.4b,2.8b}, and mamba-tiny, mamba2-tiny, pythia-tiny (byte-level vocabulary,
// about the same parameter count each).
const std::vector<PresetInfo>& presets();

// The family ("mamba", "mamba2", "gpt_neox") of a model folder, from its config.json.
std::string model_family(const std::string& dir);

// What `spec` (a folder or preset:NAME) will need, from its config alone: nothing is allocated.
ModelFootprint model_footprint(const std::string& spec);

// Loads a folder, or builds `preset:NAME` with the family's own initialisation from `seed`. Refuses (before
// allocating) a model whose fp32 weights alone exceed what this process may use (models/memory_estimate.h).
std::shared_ptr<CausalLM> load_model(const std::string& spec, uint64_t seed = 0);

// Re-initialises `model` the way its family's reference code does (seeded from `seed`):
//   Mamba/Mamba-2: embeddings N(0, 0.02); linear biases 0; out_proj scaled by 1/sqrt(n_layer);
//     dt bias = softplus^-1(dt), dt log-uniform in [time_step_min, time_step_max] floored at 1e-4;
//     Mamba A_log = log(1..N) per channel, Mamba-2 A_log = log(U(1, 16)) per head; D = 1; norms 1.
//   GPT-NeoX: linear and embedding weights N(0, 0.02), biases 0, LayerNorms (1, 0).
void init_family_weights(CausalLM& model, uint64_t seed);

// Moves `model` to `device` with weights and activations in `dtype` (fp32, bf16 or fp16), except the
// SSM parameters the kernels read in fp32 (A_log, D, dt biases), which stay fp32 as in mamba-ssm.
void cast_model(CausalLM& model, at::ScalarType dtype, const c10::Device& device = c10::Device(c10::kCPU));

// "fp32" | "bf16" | "fp16" (also float32, bfloat16, float16) -> dtype; anything else is a clear error.
at::ScalarType parse_dtype(const std::string& name);

}  // namespace mft::models
