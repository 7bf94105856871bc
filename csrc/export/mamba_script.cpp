// Mamba-1 as TorchScript: the math of models/mamba.cpp, per layer
//   u = RMSNorm(h);  x, z = in_proj(u);  x = silu(conv(x));  [dt | B | C] = x_proj(x);  dt = dt_proj(dt)
//   y = selective_scan(x, dt, A, B, C, D, z, dt_bias, softplus);  h = h (fp32) + out_proj(y)
// Portable: the conv is torch.conv1d over [conv_state | x] (groups = channels), the scan a loop over time
// of one addcmul per step (exp(dt A) and dt x B are computed for a block of steps at once). With ops: the
// model's own calls (mft::mamba_inner over whole sequences; causal_conv1d, selective_scan and their decode
// steps when continuing a state).
#include "export/script_builder.h"
#include "models/mamba.h"

#include <ATen/ATen.h>

namespace mft::exporting {
namespace {

// Time steps whose exp(dt A) and dt x B (batch x steps x channels x dstate fp32 each) are materialised at
// once by the portable scan: 64 keeps them at 6 MiB each for batch 1 at mamba-130m's 1536 x 16, and the
// loop's per-step cost is one addcmul either way.
constexpr int64_t kScanBlock = 64;

// Methods every Mamba layer has: the RMSNorm and the residual block around mix().
const char* kLayerCommon = R"(
def rms(self, x: Tensor) -> Tensor:
    x32 = x.float()
    return self.norm_weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + ${EPS})).to(x.dtype)

def block(self, h: Tensor, conv_state: Tensor, ssm_state: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    y, conv_state, ssm_state = self.mix(self.rms(h.to(self.norm_weight.dtype)), conv_state, ssm_state)
    return h${RESIDUAL} + y, conv_state, ssm_state
)";

const char* kPortable = R"(
def conv(self, x: Tensor, conv_state: Tensor) -> Tuple[Tensor, Tensor]:
    # x: (B, E, L); conv_state: (B, E, K - 1), the inputs before x. Computed in fp32 as the op does.
    L = x.size(2)
    window = torch.cat([conv_state.float(), x.float()], 2)
    out = torch.silu(torch.conv1d(window, self.conv_weight.float(), ${CONV_BIAS}, [1], [0], [1], ${E}))
    return out.to(x.dtype), window[:, :, L:].to(conv_state.dtype)

def scan(self, x: Tensor, dt: Tensor, Bm: Tensor, Cm: Tensor, z: Tensor, state: Tensor) -> Tuple[Tensor, Tensor]:
    # x, dt, z: (B, L, E); Bm, Cm: (B, L, N); state: (B, E, N) fp32. fp32 throughout.
    L = x.size(1)
    xf = x.float()
    d = torch.softplus(dt.float() + self.dt_bias)
    dx = d * xf
    ys: List[Tensor] = []
    for t0 in range(0, L, ${BLOCK}):
        t1 = min(t0 + ${BLOCK}, L)
        dA = torch.exp(d[:, t0:t1].unsqueeze(-1) * self.A)
        dBx = dx[:, t0:t1].unsqueeze(-1) * Bm[:, t0:t1].float().unsqueeze(2)
        states: List[Tensor] = []
        for t in range(t1 - t0):
            state = torch.addcmul(dBx[:, t], dA[:, t], state)
            states.append(state)
        ys.append(torch.matmul(torch.stack(states, 1), Cm[:, t0:t1].float().unsqueeze(-1)).squeeze(-1))
    y = (torch.cat(ys, 1) + self.D * xf) * torch.silu(z.float())
    return y.to(x.dtype), state

def mix(self, u: Tensor, conv_state: Tensor, ssm_state: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # u: (B, L, D) -> (B, L, D) and the states after u.
    xz = torch.linear(u, self.in_proj_weight${IN_BIAS})
    x, conv_state = self.conv(xz[:, :, :${E}].transpose(1, 2), conv_state)
    x = x.transpose(1, 2)
    p = torch.linear(x, self.x_proj_weight)
    dt = torch.linear(p[:, :, :${R}], self.dt_proj_weight)
    y, ssm_state = self.scan(x, dt, p[:, :, ${R}:${RN}], p[:, :, ${RN}:], xz[:, :, ${E}:], ssm_state)
    return torch.linear(y, self.out_proj_weight${OUT_BIAS}), conv_state, ssm_state

def forward(self, h: Tensor) -> Tensor:
    conv = torch.zeros([h.size(0), ${E}, ${K1}], dtype=self.in_proj_weight.dtype, device=h.device)
    ssm = torch.zeros([h.size(0), ${E}, ${N}], dtype=self.A.dtype, device=h.device)
    return self.block(h, conv, ssm)[0]
)";

const char* kWithOps = R"(
def channel_major(self, w: Tensor, x: Tensor) -> Tensor:
    # w (out, in) applied to x (B, in, L) -> (B, out, L) contiguous, the layout the conv and the scan read: one
    # matrix product per batch row with transposed operands, no copies (the model's channel_major_linear).
    if x.size(0) == 1:
        return torch.mm(w, x[0]).unsqueeze(0)
    return torch.bmm(w.unsqueeze(0).expand([x.size(0), w.size(0), w.size(1)]), x)

def mix(self, u: Tensor, conv_state: Tensor, ssm_state: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # u: (B, L, D) -> (B, L, D); the states are updated in place by the decode steps (L = 1).
    L = u.size(1)
    if L == 1:
        xz = torch.linear(u, self.in_proj_weight${IN_BIAS}).transpose(1, 2)
        x = torch.ops.mft.causal_conv1d_update(xz[:, :${E}, 0], conv_state, self.conv_weight, ${CONV_BIAS}, True).unsqueeze(-1)
        p = torch.linear(x.transpose(1, 2), self.x_proj_weight).transpose(1, 2)
        dt = torch.linear(p[:, :${R}].transpose(1, 2), self.dt_proj_weight).transpose(1, 2)
    else:
        xz = self.channel_major(self.in_proj_weight, u.transpose(1, 2))${IN_BIAS_CM}
        x_in = xz[:, :${E}]
        x = torch.ops.mft.causal_conv1d(x_in, self.conv_weight, ${CONV_BIAS}, conv_state, True, None)
        conv_state = torch.cat([conv_state, x_in.to(conv_state.dtype)], 2)[:, :, L:].contiguous()
        p = self.channel_major(self.x_proj_weight, x)
        dt = self.channel_major(self.dt_proj_weight, p[:, :${R}])
    z = xz[:, ${E}:]
    Bm = p[:, ${R}:${RN}]
    Cm = p[:, ${RN}:]
    if L == 1:
        y = torch.ops.mft.selective_state_update(ssm_state, x[:, :, 0], dt[:, :, 0], self.A, Bm[:, :, 0], Cm[:, :, 0], self.D, z[:, :, 0], self.dt_bias, True).unsqueeze(-1)
    else:
        y, ssm_state = torch.ops.mft.selective_scan(x, dt, self.A, Bm, Cm, self.D, z, self.dt_bias, True, ssm_state, True, None)
    return torch.linear(y.transpose(1, 2), self.out_proj_weight${OUT_BIAS}), conv_state, ssm_state

def forward(self, h: Tensor) -> Tensor:
    # Whole sequences from zero states: the fused mixer, as the model's forward.
    xz = torch.linear(self.rms(h.to(self.norm_weight.dtype)), self.in_proj_weight${IN_BIAS}).transpose(1, 2).contiguous()
    y = torch.ops.mft.mamba_inner(xz, self.conv_weight, ${CONV_BIAS}, self.x_proj_weight, self.dt_proj_weight, self.out_proj_weight, ${OUT_BIAS_OR_NONE}, self.A, self.D, self.dt_bias, None, None, None, None, None, None, [0.0, 0.0, 0.0], 0.0, False, None, None)
    return h${RESIDUAL} + y
)";

}  // namespace

torch::jit::Module build_mamba_module(models::CausalLM& base, bool with_ops) {
  auto* model = dynamic_cast<models::MambaForCausalLMImpl*>(&base);
  TORCH_INTERNAL_ASSERT(model != nullptr, "build_mamba_module: not a Mamba model");
  const models::MambaConfig& c = model->config;
  const auto state = model->hf_state_dict();
  const int64_t E = c.intermediate_size, N = c.state_size, R = c.time_step_rank, K = c.conv_kernel;
  ScriptBuilder b;
  torch::jit::Module root = b.new_module("MambaForCausalLM");
  add_weight(root, "embeddings_weight", weight(state, "backbone.embeddings.weight"));
  add_weight(root, "norm_f_weight", weight(state, "backbone.norm_f.weight"));
  if (!c.tie_word_embeddings) add_weight(root, "lm_head_weight", weight(state, "lm_head.weight"));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    torch::jit::Module layer = b.new_module("MambaLayer");
    add_weight(layer, "norm_weight", weight(state, p + "norm.weight"));
    add_weight(layer, "in_proj_weight", weight(state, p + "mixer.in_proj.weight"));
    const at::Tensor conv = weight(state, p + "mixer.conv1d.weight");  // (E, 1, K)
    add_weight(layer, "conv_weight", with_ops ? conv.view({E, K}) : conv);
    add_weight(layer, "x_proj_weight", weight(state, p + "mixer.x_proj.weight"));
    add_weight(layer, "dt_proj_weight", weight(state, p + "mixer.dt_proj.weight"));
    add_weight(layer, "dt_bias", weight(state, p + "mixer.dt_proj.bias").to(at::kFloat));
    add_weight(layer, "A_log", weight(state, p + "mixer.A_log"));
    add_weight(layer, "D", weight(state, p + "mixer.D").to(at::kFloat));
    add_weight(layer, "out_proj_weight", weight(state, p + "mixer.out_proj.weight"));
    for (const char* bias : {"in_proj", "out_proj"}) {
      if (state.count(p + "mixer." + bias + ".bias"))
        add_weight(layer, std::string(bias) + "_bias", state.at(p + "mixer." + bias + ".bias"));
    }
    if (state.count(p + "mixer.conv1d.bias")) add_weight(layer, "conv_bias", state.at(p + "mixer.conv1d.bias"));
    // A = -exp(A_log) (E, N) fp32, computed once here as the model computes it on every call.
    layer.register_buffer("A", -at::exp(weight(state, p + "mixer.A_log").detach().to(at::kFloat)));
    const bool conv_bias = state.count(p + "mixer.conv1d.bias") > 0;
    const std::map<std::string, std::string> v = {
        {"EPS", float_literal(c.layer_norm_epsilon)},
        {"RESIDUAL", c.residual_in_fp32 ? ".float()" : ""},
        {"E", std::to_string(E)},
        {"N", std::to_string(N)},
        {"R", std::to_string(R)},
        {"RN", std::to_string(R + N)},
        {"K1", std::to_string(K - 1)},
        {"BLOCK", std::to_string(kScanBlock)},
        {"IN_BIAS", optional_arg(state, p + "mixer.in_proj.bias", "in_proj_bias")},
        {"OUT_BIAS", optional_arg(state, p + "mixer.out_proj.bias", "out_proj_bias")},
        {"IN_BIAS_CM", state.count(p + "mixer.in_proj.bias") ? " + self.in_proj_bias.unsqueeze(-1)" : ""},
        {"OUT_BIAS_OR_NONE", state.count(p + "mixer.out_proj.bias") ? "self.out_proj_bias" : "None"},
        {"CONV_BIAS", conv_bias ? (with_ops ? "self.conv_bias" : "self.conv_bias.float()") : "None"}};
    b.define(layer, substitute(std::string(kLayerCommon) + (with_ops ? kWithOps : kPortable), v));
    root.register_module("layer_" + std::to_string(i), layer);
  }
  RecurrentRoot r;
  r.layers = c.num_hidden_layers;
  r.conv_dims = std::to_string(E) + ", " + std::to_string(K - 1);
  r.ssm_dims = std::to_string(E) + ", " + std::to_string(N);
  r.eps = c.layer_norm_epsilon;
  r.tied = c.tie_word_embeddings;
  define_recurrent_root(b, root, r);
  return root;
}

}  // namespace mft::exporting
