#pragma once
// TorchScript export of a mamba-ft model (`mamba-ft export`). The archive torch.jit.load (Python) and
// torch::jit::load (C++) open holds one scripted module with
//   forward(input_ids: (B, L) int64) -> logits (B, L, vocab) fp32
//   init_state(batch: int) -> List[Tensor]
//   prefill(input_ids: (B, L) int64, state) -> (logits (B, L, vocab), state)   continues a state by L tokens
//   step(input_ids: (B,) int64, state) -> (logits (B, vocab), state)          one token, O(1) for Mamba
// Use the returned state (the with-ops decode steps also update the passed tensors in place). State:
// Mamba / Mamba-2 [conv_0, ssm_0, conv_1, ssm_1, ...] (conv (B, channels, K - 1) in the weights' dtype,
// ssm fp32); GPT-NeoX [length (1,) int64, k_0, v_0, ...] (k, v (B, heads, capacity, head_size)).
// Extra files: config.json (HF config, with "dtype" and an "mft_export" section), tokenizer.json (when
// given), mft_requires (empty: plain ATen ops only; otherwise the op library to load first).
#include "models/causal_lm.h"

#include <string>
#include <unordered_map>

namespace mft::exporting {

// The library a with-ops archive needs (torch.ops.load_library / linking): what mft_requires holds.
inline constexpr const char* kOpsLibrary = "libmft_ops.so";

struct ExportOptions {
  // Call the mft:: ops (faster; the loader must load kOpsLibrary first). GPT-NeoX has no mft:: op on its
  // inference path: its archive is the portable one either way (and requires nothing).
  bool with_ops = false;
  std::string tokenizer_json;  // path of a tokenizer.json to store in the archive; empty: none
};

// Fails with a clear error unless `path` can be created or replaced (checked before any long work).
void check_output_writable(const std::string& path);

// The extra files of the archive (config.json, mft_requires, tokenizer.json when given).
std::unordered_map<std::string, std::string> archive_files(models::CausalLM& model, const ExportOptions& options);

// True when the archive for `model` with these options calls mft:: ops.
bool needs_ops_library(const models::CausalLM& model, const ExportOptions& options);

// Scripts `model` (in its current dtype and device) and writes the archive to `path` through a temporary
// file renamed into place, so `path` is never half-written. LoRA adapters still attached are merged
// first (peft::merge_lora; the model is changed).
void export_torchscript(models::CausalLM& model, const std::string& path, const ExportOptions& options);

}  // namespace mft::exporting
