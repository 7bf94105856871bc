#pragma once
// The original state-spaces checkpoints (state-spaces/mamba-130m, mamba2-130m, ...): config.json holds
// mamba-ssm's MambaConfig dataclass (d_model, n_layer, ssm_cfg, ...) and the weights say
// backbone.embedding. This file maps both to the HF layout, by tables (formats.md §3.4-3.5).
#include "models/checkpoint.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace mft::models {

// The HF config (with model_type "mamba" or "mamba2") equivalent to an original config, or nullopt when
// `j` is not one (it has no "d_model"). Throws (naming `path`) on settings HF cannot express.
std::optional<nlohmann::json> original_config_to_hf(const nlohmann::json& j, const std::string& path);

// Original tensor-name prefixes -> HF prefixes.
const RenameTable& original_mamba_renames();

// config.json of `dir` as HF config JSON (original layouts converted); `converted` tells which it was.
nlohmann::json read_hf_config(const std::string& dir, bool* converted = nullptr);

}  // namespace mft::models
