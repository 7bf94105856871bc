#include "models/registry.h"

#include "models/gpt_neox.h"
#include "models/mamba.h"
#include "models/mamba2.h"
#include "models/memory_estimate.h"
#include "models/original_layout.h"
#include "tokenizer/byte_tokenizer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

namespace mft::models {
namespace {
struct Geometry {
  const char* name;
  int64_t hidden, layers, heads;  // heads: attention heads (pythia) only
};

std::string mamba_config(int64_t d, int64_t layers, int64_t vocab) {
  return nlohmann::json{{"model_type", "mamba"},
                        {"hidden_size", d},
                        {"num_hidden_layers", layers},
                        {"vocab_size", vocab},
                        {"state_size", 16},
                        {"conv_kernel", 4},
                        {"expand", 2},
                        {"intermediate_size", 2 * d},
                        {"time_step_rank", (d + 15) / 16},
                        {"tie_word_embeddings", true},
                        {"use_conv_bias", true},
                        {"use_bias", false}}
      .dump();
}

std::string mamba2_config(int64_t d, int64_t layers, int64_t vocab, int64_t head_dim, int64_t state) {
  return nlohmann::json{{"model_type", "mamba2"}, {"hidden_size", d},    {"num_hidden_layers", layers},
                        {"vocab_size", vocab},    {"state_size", state}, {"num_heads", 2 * d / head_dim},
                        {"head_dim", head_dim},   {"n_groups", 1},       {"expand", 2},
                        {"conv_kernel", 4},       {"chunk_size", 256},   {"tie_word_embeddings", true}}
      .dump();
}

std::string pythia_config(int64_t d, int64_t layers, int64_t heads, int64_t vocab) {
  return nlohmann::json{{"model_type", "gpt_neox"},
                        {"hidden_size", d},
                        {"num_hidden_layers", layers},
                        {"num_attention_heads", heads},
                        {"intermediate_size", 4 * d},
                        {"vocab_size", vocab},
                        {"rotary_pct", 0.25},
                        {"rotary_emb_base", 10000},
                        {"use_parallel_residual", true},
                        {"tie_word_embeddings", false},
                        {"max_position_embeddings", 2048}}
      .dump();
}

// The byte tokenizer's BOS/EOS (<|endoftext|>) and, where the family's config has one, its padding id.
std::string with_byte_specials(const std::string& config, bool has_pad) {
  nlohmann::json j = nlohmann::json::parse(config);
  j["bos_token_id"] = ByteTokenizer::kEndOfText;
  j["eos_token_id"] = ByteTokenizer::kEndOfText;
  if (has_pad) j["pad_token_id"] = ByteTokenizer::kPadding;
  return j.dump();
}

std::vector<PresetInfo> make_presets() {
  std::vector<PresetInfo> p;
  for (const Geometry& g : {Geometry{"130m", 768, 24, 0},
                            {"370m", 1024, 48, 0},
                            {"790m", 1536, 48, 0},
                            {"1.4b", 2048, 48, 0},
                            {"2.8b", 2560, 64, 0}}) {
    p.push_back({std::string("mamba-") + g.name, "mamba", mamba_config(g.hidden, g.layers, 50280)});
  }
  for (const Geometry& g : {Geometry{"130m", 768, 24, 0},
                            {"370m", 1024, 48, 0},
                            {"780m", 1536, 48, 0},
                            {"1.3b", 2048, 48, 0},
                            {"2.7b", 2560, 64, 0}}) {
    p.push_back({std::string("mamba2-") + g.name, "mamba2", mamba2_config(g.hidden, g.layers, 50288, 64, 128)});
  }
  for (const Geometry& g : {Geometry{"160m", 768, 12, 12},
                            {"410m", 1024, 24, 16},
                            {"1b", 2048, 16, 8},
                            {"1.4b", 2048, 24, 16},
                            {"2.8b", 2560, 32, 32}}) {
    p.push_back({std::string("pythia-") + g.name, "gpt_neox", pythia_config(g.hidden, g.layers, g.heads, 50304)});
  }
  // Tiny: a byte-level vocabulary (258 ids, padded to 272) and about 0.2M parameters each; config.json
  // names the byte tokenizer's specials, so HF generate on a saved tiny model stops at its EOS.
  p.push_back({"mamba-tiny", "mamba", with_byte_specials(mamba_config(64, 4, 272), true)});
  p.push_back({"mamba2-tiny", "mamba2", with_byte_specials(mamba2_config(64, 4, 272, 16, 32), true)});
  p.push_back({"pythia-tiny", "gpt_neox", with_byte_specials(pythia_config(64, 2, 4, 272), false)});
  return p;
}

std::shared_ptr<CausalLM> build(const std::string& family, const nlohmann::json& config, const std::string& where) {
  if (family == "mamba") return MambaForCausalLM(MambaConfig::from_json(config, where)).ptr();
  if (family == "mamba2") return Mamba2ForCausalLM(Mamba2Config::from_json(config, where)).ptr();
  return GPTNeoXForCausalLM(GPTNeoXConfig::from_json(config, where)).ptr();
}

// softplus^-1(y) = y + log(-expm1(-y))
at::Tensor inverse_softplus(const at::Tensor& y) {
  return y + at::log(-at::expm1(-y));
}

at::Tensor log_uniform_dt(int64_t n, double lo, double hi) {
  return at::exp(at::rand({n}) * (std::log(hi) - std::log(lo)) + std::log(lo)).clamp_min(1e-4);
}
}  // namespace

const std::vector<PresetInfo>& presets() {
  static const std::vector<PresetInfo> p = make_presets();
  return p;
}

namespace {
// The preset `spec` names ("preset:NAME"), nullptr for a folder; an unknown name is an error listing them.
const PresetInfo* find_preset(const std::string& spec) {
  const std::string prefix = "preset:";
  if (spec.rfind(prefix, 0) != 0) return nullptr;
  const std::string name = spec.substr(prefix.size());
  for (const auto& p : presets()) {
    if (p.name == name) return &p;
  }
  std::string names;
  for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
  TORCH_CHECK(false, "model: unknown preset \"", name, "\"; presets are: ", names);
}
}  // namespace

std::string model_family(const std::string& dir) {
  TORCH_CHECK(std::filesystem::is_directory(dir), "model: ", dir,
              " is not a folder (expected an HF model folder or preset:NAME)");
  const nlohmann::json j = read_hf_config(dir);
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  TORCH_CHECK(j.contains("model_type") && j["model_type"].is_string(), "model: ", path,
              " lacks \"model_type\" (expected \"mamba\", \"mamba2\" or \"gpt_neox\")");
  const std::string t = j["model_type"];
  TORCH_CHECK(t == "mamba" || t == "mamba2" || t == "gpt_neox", "model: ", path, ": model_type \"", t,
              "\" is not supported (expected \"mamba\", \"mamba2\" or \"gpt_neox\")");
  return t;
}

ModelFootprint model_footprint(const std::string& spec) {
  if (const PresetInfo* p = find_preset(spec)) {
    const nlohmann::json j = nlohmann::json::parse(p->config_json);
    if (p->family == "mamba") return MambaConfig::from_json(j, spec).footprint();
    if (p->family == "mamba2") return Mamba2Config::from_json(j, spec).footprint();
    return GPTNeoXConfig::from_json(j, spec).footprint();
  }
  const std::string family = model_family(spec);
  const std::string path = (std::filesystem::path(spec) / "config.json").string();
  if (family == "mamba") return MambaConfig::from_json_file(path).footprint();
  if (family == "mamba2") return Mamba2Config::from_json(read_hf_config(spec), path).footprint();
  return GPTNeoXConfig::from_json_file(path).footprint();
}

std::shared_ptr<CausalLM> load_model(const std::string& spec, uint64_t seed) {
  check_memory(estimate_weights(model_footprint(spec)), "model " + spec, "use a smaller model");
  if (const PresetInfo* p = find_preset(spec)) {
    auto model = build(p->family, nlohmann::json::parse(p->config_json), spec);
    init_family_weights(*model, seed);
    return model;
  }
  const std::string family = model_family(spec);
  if (family == "mamba") return load_mamba(spec).ptr();
  if (family == "mamba2") return load_mamba2(spec).ptr();
  return load_gpt_neox(spec).ptr();
}

void init_family_weights(CausalLM& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::manual_seed(seed);
  auto normal = [](at::Tensor t, double std) { t.normal_(0.0, std); };
  if (auto* m = dynamic_cast<GPTNeoXForCausalLMImpl*>(&model)) {
    for (auto& [name, t] : m->hf_state_dict()) {
      const bool norm = name.find("layernorm") != std::string::npos || name.find("layer_norm") != std::string::npos;
      if (norm) {
        name.size() > 5 && name.substr(name.size() - 4) == "bias" ? t.zero_() : t.fill_(1.0);
      } else if (name.substr(name.size() - 4) == "bias") {
        t.zero_();
      } else {
        normal(t, 0.02);
      }
    }
    return;
  }
  const bool is2 = dynamic_cast<Mamba2ForCausalLMImpl*>(&model) != nullptr;
  const int64_t layers = is2 ? static_cast<Mamba2ForCausalLMImpl&>(model).config.num_hidden_layers
                             : static_cast<MambaForCausalLMImpl&>(model).config.num_hidden_layers;
  for (auto& [name, t] : model.hf_state_dict()) {
    auto ends = [&](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (ends("embeddings.weight") || ends("lm_head.weight")) {
      normal(t, 0.02);
    } else if (ends("norm.weight") || ends("norm_f.weight") || ends("mixer.D")) {
      t.fill_(1.0);
    } else if (ends("A_log")) {
      if (is2) {
        t.copy_(at::log(at::rand({t.size(0)}) * 15.0 + 1.0));  // A in U(1, 16) per head
      } else {
        t.copy_(at::log(at::arange(1, t.size(1) + 1, at::kFloat)).expand_as(t));  // log(1..N) per channel
      }
    } else if (ends("dt_bias") || ends("dt_proj.bias")) {
      t.copy_(inverse_softplus(log_uniform_dt(t.size(0), 0.001, 0.1)));
    } else if (ends("dt_proj.weight")) {
      const double std = std::pow(double(t.size(1)), -0.5);  // dt_rank^-1/2
      t.uniform_(-std, std);
    } else if (ends("bias")) {
      t.zero_();
    } else {
      // Linear and conv weights: PyTorch's default kaiming-uniform bound 1/sqrt(fan_in), out_proj
      // scaled down by sqrt(n_layer) as mamba-ssm's rescale_prenorm_residual does.
      const int64_t fan_in = t.numel() / t.size(0);
      const double bound = 1.0 / std::sqrt(double(fan_in));
      t.uniform_(-bound, bound);
      if (ends("out_proj.weight")) t.div_(std::sqrt(double(layers)));
    }
  }
}

void cast_model(CausalLM& model, at::ScalarType dtype, const c10::Device& device) {
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf,
              "model: dtype must be float32, bfloat16 or float16; got ", dtype);
  model.to(device, dtype);
  at::NoGradGuard no_grad;
  for (auto& [name, t] : model.hf_state_dict()) {
    auto ends = [&](const char* s) {
      const size_t n = std::char_traits<char>::length(s);
      return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
    };
    if (ends(".A_log") || ends(".D") || ends(".dt_bias") || ends("dt_proj.bias")) {
      at::Tensor p = t;
      p.set_data(p.data().to(at::kFloat));
    }
  }
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp16" || name == "float16") return at::kHalf;
  TORCH_CHECK(false, "dtype \"", name, "\" is not one of fp32, bf16, fp16");
}

}  // namespace mft::models
