#include "peft/lora.h"

#include "core/file_io.h"
#include "core/json_parse.h"

#include "io/safetensors.h"
#include "models/lora_adapter.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace mft::peft {
namespace fs = std::filesystem;
using models::CausalLM;
using models::LoraAdapter;
using models::LoraAdapterImpl;

namespace {
// Peft's key prefix: PeftModel wraps LoraModel wraps the HF model (formats.md §7.2).
constexpr const char* kPrefix = "base_model.model.";
constexpr const char* kConfigName = "adapter_config.json";
constexpr const char* kWeightsName = "adapter_model.safetensors";
// The peft release whose adapter format we write and test against (scripts/pins.env).
constexpr const char* kPeftVersion = "0.21.2";

bool matches(const std::string& path, const std::string& target) {
  return path == target ||
         (path.size() > target.size() && path.compare(path.size() - target.size(), target.size(), target) == 0 &&
          path[path.size() - target.size() - 1] == '.');
}

bool is_embedding(const torch::nn::Module& m) {
  return dynamic_cast<const torch::nn::EmbeddingImpl*>(&m) != nullptr;
}

at::Tensor base_weight(torch::nn::Module& m) {
  if (auto* e = dynamic_cast<torch::nn::EmbeddingImpl*>(&m)) return e->weight;
  auto* l = dynamic_cast<torch::nn::LinearImpl*>(&m);
  TORCH_INTERNAL_ASSERT(l, "LoRA: hf_lora_modules returned a module that is neither Linear nor Embedding");
  return l->weight;
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// Module path -> module for every module whose path matches a target; a target matching nothing is an
// error listing the module names that could be targeted.
std::map<std::string, std::shared_ptr<torch::nn::Module>> targeted(CausalLM& model,
                                                                   const std::vector<std::string>& targets) {
  const auto modules = model.hf_lora_modules();
  std::map<std::string, std::shared_ptr<torch::nn::Module>> out;
  for (const auto& target : targets) {
    bool any = false;
    for (const auto& [path, m] : modules) {
      if (matches(path, target)) {
        out[path] = m;
        any = true;
      }
    }
    if (!any) {
      std::set<std::string> names;  // the last component of each path: what a target usually names
      for (const auto& [path, m] : modules) names.insert(path.substr(path.rfind('.') + 1));
      TORCH_CHECK(false, "LoRA: target module \"", target, "\" matches no module of this ", model.family(),
                  " model; modules that can be adapted: ", join({names.begin(), names.end()}), " (e.g. ",
                  modules.begin()->first, ")");
    }
  }
  return out;
}

void check_config(const LoraConfig& c) {
  TORCH_CHECK(c.rank >= 1, "LoRA: rank must be >= 1; got ", c.rank);
  TORCH_CHECK(std::isfinite(c.alpha) && c.alpha > 0, "LoRA: alpha must be positive; got ", c.alpha);
  TORCH_CHECK(c.dropout >= 0 && c.dropout < 1, "LoRA: dropout must be in [0, 1); got ", c.dropout);
}

// Attaches zero-initialised adapters to every module of `config`'s targets; returns them by path.
std::map<std::string, LoraAdapterImpl*> attach(CausalLM& model, const LoraConfig& config) {
  check_config(config);
  const std::vector<std::string> targets =
      config.target_modules.empty() ? default_lora_targets(model.family()) : config.target_modules;
  std::map<std::string, LoraAdapterImpl*> out;
  for (const auto& [path, m] : targeted(model, targets)) {
    TORCH_CHECK(models::find_lora(*m) == nullptr, "LoRA: ", path, " already has an adapter");
    const at::Tensor w = base_weight(*m);  // linear (out, in); embedding (V, D)
    const auto opts = w.options().dtype(at::kFloat);
    const bool emb = is_embedding(*m);
    const int64_t in = emb ? w.size(0) : w.size(1), out_features = emb ? w.size(1) : w.size(0);
    LoraAdapter a(at::zeros({config.rank, in}, opts), at::zeros({out_features, config.rank}, opts), config.alpha,
                  config.use_rslora, config.dropout, emb);
    a->train(model.is_training());
    m->register_module("lora", a);
    out[path] = a.get();
  }
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  for (auto& [path, a] : out) {
    a->A.set_requires_grad(true);
    a->B.set_requires_grad(true);
  }
  return out;
}

std::map<std::string, LoraAdapterImpl*> attached(CausalLM& model) {
  std::map<std::string, LoraAdapterImpl*> out;
  for (const auto& [path, m] : model.hf_lora_modules()) {
    if (auto* a = models::find_lora(*m)) out[path] = a;
  }
  return out;
}

std::pair<std::string, std::string> state_keys(const std::string& path, bool embedding) {
  const std::string p = kPrefix + path;
  return embedding ? std::pair{p + ".lora_embedding_A", p + ".lora_embedding_B"}
                   : std::pair{p + ".lora_A.weight", p + ".lora_B.weight"};
}

}  // namespace

double LoraConfig::scale() const {
  return models::lora_scale(alpha, rank, use_rslora);
}

std::vector<std::string> default_lora_targets(const std::string& family) {
  if (family == "mamba") return {"embeddings", "in_proj", "x_proj", "dt_proj", "out_proj"};
  if (family == "mamba2") return {"in_proj", "out_proj"};
  if (family == "gpt_neox") return {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "embed_in"};
  TORCH_CHECK(false, "LoRA: no default target modules for model family \"", family, "\"");
}

void apply_lora(CausalLM& model, const LoraConfig& config, uint64_t seed) {
  const auto adapters = attach(model, config);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard no_grad;
  for (const auto& [path, a] : adapters) {  // map order: the same draws for the same model and seed
    if (a->embedding) {
      a->B.copy_(at::empty(a->B.sizes(), at::kFloat).normal_(0.0, 1.0, gen));
    } else {
      // kaiming_uniform(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in).
      const double bound = 1.0 / std::sqrt(double(a->A.size(1)));
      a->A.copy_(at::empty(a->A.sizes(), at::kFloat).uniform_(-bound, bound, gen));
    }
  }
}

std::vector<std::string> adapted_modules(CausalLM& model) {
  std::vector<std::string> out;
  for (const auto& [path, a] : attached(model)) out.push_back(path);
  return out;
}

std::map<std::string, at::Tensor> lora_state_dict(CausalLM& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [path, a] : attached(model)) {
    const auto [ka, kb] = state_keys(path, a->embedding);
    out[ka] = a->A;
    out[kb] = a->B;
  }
  return out;
}

LoraConfig attached_lora_config(CausalLM& model) {
  const auto adapters = attached(model);
  TORCH_CHECK(!adapters.empty(), "LoRA: the model has no adapters");
  const LoraAdapterImpl& first = *adapters.begin()->second;
  LoraConfig c{first.rank(), first.alpha, first.dropout, first.use_rslora, {}};
  std::set<std::string> names;
  for (const auto& [path, a] : adapters) {
    TORCH_CHECK(a->rank() == c.rank && a->alpha == c.alpha && a->use_rslora == c.use_rslora, "LoRA: adapter ", path,
                " has rank ", a->rank(), " / alpha ", a->alpha, "; the others have ", c.rank, " / ", c.alpha,
                " (one adapter_config.json cannot describe both)");
    names.insert(path.substr(path.rfind('.') + 1));
  }
  c.target_modules.assign(names.begin(), names.end());
  return c;
}

void merge_lora(CausalLM& model) {
  const auto adapters = attached(model);
  for (const auto& [path, a] : adapters) {
    if (a->embedding) model.untie_word_embeddings();
  }
  at::NoGradGuard no_grad;
  for (const auto& [path, m] : model.hf_lora_modules()) {
    LoraAdapterImpl* a = models::find_lora(*m);
    if (a == nullptr) continue;
    at::Tensor w = base_weight(*m);
    at::Tensor delta = at::mm(a->B, a->A).mul_(a->scale);  // (out, r) (r, in) -> (out, in), fp32
    if (a->embedding) delta = delta.t();                   // (D, V) -> (V, D)
    w.copy_(w.to(at::kFloat).add_(delta.to(w.device())).to(w.scalar_type()));
    m->unregister_module("lora");
  }
}

void save_peft_adapter(CausalLM& model, const std::string& dir, const std::string& base_model_name) {
  const LoraConfig c = attached_lora_config(model);
  AtomicDir folder(dir, "save_peft_adapter");
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, t] : lora_state_dict(model)) tensors[name] = t.detach().to(at::kCPU).contiguous();
  io::save_safetensors((fs::path(folder.path_to_fill()) / kWeightsName).string(), tensors, {{"format", "pt"}});
  nlohmann::json j;  // an object with sorted keys, as peft's json.dumps(..., sort_keys=True)
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(base_model_name);
  j["r"] = c.rank;
  j["lora_alpha"] = c.alpha;
  j["lora_dropout"] = c.dropout;
  j["target_modules"] = c.target_modules;
  j["use_rslora"] = c.use_rslora;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["modules_to_save"] = nullptr;
  j["inference_mode"] = true;
  j["use_dora"] = false;
  j["init_lora_weights"] = true;
  j["layers_to_transform"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["rank_pattern"] = nlohmann::json::object();
  j["alpha_pattern"] = nlohmann::json::object();
  j["revision"] = nullptr;
  j["peft_version"] = kPeftVersion;
  write_file_atomically((fs::path(folder.path_to_fill()) / kConfigName).string(), j.dump(2) + "\n",
                        "save_peft_adapter");
  folder.commit();
}

LoraConfig load_peft_adapter(CausalLM& model, const std::string& dir) {
  const fs::path cfg_path = fs::path(dir) / kConfigName, w_path = fs::path(dir) / kWeightsName;
  TORCH_CHECK(fs::exists(cfg_path), "load_peft_adapter: ", cfg_path.string(), " not found (not a peft adapter folder)");
  TORCH_CHECK(fs::exists(w_path), "load_peft_adapter: ", w_path.string(),
              " not found (only safetensors adapters are read; re-save with safe_serialization=True)");
  nlohmann::json j;
  try {
    j = load_json_file(cfg_path.string());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "load_peft_adapter: ", e.what());
  }
  const std::string where = cfg_path.string();
  auto field = [&](const char* key) -> const nlohmann::json& {
    TORCH_CHECK(j.contains(key), "load_peft_adapter: ", where, " has no \"", key, "\"");
    return j[key];
  };
  auto absent_or = [&](const char* key, const nlohmann::json& ok, const char* why) {
    TORCH_CHECK(!j.contains(key) || j[key].is_null() || j[key] == ok, "load_peft_adapter: ", where, ": \"", key,
                "\" = ", j.contains(key) ? json_excerpt(j[key]) : "", " is not supported (", why, ")");
  };
  TORCH_CHECK(field("peft_type") == "LORA", "load_peft_adapter: ", where, ": peft_type is ", j["peft_type"].dump(),
              "; only LORA adapters are supported");
  absent_or("use_dora", false, "DoRA");
  absent_or("fan_in_fan_out", false, "Conv1D-style transposed weights");
  absent_or("bias", "none", "trained biases");
  absent_or("rank_pattern", nlohmann::json::object(), "per-module ranks");
  absent_or("alpha_pattern", nlohmann::json::object(), "per-module alphas");
  absent_or("modules_to_save", nlohmann::json::array(), "fully trained extra modules");
  absent_or("layers_to_transform", nlohmann::json::array(), "a subset of layers");
  absent_or("exclude_modules", nlohmann::json::array(), "excluded modules");
  absent_or("lora_bias", false, "LoRA biases");
  absent_or("target_parameters", nlohmann::json::array(), "LoRA on raw parameters");
  absent_or("trainable_token_indices", nlohmann::json::object(), "trainable tokens");
  absent_or("layer_replication", nlohmann::json::array(), "replicated layers");
  absent_or("use_qalora", false, "QA-LoRA");
  LoraConfig c;
  TORCH_CHECK(field("r").is_number_integer(), "load_peft_adapter: ", where, ": \"r\" must be an integer");
  c.rank = j["r"].get<int64_t>();
  c.alpha = field("lora_alpha").get<double>();
  c.dropout = j.value("lora_dropout", 0.0);
  c.use_rslora = j.value("use_rslora", false);
  const auto& t = field("target_modules");
  TORCH_CHECK(t.is_array(), "load_peft_adapter: ", where, ": \"target_modules\" must be a list of module names; got ",
              t.dump(), " (regular expressions are not supported)");
  for (const auto& name : t) c.target_modules.push_back(name.get<std::string>());
  TORCH_CHECK(!c.target_modules.empty(), "load_peft_adapter: ", where, ": \"target_modules\" is empty");
  TORCH_CHECK(attached(model).empty(), "load_peft_adapter: the model already has adapters");

  const auto file = io::SafetensorsFile::open(w_path.string());
  const auto adapters = attach(model, c);
  std::set<std::string> unused;
  for (const auto& name : file.names()) unused.insert(name);
  at::NoGradGuard no_grad;
  for (const auto& [path, a] : adapters) {
    const auto [ka, kb] = state_keys(path, a->embedding);
    for (const auto& [key, dst] : {std::pair{ka, &a->A}, {kb, &a->B}}) {
      TORCH_CHECK(file.contains(key), "load_peft_adapter: ", w_path.string(), " has no tensor ", key,
                  " (the config targets ", path, ")");
      const at::Tensor src = file.tensor(key);
      TORCH_CHECK(src.sizes() == dst->sizes(), "load_peft_adapter: ", key, " is ", src.sizes(), "; this model needs ",
                  dst->sizes(), " (rank ", c.rank, ")");
      dst->copy_(src);
      unused.erase(key);
    }
  }
  TORCH_CHECK(unused.empty(), "load_peft_adapter: ", w_path.string(),
              " holds tensors this model has no place for: ", join({unused.begin(), unused.end()}));
  return c;
}

}  // namespace mft::peft
