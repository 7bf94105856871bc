#include "models/original_layout.h"

#include "models/config_json.h"

#include <c10/util/Exception.h>

#include <filesystem>

namespace mft::models {

std::optional<nlohmann::json> original_config_to_hf(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("d_model") || j.contains("hidden_size")) return std::nullopt;
  const ConfigJson c(j, path, "mamba");
  const nlohmann::json ssm = j.value("ssm_cfg", nlohmann::json::object());
  c.require(ssm.is_object(), "\"ssm_cfg\" must be an object");
  const bool mamba2 = ssm.value("layer", std::string("Mamba1")) == "Mamba2";
  c.require(j.value("rms_norm", true), "\"rms_norm\": false (LayerNorm blocks) is not supported");
  c.require(j.value("attn_layer_idx", nlohmann::json::array()).empty(),
            "\"attn_layer_idx\" (hybrid attention layers) is not supported");
  c.require(j.value("d_intermediate", 0) == 0, "\"d_intermediate\" > 0 (MLP blocks) is not supported");
  nlohmann::json hf;
  hf["model_type"] = mamba2 ? "mamba2" : "mamba";
  hf["hidden_size"] = j["d_model"];
  hf["num_hidden_layers"] = j.value("n_layer", 0);
  // mamba-ssm pads the vocabulary to a multiple of pad_vocab_size_multiple (embedding rows).
  const int64_t multiple = j.value("pad_vocab_size_multiple", 8);
  const int64_t vocab = j.value("vocab_size", 50277);
  hf["vocab_size"] = (vocab + multiple - 1) / multiple * multiple;
  hf["tie_word_embeddings"] = j.value("tie_embeddings", true);
  hf["residual_in_fp32"] = j.value("residual_in_fp32", true);
  hf["layer_norm_epsilon"] = 1e-5;
  hf["pad_token_id"] = 0;
  hf["bos_token_id"] = 0;
  hf["eos_token_id"] = 0;
  // ssm_cfg key -> (HF key, mamba-ssm default): a table per mixer.
  const std::vector<std::tuple<const char*, const char*, nlohmann::json>> table =
      mamba2 ? std::vector<std::tuple<const char*, const char*, nlohmann::json>>{{"d_state", "state_size", 128},
                                                                                 {"d_conv", "conv_kernel", 4},
                                                                                 {"expand", "expand", 2},
                                                                                 {"headdim", "head_dim", 64},
                                                                                 {"ngroups", "n_groups", 1},
                                                                                 {"chunk_size", "chunk_size", 256},
                                                                                 {"conv_bias", "use_conv_bias", true},
                                                                                 {"bias", "use_bias", false}}
             : std::vector<std::tuple<const char*, const char*, nlohmann::json>>{{"d_state", "state_size", 16},
                                                                                 {"d_conv", "conv_kernel", 4},
                                                                                 {"expand", "expand", 2},
                                                                                 {"dt_rank", "time_step_rank", "auto"},
                                                                                 {"conv_bias", "use_conv_bias", true},
                                                                                 {"bias", "use_bias", false}};
  for (const auto& [from, to, fallback] : table) hf[to] = ssm.contains(from) ? ssm[from] : fallback;
  if (mamba2) {
    c.require(!ssm.value("D_has_hdim", false), "ssm_cfg.D_has_hdim is not supported");
    c.require(!ssm.value("norm_before_gate", false), "ssm_cfg.norm_before_gate is not supported");
    c.require(ssm.value("rmsnorm", true), "ssm_cfg.rmsnorm: false is not supported");
    hf["num_heads"] = hf["expand"].get<int64_t>() * hf["hidden_size"].get<int64_t>() / hf["head_dim"].get<int64_t>();
    if (ssm.contains("dt_limit")) hf["time_step_limit"] = ssm["dt_limit"];
  } else {
    hf["intermediate_size"] = hf["expand"].get<int64_t>() * hf["hidden_size"].get<int64_t>();
  }
  return hf;
}

const RenameTable& original_mamba_renames() {
  static const RenameTable t = {{"backbone.embedding.", "backbone.embeddings."}};
  return t;
}

nlohmann::json read_hf_config(const std::string& dir, bool* converted) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  nlohmann::json j = read_json_file(path, "model");
  TORCH_CHECK(j.is_object(), "model: ", path, " must hold a JSON object");
  auto hf = original_config_to_hf(j, path);
  if (converted) *converted = hf.has_value();
  return hf ? *hf : j;
}

}  // namespace mft::models
