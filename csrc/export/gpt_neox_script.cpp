// GPT-NeoX (Pythia) as TorchScript: the math of models/gpt_neox.cpp, per layer
//   a = attention(LN1(x)) with partial rotary and causal softmax attention; m = dense_4h_to_h(gelu(dense_h_to_4h(LN2
//   .))) x = x + a + m(LN2 x) (parallel residual) or h = x + a; h + m(LN2 h) (sequential)
// Only ATen ops (torch.scaled_dot_product_attention, layer_norm, gelu): the portable and the with-ops
// forms are the same module, as the model has no mft:: op on its inference path.
// State for step/prefill: [length (1,) int64, k_0, v_0, k_1, v_1, ...], k, v (B, heads, capacity,
// head_size) buffers grown by doubling (amortised O(1) per token), the first `length` positions valid.
#include "export/script_builder.h"
#include "models/gpt_neox.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace mft::exporting {
namespace {

// Smallest key/value capacity allocated (positions), as the model's cache.
constexpr int64_t kMinCacheCapacity = 64;

const char* kLayer = R"(
def rotary(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x' = x cos + rotate_half(x) sin on the first ${ROT} dims; x: (B, H, L, hd), cos, sin: (L, ${ROT}).
    if ${ROT} == 0:
        return x
    xr = x[:, :, :, :${ROT}]
    rotated = torch.cat([-xr[:, :, :, ${HALF}:], xr[:, :, :, :${HALF}]], -1)
    return torch.cat([xr * cos + rotated * sin, x[:, :, :, ${ROT}:]], -1)

def mlp(self, x: Tensor) -> Tensor:
    return torch.linear(torch.gelu(torch.linear(x, self.fc_in_weight, self.fc_in_bias)), self.fc_out_weight, self.fc_out_bias)

def attention(self, x: Tensor, cos: Tensor, sin: Tensor, k_cache: Tensor, v_cache: Tensor, past: int) -> Tuple[Tensor, Tensor, Tensor]:
    # x: (B, L, D). past < 0: no cache (causal over x). Otherwise attends to the `past` cached positions
    # too and writes this chunk's keys and values after them (growing the buffers when full).
    B = x.size(0)
    L = x.size(1)
    qkv = torch.linear(x, self.qkv_weight${QKV_BIAS}).view([B, L, ${HEADS}, ${HD3}]).transpose(1, 2)
    q = self.rotary(qkv[:, :, :, :${HD}], cos, sin)
    k = self.rotary(qkv[:, :, :, ${HD}:${HD2}], cos, sin)
    v = qkv[:, :, :, ${HD2}:]
    if past < 0:
        o = torch.scaled_dot_product_attention(q, k, v, None, 0.0, True)
    else:
        total = past + L
        if k_cache.size(2) < total:
            cap = max(total, max(2 * k_cache.size(2), ${MIN_CAP}))
            nk = torch.zeros([B, ${HEADS}, cap, ${HD}], dtype=k.dtype, device=k.device)
            nv = torch.zeros([B, ${HEADS}, cap, ${HD}], dtype=v.dtype, device=v.device)
            if past > 0:
                nk.narrow(2, 0, past).copy_(k_cache.narrow(2, 0, past))
                nv.narrow(2, 0, past).copy_(v_cache.narrow(2, 0, past))
            k_cache = nk
            v_cache = nv
        k_cache.narrow(2, past, L).copy_(k)
        v_cache.narrow(2, past, L).copy_(v)
        k = k_cache.narrow(2, 0, total)
        v = v_cache.narrow(2, 0, total)
        if past == 0:
            o = torch.scaled_dot_product_attention(q, k, v, None, 0.0, True)
        elif L == 1:
            o = torch.scaled_dot_product_attention(q, k, v)
        else:
            rows = torch.arange(past, total, device=x.device).unsqueeze(1)
            cols = torch.arange(total, device=x.device).unsqueeze(0)
            o = torch.scaled_dot_product_attention(q, k, v, cols <= rows)
    out = torch.linear(o.transpose(1, 2).reshape([B, L, ${D}]), self.dense_weight${DENSE_BIAS})
    return out, k_cache, v_cache

def block(self, x: Tensor, cos: Tensor, sin: Tensor, k_cache: Tensor, v_cache: Tensor, past: int) -> Tuple[Tensor, Tensor, Tensor]:
    a, k_cache, v_cache = self.attention(torch.layer_norm(x, [${D}], self.ln_attn_weight, self.ln_attn_bias, ${EPS}), cos, sin, k_cache, v_cache, past)
${RESIDUAL}
def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    return self.block(x, cos, sin, x, x, -1)[0]
)";

const char* kParallel =
    R"(    return x + a + self.mlp(torch.layer_norm(x, [${D}], self.ln_mlp_weight, self.ln_mlp_bias, ${EPS})), k_cache, v_cache
)";
const char* kSequential = R"(    h = x + a
    return h + self.mlp(torch.layer_norm(h, [${D}], self.ln_mlp_weight, self.ln_mlp_bias, ${EPS})), k_cache, v_cache
)";

const char* kRoot = R"(
def rope(self, past: int, L: int, dtype: int) -> Tuple[Tensor, Tensor]:
    # cos, sin of positions past .. past + L - 1: (L, ${ROT}), fp32 angles rounded to `dtype`.
    positions = torch.arange(past, past + L, dtype=self.inv_freq.dtype, device=self.inv_freq.device)
    freqs = positions.unsqueeze(-1) * self.inv_freq
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)

def head(self, h: Tensor) -> Tensor:
    return torch.linear(torch.layer_norm(h, [${D}], self.final_layer_norm_weight, self.final_layer_norm_bias, ${EPS}), self.${HEAD}).float()

def forward(self, input_ids: Tensor) -> Tensor:
    assert input_ids.dim() == 2, "forward: input_ids must be (batch, seqlen) int64"
    h = torch.embedding(self.embed_in_weight, input_ids)
    cos, sin = self.rope(0, input_ids.size(1), h.dtype)
${FORWARD_LAYERS}    return self.head(h)

def init_state(self, batch: int) -> List[Tensor]:
    w = self.embed_in_weight
    # dtype 4 is int64: the resolver of C++-compiled source knows torch's ops, not its dtype names.
    state: List[Tensor] = [torch.zeros([1], dtype=4, device=w.device)]
    for i in range(${LAYERS}):
        state.append(torch.zeros([batch, ${HEADS}, 0, ${HD}], dtype=w.dtype, device=w.device))
        state.append(torch.zeros([batch, ${HEADS}, 0, ${HD}], dtype=w.dtype, device=w.device))
    return state

def prefill(self, input_ids: Tensor, state: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    assert input_ids.dim() == 2, "prefill: input_ids must be (batch, seqlen) int64"
    assert len(state) == ${STATE_LEN}, "prefill: state must be the list init_state returns"
    past = int(state[0][0])
    L = input_ids.size(1)
    h = torch.embedding(self.embed_in_weight, input_ids)
    cos, sin = self.rope(past, L, h.dtype)
    out: List[Tensor] = [state[0] + L]
${PREFILL_LAYERS}    return self.head(h), out

def step(self, input_ids: Tensor, state: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    assert input_ids.dim() == 1, "step: input_ids must be (batch,) int64"
    logits, out = self.prefill(input_ids.unsqueeze(1), state)
    return logits.squeeze(1), out
)";

}  // namespace

torch::jit::Module build_gpt_neox_module(models::CausalLM& base) {
  auto* model = dynamic_cast<models::GPTNeoXForCausalLMImpl*>(&base);
  TORCH_INTERNAL_ASSERT(model != nullptr, "build_gpt_neox_module: not a GPT-NeoX model");
  const models::GPTNeoXConfig& c = model->config;
  const auto state = model->hf_state_dict();
  const int64_t hd = c.head_size(), rot = c.rotary_ndims();
  ScriptBuilder b;
  torch::jit::Module root = b.new_module("GPTNeoXForCausalLM");
  add_weight(root, "embed_in_weight", weight(state, "gpt_neox.embed_in.weight"));
  add_weight(root, "final_layer_norm_weight", weight(state, "gpt_neox.final_layer_norm.weight"));
  add_weight(root, "final_layer_norm_bias", weight(state, "gpt_neox.final_layer_norm.bias"));
  if (!c.tie_word_embeddings) add_weight(root, "embed_out_weight", weight(state, "embed_out.weight"));
  // inv_freq[j] = base^(-2j / rot), fp32, computed as the model computes it on every call.
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(weight(state, "gpt_neox.embed_in.weight").device());
  root.register_buffer("inv_freq",
                       at::pow(c.rotary_emb_base, -at::arange(0, rot, 2, f32) / double(std::max<int64_t>(rot, 1))));
  const std::map<std::string, std::string> sizes = {{"D", std::to_string(c.hidden_size)},
                                                    {"HEADS", std::to_string(c.num_attention_heads)},
                                                    {"HD", std::to_string(hd)},
                                                    {"HD2", std::to_string(2 * hd)},
                                                    {"HD3", std::to_string(3 * hd)},
                                                    {"ROT", std::to_string(rot)},
                                                    {"HALF", std::to_string(rot / 2)},
                                                    {"EPS", float_literal(c.layer_norm_eps)},
                                                    {"MIN_CAP", std::to_string(kMinCacheCapacity)}};
  std::string forward_layers, prefill_layers;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "gpt_neox.layers." + std::to_string(i) + ".", n = std::to_string(i);
    torch::jit::Module layer = b.new_module("GPTNeoXLayer");
    for (const auto& [ours, theirs] :
         std::vector<std::pair<std::string, std::string>>{{"ln_attn", "input_layernorm"},
                                                          {"ln_mlp", "post_attention_layernorm"},
                                                          {"qkv", "attention.query_key_value"},
                                                          {"dense", "attention.dense"},
                                                          {"fc_in", "mlp.dense_h_to_4h"},
                                                          {"fc_out", "mlp.dense_4h_to_h"}}) {
      add_weight(layer, ours + "_weight", weight(state, p + theirs + ".weight"));
      if (state.count(p + theirs + ".bias")) add_weight(layer, ours + "_bias", state.at(p + theirs + ".bias"));
    }
    auto v = sizes;
    v["QKV_BIAS"] = optional_arg(state, p + "attention.query_key_value.bias", "qkv_bias");
    v["DENSE_BIAS"] = optional_arg(state, p + "attention.dense.bias", "dense_bias");
    v["RESIDUAL"] = substitute(c.use_parallel_residual ? kParallel : kSequential, sizes);
    b.define(layer, substitute(kLayer, v));
    root.register_module("layer_" + n, layer);
    forward_layers += "    h = self.layer_" + n + ".forward(h, cos, sin)\n";
    prefill_layers += "    h, k, v = self.layer_" + n + ".block(h, cos, sin, state[" + std::to_string(2 * i + 1) +
                      "], state[" + std::to_string(2 * i + 2) + "], past)\n    out.append(k)\n    out.append(v)\n";
  }
  auto v = sizes;
  v["HEAD"] = c.tie_word_embeddings ? "embed_in_weight" : "embed_out_weight";
  v["FORWARD_LAYERS"] = forward_layers;
  v["PREFILL_LAYERS"] = prefill_layers;
  v["LAYERS"] = std::to_string(c.num_hidden_layers);
  v["STATE_LEN"] = std::to_string(1 + 2 * c.num_hidden_layers);
  b.define(root, substitute(kRoot, v));
  return root;
}

}  // namespace mft::exporting
