#include "models/mamba.h"

#include "core/cast_cache.h"
#include "core/json_parse.h"
#include "models/checkpoint.h"
#include "models/config_json.h"
#include "models/load_weights.h"
#include "models/lora_adapter.h"
#include "models/original_layout.h"
#include "models/tied_embeddings.h"
#include "ops/channel_major.h"
#include "ops/mamba_inner.h"
#include "ops/ops.h"
#include "ops/rms_norm.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace mft::models {
namespace nn = torch::nn;

MambaConfig MambaConfig::from_json_file(const std::string& path) {
  const nlohmann::json raw = read_json_file(path, "mamba");
  return from_json(original_config_to_hf(raw, path).value_or(raw), path);
}

MambaConfig MambaConfig::from_json(const nlohmann::json& json, const std::string& path) {
  const ConfigJson j(json, path, "mamba");
  if (j.has("model_type")) {
    j.require(json["model_type"] == "mamba",
              "model_type is " + json_excerpt(json["model_type"]) + "; expected \"mamba\"");
  }
  MambaConfig c;  // absent keys keep HF MambaConfig's defaults (configuration_mamba.py)
  j.get_positive_int("vocab_size", c.vocab_size);
  j.get_positive_int("hidden_size", c.hidden_size);
  j.get_positive_int("state_size", c.state_size);
  j.get_positive_int("num_hidden_layers", c.num_hidden_layers);
  j.get_positive_int("conv_kernel", c.conv_kernel);
  double expand = 2;
  j.get_number_between("expand", expand, 0, 16, /*lo_open=*/true);
  if (!j.get_positive_int("intermediate_size", c.intermediate_size))
    c.intermediate_size = std::max<int64_t>(1, int64_t(expand * double(c.hidden_size)));
  if (j.has("time_step_rank") && j.json()["time_step_rank"].is_string()) {
    j.require(j.json()["time_step_rank"] == "auto", "\"time_step_rank\" must be an integer or \"auto\"");
    c.time_step_rank = (c.hidden_size + 15) / 16;
  } else if (!j.get_positive_int("time_step_rank", c.time_step_rank)) {
    c.time_step_rank = (c.hidden_size + 15) / 16;
  }
  j.get_bool("use_bias", c.use_bias);
  j.get_bool("use_conv_bias", c.use_conv_bias);
  j.get_bool("tie_word_embeddings", c.tie_word_embeddings);
  j.get_bool("residual_in_fp32", c.residual_in_fp32);
  j.get_number_between("layer_norm_epsilon", c.layer_norm_epsilon, 0, 1, /*lo_open=*/true);
  for (auto [key, field] : {std::pair{"pad_token_id", &c.pad_token_id},
                            {"bos_token_id", &c.bos_token_id},
                            {"eos_token_id", &c.eos_token_id}}) {
    if (j.has(key) && json[key].is_number_integer()) *field = json[key].get<int64_t>();
  }
  return c;
}

std::string MambaConfig::to_hf_json() const {
  nlohmann::json j;
  j["architectures"] = {"MambaForCausalLM"};
  j["model_type"] = "mamba";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["state_size"] = state_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["conv_kernel"] = conv_kernel;
  j["expand"] = double(intermediate_size) / double(hidden_size) == double(intermediate_size / hidden_size)
                    ? nlohmann::json(intermediate_size / hidden_size)
                    : nlohmann::json(double(intermediate_size) / double(hidden_size));
  j["intermediate_size"] = intermediate_size;
  j["time_step_rank"] = time_step_rank;
  j["use_bias"] = use_bias;
  j["use_conv_bias"] = use_conv_bias;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["residual_in_fp32"] = residual_in_fp32;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["pad_token_id"] = pad_token_id;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["hidden_act"] = "silu";
  j["dtype"] = "float32";
  return j.dump(2) + "\n";
}

ModelFootprint MambaConfig::footprint() const {
  const int64_t H = hidden_size, E = intermediate_size, N = state_size, R = time_step_rank, K = conv_kernel;
  const int64_t layer = H * 2 * E + (use_bias ? 2 * E : 0) + E * K + (use_conv_bias ? E : 0) + E * (R + 2 * N) + R * E +
                        E + E * N + E + E * H + (use_bias ? H : 0) + H;
  ModelFootprint f;
  f.family = "mamba";
  f.layers = num_hidden_layers;
  f.vocab = vocab_size;
  f.parameters = num_hidden_layers * layer + vocab_size * H + H + (tie_word_embeddings ? 0 : vocab_size * H);
  // bench-train at mamba-130m, fp32, seq 256 -> 1024: +0.32 MiB per token besides the logits, over 24
  // layers with E = 1536: 2.25 E fp32 values per token and layer (mamba_inner recomputes the conv and dt).
  f.train_bytes_per_token_layer = 2.25 * double(E) * 4;
  f.state_bytes_per_sequence_layer = double(E * (K - 1) + E * N) * 4;
  f.lora_features = double(num_hidden_layers * (2 * H + 5 * E + 2 * R + 2 * N) + vocab_size + H);
  return f;
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  return rms_norm(x, weight, eps);
}

MambaMixerImpl::MambaMixerImpl(const MambaConfig& c)
    : inner(c.intermediate_size), state(c.state_size), rank(c.time_step_rank) {
  in_proj = register_module("in_proj", nn::Linear(nn::LinearOptions(c.hidden_size, 2 * inner).bias(c.use_bias)));
  conv_weight = register_parameter("conv1d_weight", at::zeros({inner, 1, c.conv_kernel}));
  if (c.use_conv_bias) conv_bias = register_parameter("conv1d_bias", at::zeros({inner}));
  x_proj = register_module("x_proj", nn::Linear(nn::LinearOptions(inner, rank + 2 * state).bias(false)));
  dt_proj = register_module("dt_proj", nn::Linear(nn::LinearOptions(rank, inner).bias(true)));
  A_log = register_parameter("A_log", at::log(at::arange(1, state + 1, at::kFloat)).repeat({inner, 1}));
  D = register_parameter("D", at::ones({inner}));
  out_proj = register_module("out_proj", nn::Linear(nn::LinearOptions(inner, c.hidden_size).bias(c.use_bias)));
}

namespace {
// W (out, in) applied to channel-major activations x (B, in, L) -> (B, out, L), contiguous. The conv
// and the scan read (B, channels, L), so computing the projections in that layout (one GEMM per batch
// row with transposed operands, no data movement) saves a transposed copy of every activation.
at::Tensor channel_major_linear(const at::Tensor& w, const at::Tensor& x, const at::Tensor& bias = {}) {
  // One step (L = 1): the transposes are free and linear's matrix-vector path reads W fastest.
  if (x.size(2) == 1) return at::linear(x.transpose(1, 2), w, bias).transpose(1, 2);
  // Batch 1: one at::mm. Its backward returns the input's gradient in the input's own layout (for
  // in_proj, x is uᵀ of a row-major u: du comes back row-major), where bmm's comes back channel-major
  // and the norm's backward then reads mixed layouts (mamba-130m full-fp32 trace: about 35 ms a step).
  // squeeze, not select: select's backward would build a zero-filled, contiguous gradient.
  at::Tensor y = x.size(0) == 1 ? at::mm(w, x.squeeze(0)).unsqueeze(0)
                                : at::bmm(w.unsqueeze(0).expand({x.size(0), w.size(0), w.size(1)}), x);
  if (bias.defined()) y = y + bias.view({1, -1, 1});
  return y;
}

// The module's projection (with its bias when `with_bias`) in the channel-major layout, x (B, in, L)
// -> (B, out, L). With a LoRA adapter attached it goes through mft::lora_linear in the (B, L, *)
// layout (a transposed view back): the adapter is never bypassed, and unadapted layers keep the
// copy-free path.
at::Tensor channel_major_projection(nn::LinearImpl& m, const at::Tensor& x, bool with_bias) {
  if (find_lora(m) == nullptr) return channel_major_linear(m.weight, x, with_bias ? m.bias : at::Tensor());
  const at::Tensor xt = x.transpose(1, 2);
  return (with_bias ? adapted_linear(m, xt) : adapted_linear_no_bias(m, xt)).transpose(1, 2);
}
}  // namespace

namespace {
// The adapter of `m` as mamba_inner's factors (none when `m` is not adapted).
LoraFactors lora_factors(nn::LinearImpl& m) {
  const LoraAdapterImpl* a = find_lora(m);
  return a ? LoraFactors{a->A, a->B, a->scale} : LoraFactors{};
}
}  // namespace

at::Tensor MambaMixerImpl::forward(const at::Tensor& u, MambaLayerState* st, const OptTensor& seq_idx) {
  const at::Tensor xz = channel_major_projection(*in_proj, u.transpose(1, 2), /*with_bias=*/true);  // (B, 2E, L)
  const OptTensor bias = conv_bias.defined() ? OptTensor(conv_bias) : std::nullopt;
  const at::Tensor w = conv_weight.view({inner, -1});
  const at::Tensor A = -at::exp(A_log.to(at::kFloat));  // (E, N)
  const at::Tensor D32 = D.to(at::kFloat), dt_bias = dt_proj->bias.to(at::kFloat);
  // An adapted in_proj leaves xz a transposed view ((B, L, 2E) in memory); the conv and the scan read
  // (B, channels, L) contiguous, so one copy here replaces five half-size ones (conv and scan in the
  // forward, again in the backward), by a blocked transpose (ops/channel_major.h). Free when xz is
  // already contiguous.
  if (!st) return mixer_inner(mft::channel_major(xz), w, bias, A, D32, dt_bias, seq_idx);
  TORCH_CHECK(!seq_idx, "mamba: seq_idx (packed documents) is not supported when continuing a decoding cache");
  return mixer_step(xz, w, bias, A, D32, dt_bias, *st);
}

at::Tensor MambaMixerImpl::mixer_inner(const at::Tensor& xz, const at::Tensor& conv_w, const OptTensor& conv_b,
                                       const at::Tensor& A, const at::Tensor& D32, const at::Tensor& dt_bias,
                                       const OptTensor& seq_idx) {
  // The whole mixer after in_proj as one op: adapters on x_proj, dt_proj and out_proj act on the very
  // weights the scan path consumes, and training keeps only xz, x_dbl and y per layer.
  MambaInnerArgs a;
  a.xz = xz;
  a.conv_weight = conv_w;
  a.conv_bias = conv_b;
  a.x_proj_weight = x_proj->weight;
  a.dt_proj_weight = dt_proj->weight;
  a.out_proj_weight = out_proj->weight;
  a.out_proj_bias = or_none(out_proj->bias);
  a.A = A;
  a.D = D32;
  a.dt_bias = dt_bias;
  a.x_proj_lora = lora_factors(*x_proj);
  a.dt_proj_lora = lora_factors(*dt_proj);
  a.out_proj_lora = lora_factors(*out_proj);
  // One dropout probability for the op: the adapters of a model share their config (csrc/peft).
  bool first = true;
  for (nn::LinearImpl* m : {x_proj.get(), dt_proj.get(), out_proj.get()}) {
    if (const LoraAdapterImpl* l = find_lora(*m)) {
      TORCH_CHECK(first || l->dropout == a.lora_dropout,
                  "mamba: the LoRA adapters of one mixer must share their dropout; got ", a.lora_dropout, " and ",
                  l->dropout);
      a.lora_dropout = l->dropout;
      a.training = a.training || l->is_training();
      first = false;
    }
  }
  a.seq_idx = seq_idx;
  return mft::mamba_inner(a);  // (B, L, D)
}

at::Tensor MambaMixerImpl::mixer_step(const at::Tensor& xz, const at::Tensor& w, const OptTensor& bias,
                                      const at::Tensor& A, const at::Tensor& D32, const at::Tensor& dt_bias,
                                      MambaLayerState& st) {
  // Continues from a decoding state (prefill chunks and single steps) through the individual ops.
  const int64_t L = xz.size(2);
  const at::Tensor x_in = xz.narrow(1, 0, inner), z = xz.narrow(1, inner, inner);
  const int64_t keep = w.size(1) - 1;
  at::Tensor x;  // (B, E, L)
  if (L == 1) {
    x = mft::causal_conv1d_update(x_in.select(2, 0), st.conv, w, bias, /*silu=*/true).unsqueeze(-1);
  } else {
    x = mft::causal_conv1d(x_in, w, bias, or_none(st.conv), /*silu=*/true);
    if (keep > 0) st.conv = at::cat({st.conv, x_in.to(st.conv.scalar_type())}, 2).narrow(2, L, keep).contiguous();
  }
  const at::Tensor p = channel_major_projection(*x_proj, x, /*with_bias=*/true);  // (B, R + 2N, L)
  // (B, E, L); dt_proj's bias is added by the scan.
  const at::Tensor dt = channel_major_projection(*dt_proj, p.narrow(1, 0, rank), /*with_bias=*/false);
  const at::Tensor Bm = p.narrow(1, rank, state);          // (B, N, L)
  const at::Tensor Cm = p.narrow(1, rank + state, state);  // (B, N, L)
  at::Tensor y;                                            // (B, E, L)
  if (L == 1) {
    y = mft::selective_state_update(st.ssm, x.select(2, 0), dt.select(2, 0), A, Bm.select(2, 0), Cm.select(2, 0), D32,
                                    z.select(2, 0), dt_bias, /*dt_softplus=*/true)
            .unsqueeze(-1);
  } else {
    at::Tensor last;
    std::tie(y, last) = mft::selective_scan(x, dt, A, Bm, Cm, D32, z, dt_bias, /*delta_softplus=*/true, or_none(st.ssm),
                                            /*return_last_state=*/true);
    st.ssm = last;
  }
  return adapted_linear(*out_proj, y.transpose(1, 2));  // (B, L, D)
}

MambaBlockImpl::MambaBlockImpl(const MambaConfig& c) : residual_in_fp32(c.residual_in_fp32) {
  norm = register_module("norm", RMSNorm(c.hidden_size, c.layer_norm_epsilon));
  mixer = register_module("mixer", MambaMixer(c));
}

at::Tensor MambaBlockImpl::forward(const at::Tensor& h, MambaLayerState* state, const OptTensor& seq_idx) {
  const at::Tensor residual = residual_in_fp32 ? h.to(at::kFloat) : h;
  return residual + mixer->forward(norm(h.to(norm->weight.scalar_type())), state, seq_idx);
}

MambaForCausalLMImpl::MambaForCausalLMImpl(const MambaConfig& c) : config(c) {
  embeddings = register_module("embeddings", nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(MambaBlock(c));
  norm_f = register_module("norm_f", RMSNorm(c.hidden_size, c.layer_norm_epsilon));
  // Tied (HF default): the head reads the embedding matrix; no lm_head module exists.
  if (!c.tie_word_embeddings) {
    lm_head = register_module("lm_head", nn::Linear(nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  }
}

at::Tensor MambaForCausalLMImpl::forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx) {
  check_input_ids(input_ids, config.vocab_size, "mamba");
  check_seq_idx(seq_idx, input_ids, "mamba");
  TiedUse in = config.tie_word_embeddings ? tied_lookup(*embeddings, input_ids)
                                          : TiedUse{adapted_embedding(*embeddings, input_ids), lm_head->weight};
  at::Tensor h = in.embedded;
  for (const auto& layer : *layers) {
    MambaBlockImpl* block = layer->as<MambaBlock>();
    h = run_block([block, seq_idx](const at::Tensor& x) { return block->forward(x, nullptr, seq_idx); }, h);
  }
  h = norm_f(h.to(norm_f->weight.scalar_type()));
  // (V, D); frozen under autocast: its low-precision copy from the cast cache (core/cast_cache.h).
  const at::Tensor head = autocast_weight(in.head);
  return logits_out(at::linear(h.to(head.scalar_type()), head));
}

std::unique_ptr<DecodeCache> MambaCache::repeat(int64_t n) const {
  auto c = std::make_unique<MambaCache>();
  c->batch = n;
  c->length = length;
  for (const auto& l : layers)
    c->layers.push_back({repeat_cache_rows(*this, l.conv, n), repeat_cache_rows(*this, l.ssm, n)});
  return c;
}

std::vector<at::Tensor*> MambaCache::recurrent_states() {
  std::vector<at::Tensor*> s;
  for (auto& l : layers) s.push_back(&l.ssm);
  return s;
}

at::Tensor MambaMixerImpl::delta(const at::Tensor& u) {
  const at::Tensor xz = channel_major_projection(*in_proj, u.transpose(1, 2), /*with_bias=*/true);  // (B, 2E, L)
  const OptTensor bias = conv_bias.defined() ? OptTensor(conv_bias) : std::nullopt;
  const at::Tensor x = mft::causal_conv1d(xz.narrow(1, 0, inner), conv_weight.view({inner, -1}), bias, std::nullopt,
                                          /*silu=*/true);
  const at::Tensor p = channel_major_projection(*x_proj, x, /*with_bias=*/true);
  const at::Tensor dt = channel_major_projection(*dt_proj, p.narrow(1, 0, rank), /*with_bias=*/false);  // (B, E, L)
  return at::softplus(dt.to(at::kFloat) + dt_proj->bias.to(at::kFloat).view({1, -1, 1})).transpose(1, 2);
}

std::vector<CausalLM::Decay> MambaForCausalLMImpl::recurrence_decays(const at::Tensor& input_ids) {
  check_input_ids(input_ids, config.vocab_size, "mamba");
  std::vector<Decay> out;
  at::Tensor h = adapted_embedding(*embeddings, input_ids);
  for (const auto& layer : *layers) {
    auto& b = *layer->as<MambaBlock>();
    out.push_back(
        {b.mixer->delta(b.norm(h.to(b.norm->weight.scalar_type()))), -at::exp(b.mixer->A_log.to(at::kFloat))});
    h = b.forward(h);
  }
  return out;
}

std::unique_ptr<DecodeCache> MambaForCausalLMImpl::new_cache(int64_t batch) {
  auto cache = std::make_unique<MambaCache>();
  cache->batch = batch;
  const auto& w = embeddings->weight;
  for (const auto& layer : *layers) {
    const auto& mixer = *layer->as<MambaBlock>()->mixer;
    cache->layers.push_back({at::zeros({batch, mixer.inner, config.conv_kernel - 1}, w.options()),
                             at::zeros({batch, mixer.inner, mixer.state}, w.options().dtype(at::kFloat))});
  }
  return cache;
}

at::Tensor MambaForCausalLMImpl::forward_cached(const at::Tensor& input_ids, DecodeCache& base, int64_t last_logits) {
  check_input_ids(input_ids, config.vocab_size, "mamba");
  auto* cache = dynamic_cast<MambaCache*>(&base);
  TORCH_CHECK(cache && cache->batch == input_ids.size(0) && cache->layers.size() == layers->size(),
              "mamba: the cache was not made by this model for batch ", input_ids.size(0));
  at::Tensor h = adapted_embedding(*embeddings, input_ids);
  for (size_t i = 0; i < layers->size(); ++i) h = layers[i]->as<MambaBlock>()->forward(h, &cache->layers[i]);
  cache->length += input_ids.size(1);
  h = norm_f(last_positions(h, last_logits).to(norm_f->weight.scalar_type()));
  const at::Tensor head = config.tie_word_embeddings ? embeddings->weight : lm_head->weight;
  return logits_out(at::linear(h.to(head.scalar_type()), head));
}

namespace {
// HF checkpoint name -> the parameter it fills.
std::map<std::string, at::Tensor> parameter_table(MambaForCausalLMImpl& m) {
  std::map<std::string, at::Tensor> t;
  t["backbone.embeddings.weight"] = m.embeddings->weight;
  t["backbone.norm_f.weight"] = m.norm_f->weight;
  if (!m.config.tie_word_embeddings) t["lm_head.weight"] = m.lm_head->weight;
  for (size_t i = 0; i < m.layers->size(); ++i) {
    auto& b = *m.layers[i]->as<MambaBlock>();
    auto& x = *b.mixer;
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    t[p + "norm.weight"] = b.norm->weight;
    t[p + "mixer.in_proj.weight"] = x.in_proj->weight;
    if (x.in_proj->bias.defined()) t[p + "mixer.in_proj.bias"] = x.in_proj->bias;
    t[p + "mixer.conv1d.weight"] = x.conv_weight;
    if (x.conv_bias.defined()) t[p + "mixer.conv1d.bias"] = x.conv_bias;
    t[p + "mixer.x_proj.weight"] = x.x_proj->weight;
    t[p + "mixer.dt_proj.weight"] = x.dt_proj->weight;
    t[p + "mixer.dt_proj.bias"] = x.dt_proj->bias;
    t[p + "mixer.A_log"] = x.A_log;
    t[p + "mixer.D"] = x.D;
    t[p + "mixer.out_proj.weight"] = x.out_proj->weight;
    if (x.out_proj->bias.defined()) t[p + "mixer.out_proj.bias"] = x.out_proj->bias;
  }
  return t;
}
}  // namespace

MambaForCausalLM load_mamba(const std::string& dir) {
  namespace fs = std::filesystem;
  const MambaConfig config = MambaConfig::from_json_file((fs::path(dir) / "config.json").string());
  MambaForCausalLM model(config);
  // A tied head reads the embeddings; a checkpoint may still carry lm_head.weight.
  const std::set<std::string> tolerated =
      config.tie_word_embeddings ? std::set<std::string>{"lm_head.weight"} : std::set<std::string>{};
  load_weights("mamba", dir, parameter_table(*model), read_checkpoint(dir, original_mamba_renames()), tolerated);
  return model;
}

std::map<std::string, at::Tensor> MambaForCausalLMImpl::hf_state_dict() {
  return parameter_table(*this);
}

std::map<std::string, std::shared_ptr<torch::nn::Module>> MambaForCausalLMImpl::hf_lora_modules() {
  std::map<std::string, std::shared_ptr<torch::nn::Module>> t;
  t["backbone.embeddings"] = embeddings.ptr();
  for (size_t i = 0; i < layers->size(); ++i) {
    auto& x = *layers[i]->as<MambaBlock>()->mixer;
    const std::string p = "backbone.layers." + std::to_string(i) + ".mixer.";
    t[p + "in_proj"] = x.in_proj.ptr();
    t[p + "x_proj"] = x.x_proj.ptr();
    t[p + "dt_proj"] = x.dt_proj.ptr();
    t[p + "out_proj"] = x.out_proj.ptr();
  }
  return t;
}

void MambaForCausalLMImpl::untie_word_embeddings() {
  if (!config.tie_word_embeddings) return;
  lm_head = register_untied_head(*this, "lm_head", embeddings->weight);
  config.tie_word_embeddings = false;
}

}  // namespace mft::models
