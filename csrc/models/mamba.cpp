#include "models/mamba.h"

#include "io/safetensors.h"
#include "models/config_json.h"
#include "models/load_weights.h"
#include "ops/ops.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <set>

namespace mft::models {
namespace nn = torch::nn;

MambaConfig MambaConfig::from_json_file(const std::string& path) {
  const ConfigJson j(path, "mamba");
  MambaConfig c;  // absent keys keep HF MambaConfig's defaults (configuration_mamba.py)
  j.get_positive_int("vocab_size", c.vocab_size);
  j.get_positive_int("hidden_size", c.hidden_size);
  j.get_positive_int("state_size", c.state_size);
  j.get_positive_int("num_hidden_layers", c.num_hidden_layers);
  j.get_positive_int("conv_kernel", c.conv_kernel);
  double expand = 2;
  if (j.get_number("expand", expand)) j.require(expand > 0, "\"expand\" must be positive");
  if (!j.get_positive_int("intermediate_size", c.intermediate_size))
    c.intermediate_size = int64_t(expand * c.hidden_size);
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
  j.get_number("layer_norm_epsilon", c.layer_norm_epsilon);
  return c;
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
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

at::Tensor MambaMixerImpl::forward(const at::Tensor& u) {
  const at::Tensor xz = in_proj(u).transpose(1, 2);  // (B, 2E, L)
  const at::Tensor x_in = xz.narrow(1, 0, inner).contiguous(), z = xz.narrow(1, inner, inner);
  const OptTensor bias = conv_bias.defined() ? OptTensor(conv_bias) : std::nullopt;
  const at::Tensor x = mft::causal_conv1d(x_in, conv_weight.view({inner, -1}), bias, {}, /*silu=*/true);  // (B, E, L)
  const at::Tensor p = x_proj(x.transpose(1, 2));                           // (B, L, R + 2N)
  const at::Tensor dt = at::linear(p.narrow(2, 0, rank), dt_proj->weight);  // (B, L, E), bias in the scan
  const at::Tensor Bm = p.narrow(2, rank, state).transpose(1, 2);           // (B, N, L)
  const at::Tensor Cm = p.narrow(2, rank + state, state).transpose(1, 2);   // (B, N, L)
  const at::Tensor A = -at::exp(A_log.to(at::kFloat));                      // (E, N)
  auto [y, last] = mft::selective_scan(x, dt.transpose(1, 2), A, Bm, Cm, D.to(at::kFloat), z,
                                       dt_proj->bias.to(at::kFloat), /*delta_softplus=*/true);
  return out_proj(y.transpose(1, 2));  // (B, L, D)
}

MambaBlockImpl::MambaBlockImpl(const MambaConfig& c) : residual_in_fp32(c.residual_in_fp32) {
  norm = register_module("norm", RMSNorm(c.hidden_size, c.layer_norm_epsilon));
  mixer = register_module("mixer", MambaMixer(c));
}

at::Tensor MambaBlockImpl::forward(const at::Tensor& h) {
  const at::Tensor residual = residual_in_fp32 ? h.to(at::kFloat) : h;
  return residual + mixer(norm(h.to(norm->weight.scalar_type())));
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

at::Tensor MambaForCausalLMImpl::forward(const at::Tensor& input_ids) {
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.scalar_type() == at::kLong,
              "mamba: input_ids must be (batch, seqlen) int64; got ", input_ids.sizes(), " ", input_ids.scalar_type());
  at::Tensor h = embeddings(input_ids);
  for (const auto& layer : *layers) h = layer->as<MambaBlock>()->forward(h);
  h = norm_f(h.to(norm_f->weight.scalar_type()));
  const at::Tensor head = config.tie_word_embeddings ? embeddings->weight : lm_head->weight;  // (V, D)
  return at::linear(h.to(head.scalar_type()), head).to(at::kFloat);
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
  load_weights("mamba", dir, parameter_table(*model), io::load_safetensors_checkpoint(dir), tolerated);
  return model;
}

}  // namespace mft::models
