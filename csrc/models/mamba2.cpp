#include "models/mamba2.h"

#include "core/json_parse.h"
#include "models/checkpoint.h"
#include "models/config_json.h"
#include "models/load_weights.h"
#include "models/lora_adapter.h"
#include "models/original_layout.h"
#include "models/tied_embeddings.h"
#include "ops/channel_major.h"
#include "ops/ops.h"
#include "ops/ssd_scan.h"

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <set>

namespace mft::models {
namespace nn = torch::nn;

Mamba2Config Mamba2Config::from_json(const nlohmann::json& json, const std::string& path) {
  const ConfigJson j(json, path, "mamba2");
  if (j.has("model_type")) {
    j.require(json["model_type"] == "mamba2",
              "model_type is " + json_excerpt(json["model_type"]) + "; expected \"mamba2\"");
  }
  Mamba2Config c;
  // HF's class defaults describe Codestral-7B: the geometry must be spelled out.
  for (auto [key, field] : {std::pair{"vocab_size", &c.vocab_size},
                            {"hidden_size", &c.hidden_size},
                            {"num_hidden_layers", &c.num_hidden_layers},
                            {"num_heads", &c.num_heads},
                            {"head_dim", &c.head_dim},
                            {"state_size", &c.state_size}}) {
    j.require(j.get_positive_int(key, *field), std::string("lacks \"") + key + "\" (a positive integer)");
  }
  j.get_positive_int("n_groups", c.n_groups);
  j.get_positive_int("conv_kernel", c.conv_kernel);
  j.get_positive_int("chunk_size", c.chunk_size);
  j.get_positive_int("expand", c.expand);
  j.get_bool("use_bias", c.use_bias);
  j.get_bool("use_conv_bias", c.use_conv_bias);
  j.get_bool("tie_word_embeddings", c.tie_word_embeddings);
  j.get_bool("residual_in_fp32", c.residual_in_fp32);
  j.get_number_between("layer_norm_epsilon", c.layer_norm_epsilon, 0, 1, /*lo_open=*/true);
  j.get_number_between("time_step_min", c.time_step_min, 0, 1e3, /*lo_open=*/true);
  j.get_number_between("time_step_max", c.time_step_max, 0, 1e3, /*lo_open=*/true);
  j.get_number_between("time_step_floor", c.time_step_floor, 0, 1e3, /*lo_open=*/false);
  j.require(c.time_step_min <= c.time_step_max, "time_step_min must not exceed time_step_max");
  if (j.has("time_step_limit")) {
    const auto& lim = json["time_step_limit"];
    j.require(lim.is_array() && lim.size() == 2 && lim[0].is_number() && lim[1].is_number() && lim[0] <= lim[1] &&
                  !std::isnan(lim[0].get<double>()) && !std::isnan(lim[1].get<double>()) && lim[0].get<double>() >= 0,
              "\"time_step_limit\" must be [min, max] with 0 <= min <= max; got " + json_excerpt(lim));
    c.dt_limit_min = lim[0].get<double>();
    c.dt_limit_max = lim[1].get<double>();
  }
  if (j.has("norm_before_gate")) {
    j.require(json["norm_before_gate"] == false, "\"norm_before_gate\": true is not supported (HF gates first)");
  }
  if (j.has("hidden_act")) {
    j.require(json["hidden_act"] == "silu", "hidden_act " + json_excerpt(json["hidden_act"]) + " is not supported");
  }
  j.require(c.num_heads % c.n_groups == 0, "num_heads " + std::to_string(c.num_heads) +
                                               " must be divisible by n_groups " + std::to_string(c.n_groups));
  j.require(c.hidden_size * c.expand == c.num_heads * c.head_dim,
            "hidden_size * expand (" + std::to_string(c.hidden_size * c.expand) +
                ") must equal num_heads * head_dim (" + std::to_string(c.num_heads * c.head_dim) + ")");
  for (auto [key, field] : {std::pair{"pad_token_id", &c.pad_token_id},
                            {"bos_token_id", &c.bos_token_id},
                            {"eos_token_id", &c.eos_token_id}}) {
    if (j.has(key) && json[key].is_number_integer()) *field = json[key].get<int64_t>();
  }
  return c;
}

ModelFootprint Mamba2Config::footprint() const {
  const int64_t H = hidden_size, E = intermediate_size(), C = conv_dim(), K = conv_kernel, heads = num_heads;
  const int64_t layer = H * (E + C + heads) + (use_bias ? E + C + heads : 0) + C * K + (use_conv_bias ? C : 0) +
                        3 * heads + E + E * H + (use_bias ? H : 0) + H;
  ModelFootprint f;
  f.family = "mamba2";
  f.layers = num_hidden_layers;
  f.vocab = vocab_size;
  f.parameters = num_hidden_layers * layer + vocab_size * H + H + (tie_word_embeddings ? 0 : vocab_size * H);
  // bench-train at mamba2-130m, fp32, seq 256 -> 1024: +1.9 MiB per token besides the logits, over 24
  // layers (E = 1536, 24 heads, chunks of 256): 5.5 E + 2 heads x chunk fp32 values per token and layer
  // (the chunked scan keeps per-chunk (chunk x chunk) decay and score matrices per head).
  f.train_bytes_per_token_layer = (5.5 * double(E) + 2.0 * double(heads * chunk_size)) * 4;
  f.state_bytes_per_sequence_layer = double(C * (K - 1) + heads * head_dim * state_size) * 4;
  f.lora_features = double(num_hidden_layers * (2 * H + 2 * E + C + heads));
  return f;
}

std::string Mamba2Config::to_hf_json() const {
  nlohmann::json j;
  j["architectures"] = {"Mamba2ForCausalLM"};
  j["model_type"] = "mamba2";
  for (auto [key, v] : {std::pair{"vocab_size", vocab_size},
                        {"hidden_size", hidden_size},
                        {"state_size", state_size},
                        {"num_hidden_layers", num_hidden_layers},
                        {"conv_kernel", conv_kernel},
                        {"num_heads", num_heads},
                        {"head_dim", head_dim},
                        {"n_groups", n_groups},
                        {"chunk_size", chunk_size},
                        {"expand", expand},
                        {"pad_token_id", pad_token_id},
                        {"bos_token_id", bos_token_id},
                        {"eos_token_id", eos_token_id}}) {
    j[key] = v;
  }
  j["use_bias"] = use_bias;
  j["use_conv_bias"] = use_conv_bias;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["residual_in_fp32"] = residual_in_fp32;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["time_step_min"] = time_step_min;
  j["time_step_max"] = time_step_max;
  j["time_step_floor"] = time_step_floor;
  // Infinity as transformers 5 writes it (plain JSON has no infinity).
  auto num = [](double v) {
    return std::isinf(v) ? nlohmann::json{{"__float__", v > 0 ? "Infinity" : "-Infinity"}} : nlohmann::json(v);
  };
  j["time_step_limit"] = {num(dt_limit_min), num(dt_limit_max)};
  j["hidden_act"] = "silu";
  j["rms_norm"] = true;
  j["norm_before_gate"] = false;
  j["dtype"] = "float32";
  return j.dump(2) + "\n";
}

Mamba2MixerImpl::Mamba2MixerImpl(const Mamba2Config& c) : config(c) {
  const int64_t E = c.intermediate_size(), H = c.num_heads;
  in_proj =
      register_module("in_proj", nn::Linear(nn::LinearOptions(c.hidden_size, E + c.conv_dim() + H).bias(c.use_bias)));
  conv_weight = register_parameter("conv1d_weight", at::zeros({c.conv_dim(), 1, c.conv_kernel}));
  if (c.use_conv_bias) conv_bias = register_parameter("conv1d_bias", at::zeros({c.conv_dim()}));
  dt_bias = register_parameter("dt_bias", at::zeros({H}));
  A_log = register_parameter("A_log", at::log(at::arange(1, H + 1, at::kFloat)));
  D = register_parameter("D", at::ones({H}));
  norm_weight = register_parameter("norm_weight", at::ones({E}));
  out_proj = register_module("out_proj", nn::Linear(nn::LinearOptions(E, c.hidden_size).bias(c.use_bias)));
}

at::Tensor Mamba2MixerImpl::gated_norm(const at::Tensor& y, const at::Tensor& z) const {
  // g = y * silu(z), then RMS-normalised within each of n_groups groups (fp32), times the weight.
  const auto sizes = y.sizes().vec();
  const at::Tensor g = y.to(at::kFloat) * at::silu(z.to(at::kFloat));
  const at::Tensor grouped = g.view({sizes[0], sizes[1], config.n_groups, -1});
  const at::Tensor normed = grouped * at::rsqrt(grouped.pow(2).mean(-1, /*keepdim=*/true) + config.layer_norm_epsilon);
  return norm_weight * normed.view(sizes).to(y.scalar_type());
}

at::Tensor Mamba2MixerImpl::forward(const at::Tensor& u, Mamba2LayerState* st, const OptTensor& seq_idx) {
  const int64_t B = u.size(0), L = u.size(1), E = config.intermediate_size(), H = config.num_heads;
  const int64_t P = config.head_dim, G = config.n_groups, N = config.state_size, CD = config.conv_dim();
  const at::Tensor proj = adapted_linear(*in_proj, u);  // (B, L, E + CD + H): [z | xBC | dt]
  const at::Tensor z = proj.narrow(2, 0, E);
  const at::Tensor xBC_in = mft::channel_major(proj.narrow(2, E, CD).transpose(1, 2));  // (B, CD, L)
  const at::Tensor dt = proj.narrow(2, E + CD, H);                                      // (B, L, H)
  const OptTensor bias = conv_bias.defined() ? OptTensor(conv_bias) : std::nullopt;
  const at::Tensor w = conv_weight.view({CD, -1});
  const int64_t keep = w.size(1) - 1;
  at::Tensor xBC;  // (B, CD, L)
  if (st && L == 1) {
    xBC = mft::causal_conv1d_update(xBC_in.select(2, 0), st->conv, w, bias, /*silu=*/true).unsqueeze(-1);
  } else {
    xBC = mft::causal_conv1d(xBC_in, w, bias, st ? or_none(st->conv) : std::nullopt, /*silu=*/true, seq_idx);
    if (st && keep > 0) {
      st->conv = at::cat({st->conv, xBC_in.to(st->conv.scalar_type())}, 2).narrow(2, L, keep).contiguous();
    }
  }
  const at::Tensor xBC_t = xBC.transpose(1, 2);  // (B, L, CD)
  const at::Tensor x = xBC_t.narrow(2, 0, E).reshape({B, L, H, P});
  const at::Tensor Bm = xBC_t.narrow(2, E, G * N).reshape({B, L, G, N});
  const at::Tensor Cm = xBC_t.narrow(2, E + G * N, G * N).reshape({B, L, G, N});
  const at::Tensor A = -at::exp(A_log.to(at::kFloat));  // (H,)
  const std::vector<double> limit{config.dt_limit_min, config.dt_limit_max};
  const at::Tensor D32 = D.to(at::kFloat), bias32 = dt_bias.to(at::kFloat);
  at::Tensor y;  // (B, L, H, P)
  if (st && L == 1) {
    y = mft::ssd_state_update(st->ssm, x.select(1, 0), dt.select(1, 0), A, Bm.select(1, 0), Cm.select(1, 0), D32, {},
                              bias32, /*dt_softplus=*/true, limit)
            .unsqueeze(1);
  } else {
    at::Tensor fin;
    std::tie(y, fin) = mft::ssd_scan(x, dt, A, Bm, Cm, config.chunk_size, D32, {}, bias32,
                                     st ? or_none(st->ssm) : std::nullopt, seq_idx, /*dt_softplus=*/true, limit,
                                     /*return_final_states=*/st != nullptr);
    if (st) st->ssm = fin;
  }
  return adapted_linear(*out_proj, gated_norm(y.reshape({B, L, E}), z));
}

Mamba2BlockImpl::Mamba2BlockImpl(const Mamba2Config& c) : residual_in_fp32(c.residual_in_fp32) {
  norm = register_module("norm", RMSNorm(c.hidden_size, c.layer_norm_epsilon));
  mixer = register_module("mixer", Mamba2Mixer(c));
}

at::Tensor Mamba2BlockImpl::forward(const at::Tensor& h, Mamba2LayerState* state, const OptTensor& seq_idx) {
  const at::Tensor residual = residual_in_fp32 ? h.to(at::kFloat) : h;
  return residual + mixer->forward(norm(h.to(norm->weight.scalar_type())), state, seq_idx);
}

Mamba2ForCausalLMImpl::Mamba2ForCausalLMImpl(const Mamba2Config& c) : config(c) {
  embeddings = register_module("embeddings", nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(Mamba2Block(c));
  norm_f = register_module("norm_f", RMSNorm(c.hidden_size, c.layer_norm_epsilon));
  if (!c.tie_word_embeddings) {
    lm_head = register_module("lm_head", nn::Linear(nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  }
}

at::Tensor Mamba2ForCausalLMImpl::head(const at::Tensor& h, const at::Tensor& head_weight) {
  const at::Tensor normed = norm_f(h.to(norm_f->weight.scalar_type()));
  const at::Tensor w = head_weight.defined()        ? head_weight
                       : config.tie_word_embeddings ? embeddings->weight
                                                    : lm_head->weight;  // (V, D)
  return logits_out(at::linear(normed.to(w.scalar_type()), w));
}

at::Tensor Mamba2ForCausalLMImpl::forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx) {
  check_input_ids(input_ids, config.vocab_size, "mamba2");
  check_seq_idx(seq_idx, input_ids, "mamba2");
  TiedUse in = config.tie_word_embeddings ? tied_lookup(*embeddings, input_ids)
                                          : TiedUse{adapted_embedding(*embeddings, input_ids), lm_head->weight};
  at::Tensor h = in.embedded;
  for (const auto& layer : *layers) {
    Mamba2BlockImpl* block = layer->as<Mamba2Block>();
    h = run_block([block, seq_idx](const at::Tensor& x) { return block->forward(x, nullptr, seq_idx); }, h);
  }
  return head(h, in.head);
}

std::unique_ptr<DecodeCache> Mamba2Cache::repeat(int64_t n) const {
  auto c = std::make_unique<Mamba2Cache>();
  c->batch = n;
  c->length = length;
  for (const auto& l : layers)
    c->layers.push_back({repeat_cache_rows(*this, l.conv, n), repeat_cache_rows(*this, l.ssm, n)});
  return c;
}

std::vector<at::Tensor*> Mamba2Cache::recurrent_states() {
  std::vector<at::Tensor*> s;
  for (auto& l : layers) s.push_back(&l.ssm);
  return s;
}

at::Tensor Mamba2MixerImpl::delta(const at::Tensor& u) {
  const int64_t E = config.intermediate_size(), H = config.num_heads, CD = config.conv_dim();
  const at::Tensor dt = adapted_linear(*in_proj, u).narrow(2, E + CD, H);  // (B, L, H)
  return mft::ssd_effective_dt(dt, dt_bias, /*dt_softplus=*/true, config.dt_limit_min, config.dt_limit_max, at::kFloat);
}

std::vector<CausalLM::Decay> Mamba2ForCausalLMImpl::recurrence_decays(const at::Tensor& input_ids) {
  check_input_ids(input_ids, config.vocab_size, "mamba2");
  std::vector<Decay> out;
  at::Tensor h = adapted_embedding(*embeddings, input_ids);
  for (const auto& layer : *layers) {
    auto& b = *layer->as<Mamba2Block>();
    out.push_back({b.mixer->delta(b.norm(h.to(b.norm->weight.scalar_type()))),
                   -at::exp(b.mixer->A_log.to(at::kFloat)).unsqueeze(1)});  // (H, 1): one rate per head
    h = b.forward(h);
  }
  return out;
}

std::unique_ptr<DecodeCache> Mamba2ForCausalLMImpl::new_cache(int64_t batch) {
  auto cache = std::make_unique<Mamba2Cache>();
  cache->batch = batch;
  const auto& w = embeddings->weight;
  for (size_t i = 0; i < layers->size(); ++i) {
    cache->layers.push_back(
        {at::zeros({batch, config.conv_dim(), config.conv_kernel - 1}, w.options()),
         at::zeros({batch, config.num_heads, config.head_dim, config.state_size}, w.options().dtype(at::kFloat))});
  }
  return cache;
}

at::Tensor Mamba2ForCausalLMImpl::forward_cached(const at::Tensor& input_ids, DecodeCache& base, int64_t last_logits) {
  check_input_ids(input_ids, config.vocab_size, "mamba2");
  auto* cache = dynamic_cast<Mamba2Cache*>(&base);
  TORCH_CHECK(cache && cache->batch == input_ids.size(0) && cache->layers.size() == layers->size(),
              "mamba2: the cache was not made by this model for batch ", input_ids.size(0));
  at::Tensor h = adapted_embedding(*embeddings, input_ids);
  for (size_t i = 0; i < layers->size(); ++i) h = layers[i]->as<Mamba2Block>()->forward(h, &cache->layers[i]);
  cache->length += input_ids.size(1);
  return head(last_positions(h, last_logits));
}

std::map<std::string, std::shared_ptr<torch::nn::Module>> Mamba2ForCausalLMImpl::hf_lora_modules() {
  std::map<std::string, std::shared_ptr<torch::nn::Module>> t;
  t["backbone.embeddings"] = embeddings.ptr();
  for (size_t i = 0; i < layers->size(); ++i) {
    auto& m = *layers[i]->as<Mamba2Block>()->mixer;
    const std::string p = "backbone.layers." + std::to_string(i) + ".mixer.";
    t[p + "in_proj"] = m.in_proj.ptr();
    t[p + "out_proj"] = m.out_proj.ptr();
  }
  return t;
}

void Mamba2ForCausalLMImpl::untie_word_embeddings() {
  if (!config.tie_word_embeddings) return;
  lm_head = register_untied_head(*this, "lm_head", embeddings->weight);
  config.tie_word_embeddings = false;
}

std::map<std::string, at::Tensor> Mamba2ForCausalLMImpl::hf_state_dict() {
  std::map<std::string, at::Tensor> t;
  t["backbone.embeddings.weight"] = embeddings->weight;
  t["backbone.norm_f.weight"] = norm_f->weight;
  if (!config.tie_word_embeddings) t["lm_head.weight"] = lm_head->weight;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto& b = *layers[i]->as<Mamba2Block>();
    auto& m = *b.mixer;
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    t[p + "norm.weight"] = b.norm->weight;
    t[p + "mixer.in_proj.weight"] = m.in_proj->weight;
    if (m.in_proj->bias.defined()) t[p + "mixer.in_proj.bias"] = m.in_proj->bias;
    t[p + "mixer.conv1d.weight"] = m.conv_weight;
    if (m.conv_bias.defined()) t[p + "mixer.conv1d.bias"] = m.conv_bias;
    t[p + "mixer.dt_bias"] = m.dt_bias;
    t[p + "mixer.A_log"] = m.A_log;
    t[p + "mixer.D"] = m.D;
    t[p + "mixer.norm.weight"] = m.norm_weight;
    t[p + "mixer.out_proj.weight"] = m.out_proj->weight;
    if (m.out_proj->bias.defined()) t[p + "mixer.out_proj.bias"] = m.out_proj->bias;
  }
  return t;
}

Mamba2ForCausalLM load_mamba2(const std::string& dir) {
  bool original = false;
  const nlohmann::json json = read_hf_config(dir, &original);
  Mamba2ForCausalLM model(Mamba2Config::from_json(json, (std::filesystem::path(dir) / "config.json").string()));
  const std::set<std::string> tolerated =
      model->config.tie_word_embeddings ? std::set<std::string>{"lm_head.weight"} : std::set<std::string>{};
  load_weights("mamba2", dir, model->hf_state_dict(), read_checkpoint(dir, original_mamba_renames()), tolerated);
  return model;
}

}  // namespace mft::models
