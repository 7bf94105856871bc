#pragma once
// LoRA for every model family, compatible with HF peft's adapter folders
// (../shared/reference/formats.md §7):
//   apply_lora        attaches adapters (fp32, peft's initialisation) to every targeted projection and
//                     embedding and freezes every base parameter; the models run each adapted module
//                     through mft::lora_linear, so no adapter is bypassed (paper.md §5.3).
//   lora_state_dict   the adapters under peft's on-disk key names.
//   merge_lora        W0 += s·B·A (E0 += s·(B·A)ᵀ for embeddings), adapters removed.
//   save/load_peft_adapter   adapter_config.json + adapter_model.safetensors.
#include "models/causal_lm.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace mft::peft {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool use_rslora = false;
  // Module names matched like peft: a target matches a module whose HF path equals it or ends with
  // "." + target ("in_proj", "mixer.x_proj"). Empty: the family's defaults.
  std::vector<std::string> target_modules;
  // alpha / rank, or alpha / sqrt(rank) with rsLoRA.
  double scale() const;
};

// Default targets: Mamba {embeddings, in_proj, x_proj, dt_proj, out_proj}; Mamba-2 {in_proj, out_proj};
// GPT-NeoX {query_key_value, dense, dense_h_to_4h, dense_4h_to_h, embed_in}.
std::vector<std::string> default_lora_targets(const std::string& family);

// Attaches adapters to every module matching a target and freezes every base parameter. Linear:
// A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0; embedding: A = 0, B ~ N(0, 1)
// (peft's init, so the adapted model starts equal to the base), drawn from `seed`. A target matching no
// module, or a module that already has an adapter, is a clear error.
void apply_lora(models::CausalLM& model, const LoraConfig& config, uint64_t seed);

// HF module path -> adapter of every adapted module.
std::vector<std::string> adapted_modules(models::CausalLM& model);

// Adapter tensors by peft's on-disk names: base_model.model.<path>.lora_A.weight / lora_B.weight, and
// base_model.model.<path>.lora_embedding_A / lora_embedding_B for embeddings.
std::map<std::string, at::Tensor> lora_state_dict(models::CausalLM& model);

// The LoraConfig the attached adapters were made with (targets: the last name of each adapted module).
LoraConfig attached_lora_config(models::CausalLM& model);

// Folds every adapter into its base weight and removes the adapters. A tied output head is untied
// first when the embedding is adapted (the head must keep reading E0, as in the unmerged model).
void merge_lora(models::CausalLM& model);

// Writes dir/adapter_config.json and dir/adapter_model.safetensors, which HF peft's
// PeftModel.from_pretrained loads, as one folder put in place whole (core/file_io.h AtomicDir: an existing
// `dir` is replaced, never left half old, half new).
void save_peft_adapter(models::CausalLM& model, const std::string& dir, const std::string& base_model_name = "");

// Reads a peft LoRA folder (adapter_model.safetensors, fp32/fp16/bf16) and attaches its adapters to
// `model` (which must have none). Unsupported options (DoRA, rank/alpha patterns, biases,
// fan_in_fan_out), missing or extra tensors and shape mismatches are clear errors. Returns its config.
LoraConfig load_peft_adapter(models::CausalLM& model, const std::string& dir);

}  // namespace mft::peft
