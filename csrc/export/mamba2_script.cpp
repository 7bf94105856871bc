// Mamba-2 as TorchScript: the math of models/mamba2.cpp, per layer
//   u = RMSNorm(h);  [z | xBC | dt] = in_proj(u);  xBC = silu(conv(xBC));  x, B, C = split(xBC)
//   y = ssd(x, dt, A, B, C, D, dt_bias, softplus, dt_limit);  y = RMSNorm_groups(y * silu(z));  h += out_proj(y)
// Portable: the conv is torch.conv1d over [conv_state | xBC]; the scan is the chunked SSD algorithm of
// ops/ssd_scan_chunked.cpp (intra-chunk masked matmuls, one state per head carried between chunks) in
// ATen ops. With ops: mft::causal_conv1d / ssd_scan and their decode steps, as the model calls them.
#include "export/script_builder.h"
#include "models/mamba2.h"

#include <ATen/ATen.h>

#include <cmath>

namespace mft::exporting {
namespace {

const char* kLayerCommon = R"(
def rms(self, x: Tensor) -> Tensor:
    x32 = x.float()
    return self.norm_weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + ${EPS})).to(x.dtype)

def gated_norm(self, y: Tensor, z: Tensor) -> Tensor:
    # y * silu(z), RMS-normalised within each of the ${G} groups in fp32; y, z: (B, L, E).
    g = y.float() * torch.silu(z.float())
    grouped = g.view([g.size(0), g.size(1), ${G}, ${EG}])
    normed = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + ${EPS})
    return self.gnorm_weight * normed.view([g.size(0), g.size(1), ${E}]).to(y.dtype)

def block(self, h: Tensor, conv_state: Tensor, ssm_state: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    y, conv_state, ssm_state = self.mix(self.rms(h.to(self.norm_weight.dtype)), conv_state, ssm_state)
    return h${RESIDUAL} + y, conv_state, ssm_state

def forward(self, h: Tensor) -> Tensor:
    conv = torch.zeros([h.size(0), ${CD}, ${K1}], dtype=self.in_proj_weight.dtype, device=h.device)
    ssm = torch.zeros([h.size(0), ${H}, ${P}, ${N}], dtype=self.A.dtype, device=h.device)
    return self.block(h, conv, ssm)[0]

def mix(self, u: Tensor, conv_state: Tensor, ssm_state: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # u: (B, L, D) -> (B, L, D) and the states after u.
    Bsz = u.size(0)
    L = u.size(1)
    proj = torch.linear(u, self.in_proj_weight${IN_BIAS})
    xBC, conv_state = self.conv(proj[:, :, ${E}:${E_CD}].transpose(1, 2), conv_state)
    xBC = xBC.transpose(1, 2)
    x = xBC[:, :, :${E}].reshape([Bsz, L, ${H}, ${P}])
    Bm = xBC[:, :, ${E}:${E_GN}].reshape([Bsz, L, ${G}, ${N}])
    Cm = xBC[:, :, ${E_GN}:].reshape([Bsz, L, ${G}, ${N}])
    y, ssm_state = self.ssd(x, proj[:, :, ${E_CD}:], Bm, Cm, ssm_state)
    y = self.gated_norm(y.reshape([Bsz, L, ${E}]), proj[:, :, :${E}])
    return torch.linear(y, self.out_proj_weight${OUT_BIAS}), conv_state, ssm_state
)";

const char* kPortable = R"(
def conv(self, x: Tensor, conv_state: Tensor) -> Tuple[Tensor, Tensor]:
    # x: (B, CD, L); conv_state: (B, CD, K - 1), the inputs before x. Computed in fp32 as the op does.
    L = x.size(2)
    window = torch.cat([conv_state.float(), x.float()], 2)
    out = torch.silu(torch.conv1d(window, self.conv_weight.float(), ${CONV_BIAS}, [1], [0], [1], ${CD}))
    return out.to(x.dtype), window[:, :, L:].to(conv_state.dtype)

def ssd(self, x: Tensor, dt: Tensor, Bm: Tensor, Cm: Tensor, S: Tensor) -> Tuple[Tensor, Tensor]:
    # x: (b, L, h, p); dt: (b, L, h); Bm, Cm: (b, L, g, n); S: (b, h, p, n) fp32. Chunks of ${CHUNK} steps.
    L = x.size(1)
    xf = x.float()
    d = torch.softplus(dt.float() + self.dt_bias)${CLAMP}
    Bh = Bm.float()${PER_HEAD}
    Ch = Cm.float()${PER_HEAD}
    ys: List[Tensor] = []
    for c0 in range(0, L, ${CHUNK}):
        c1 = min(c0 + ${CHUNK}, L)
        dc = d[:, c0:c1].transpose(1, 2)
        xc = xf[:, c0:c1].transpose(1, 2)
        Bc = Bh[:, c0:c1].transpose(1, 2)
        Cc = Ch[:, c0:c1].transpose(1, 2)
        cs = torch.cumsum(dc * self.A.unsqueeze(-1), -1)
        idx = torch.arange(c1 - c0, device=x.device)
        causal = idx.unsqueeze(1) >= idx.unsqueeze(0)
        decay = torch.exp((cs.unsqueeze(-1) - cs.unsqueeze(-2)).clamp_max(0.0)) * causal
        M = torch.matmul(Cc, Bc.transpose(-1, -2)) * decay * dc.unsqueeze(-2)
        y = torch.matmul(M, xc) + torch.exp(cs).unsqueeze(-1) * torch.matmul(Cc, S.transpose(-1, -2))
        w = torch.exp(cs[:, :, -1:] - cs) * dc
        S = torch.exp(cs[:, :, -1]).unsqueeze(-1).unsqueeze(-1) * S + torch.matmul((xc * w.unsqueeze(-1)).transpose(-1, -2), Bc)
        ys.append(y.transpose(1, 2))
    y = torch.cat(ys, 1) + self.D.unsqueeze(-1) * xf
    return y.to(x.dtype), S
)";

const char* kWithOps = R"(
def conv(self, x: Tensor, conv_state: Tensor) -> Tuple[Tensor, Tensor]:
    # x: (B, CD, L); conv_state updated in place by the decode step (L = 1).
    L = x.size(2)
    if L == 1:
        return torch.ops.mft.causal_conv1d_update(x[:, :, 0], conv_state, self.conv_weight, ${CONV_BIAS}, True).unsqueeze(-1), conv_state
    out = torch.ops.mft.causal_conv1d(x.contiguous(), self.conv_weight, ${CONV_BIAS}, conv_state, True, None)
    return out, torch.cat([conv_state, x.to(conv_state.dtype)], 2)[:, :, L:].contiguous()

def ssd(self, x: Tensor, dt: Tensor, Bm: Tensor, Cm: Tensor, S: Tensor) -> Tuple[Tensor, Tensor]:
    # S updated in place by the decode step (L = 1).
    if x.size(1) == 1:
        y = torch.ops.mft.ssd_state_update(S, x[:, 0], dt[:, 0], self.A, Bm[:, 0], Cm[:, 0], self.D, None, self.dt_bias, True, ${LIMIT})
        return y.unsqueeze(1), S
    return torch.ops.mft.ssd_scan(x, dt, self.A, Bm, Cm, ${CHUNK}, self.D, None, self.dt_bias, S, None, True, ${LIMIT}, True)
)";

}  // namespace

torch::jit::Module build_mamba2_module(models::CausalLM& base, bool with_ops) {
  auto* model = dynamic_cast<models::Mamba2ForCausalLMImpl*>(&base);
  TORCH_INTERNAL_ASSERT(model != nullptr, "build_mamba2_module: not a Mamba-2 model");
  const models::Mamba2Config& c = model->config;
  const auto state = model->hf_state_dict();
  const int64_t E = c.intermediate_size(), CD = c.conv_dim(), H = c.num_heads, P = c.head_dim;
  const int64_t G = c.n_groups, N = c.state_size, K = c.conv_kernel;
  // dt_limit as the model applies it: clamp(dt, min, max), max may be infinite.
  const bool finite_max = std::isfinite(c.dt_limit_max);
  const std::string clamp = finite_max
                                ? ".clamp(" + float_literal(c.dt_limit_min) + ", " + float_literal(c.dt_limit_max) + ")"
                                : ".clamp_min(" + float_literal(c.dt_limit_min) + ")";
  const std::string limit = "[" + float_literal(c.dt_limit_min) + ", " +
                            (finite_max ? float_literal(c.dt_limit_max) : std::string("float(\"inf\")")) + "]";
  ScriptBuilder b;
  torch::jit::Module root = b.new_module("Mamba2ForCausalLM");
  add_weight(root, "embeddings_weight", weight(state, "backbone.embeddings.weight"));
  add_weight(root, "norm_f_weight", weight(state, "backbone.norm_f.weight"));
  if (!c.tie_word_embeddings) add_weight(root, "lm_head_weight", weight(state, "lm_head.weight"));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    torch::jit::Module layer = b.new_module("Mamba2Layer");
    add_weight(layer, "norm_weight", weight(state, p + "norm.weight"));
    add_weight(layer, "in_proj_weight", weight(state, p + "mixer.in_proj.weight"));
    const at::Tensor conv = weight(state, p + "mixer.conv1d.weight");  // (CD, 1, K)
    add_weight(layer, "conv_weight", with_ops ? conv.view({CD, K}) : conv);
    const bool conv_bias = state.count(p + "mixer.conv1d.bias") > 0;
    if (conv_bias) add_weight(layer, "conv_bias", state.at(p + "mixer.conv1d.bias"));
    add_weight(layer, "dt_bias", weight(state, p + "mixer.dt_bias").to(at::kFloat));
    add_weight(layer, "A_log", weight(state, p + "mixer.A_log"));
    add_weight(layer, "D", weight(state, p + "mixer.D").to(at::kFloat));
    add_weight(layer, "gnorm_weight", weight(state, p + "mixer.norm.weight"));
    add_weight(layer, "out_proj_weight", weight(state, p + "mixer.out_proj.weight"));
    for (const char* bias : {"in_proj", "out_proj"}) {
      if (state.count(p + "mixer." + bias + ".bias"))
        add_weight(layer, std::string(bias) + "_bias", state.at(p + "mixer." + bias + ".bias"));
    }
    // A = -exp(A_log) (H,) fp32, computed once here as the model computes it on every call.
    layer.register_buffer("A", -at::exp(weight(state, p + "mixer.A_log").detach().to(at::kFloat)));
    const std::map<std::string, std::string> v = {
        {"EPS", float_literal(c.layer_norm_epsilon)},
        {"RESIDUAL", c.residual_in_fp32 ? ".float()" : ""},
        {"E", std::to_string(E)},
        {"CD", std::to_string(CD)},
        {"E_CD", std::to_string(E + CD)},
        {"E_GN", std::to_string(E + G * N)},
        {"EG", std::to_string(E / G)},
        {"H", std::to_string(H)},
        {"P", std::to_string(P)},
        {"G", std::to_string(G)},
        {"N", std::to_string(N)},
        {"K1", std::to_string(K - 1)},
        {"CHUNK", std::to_string(c.chunk_size)},
        {"CLAMP", clamp},
        {"LIMIT", limit},
        {"PER_HEAD", H == G ? "" : ".repeat_interleave(" + std::to_string(H / G) + ", 2)"},
        {"IN_BIAS", optional_arg(state, p + "mixer.in_proj.bias", "in_proj_bias")},
        {"OUT_BIAS", optional_arg(state, p + "mixer.out_proj.bias", "out_proj_bias")},
        {"CONV_BIAS", conv_bias ? (with_ops ? "self.conv_bias" : "self.conv_bias.float()") : "None"}};
    b.define(layer, substitute(std::string(kLayerCommon) + (with_ops ? kWithOps : kPortable), v));
    root.register_module("layer_" + std::to_string(i), layer);
  }
  RecurrentRoot r;
  r.layers = c.num_hidden_layers;
  r.conv_dims = std::to_string(CD) + ", " + std::to_string(K - 1);
  r.ssm_dims = std::to_string(H) + ", " + std::to_string(P) + ", " + std::to_string(N);
  r.eps = c.layer_norm_epsilon;
  r.tied = c.tie_word_embeddings;
  define_recurrent_root(b, root, r);
  return root;
}

}  // namespace mft::exporting
