#include "export/script_builder.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

#include <cmath>
#include <cstdio>

namespace mft::exporting {
namespace jit = torch::jit;

namespace {
// `torch.ops`: `torch.ops.mft.selective_scan` resolves to the registered operator mft::selective_scan.
struct OpsNamespaces : jit::SugaredValue {
  std::string kind() const override { return "torch.ops"; }
  std::shared_ptr<jit::SugaredValue> attr(const jit::SourceRange& /*loc*/, jit::GraphFunction& /*m*/,
                                          const std::string& ns) override {
    return std::make_shared<jit::BuiltinModule>(ns);
  }
};

// `torch`: `torch.ops` as above, anything else an ATen operator (as LibTorch's native resolver does).
struct TorchNamespace : jit::SugaredValue {
  std::string kind() const override { return "torch"; }
  std::shared_ptr<jit::SugaredValue> attr(const jit::SourceRange& loc, jit::GraphFunction& m,
                                          const std::string& field) override {
    if (field == "ops") return std::make_shared<OpsNamespaces>();
    return jit::BuiltinModule("aten").attr(loc, m, field);
  }
};

struct ExportResolver : jit::Resolver {
  std::shared_ptr<jit::SugaredValue> resolveValue(const std::string& name, jit::GraphFunction& /*m*/,
                                                  const jit::SourceRange& /*loc*/) override {
    if (name == "torch") return std::make_shared<TorchNamespace>();
    return nullptr;
  }
  c10::TypePtr resolveType(const std::string& /*name*/, const jit::SourceRange& /*loc*/) override { return nullptr; }
};
}  // namespace

std::string substitute(const std::string& text, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t start = text.find("${", pos);
    if (start == std::string::npos) break;
    const size_t end = text.find('}', start);
    TORCH_INTERNAL_ASSERT(end != std::string::npos, "export: unterminated placeholder in a source template");
    const std::string key = text.substr(start + 2, end - start - 2);
    const auto it = values.find(key);
    TORCH_INTERNAL_ASSERT(it != values.end(), "export: no value for placeholder ${", key, "}");
    out.append(text, pos, start - pos);
    out += it->second;
    pos = end + 1;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string float_literal(double v) {
  TORCH_INTERNAL_ASSERT(std::isfinite(v), "export: non-finite constant ", v);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s(buf);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";  // a float, not an int
  return s;
}

ScriptBuilder::ScriptBuilder() : cu_(std::make_shared<jit::CompilationUnit>()) {}

jit::Module ScriptBuilder::new_module(const std::string& name) const {
  return jit::Module(c10::QualifiedName("__torch__.mft." + name), cu_, /*shouldMangle=*/true);
}

void ScriptBuilder::define(jit::Module& m, const std::string& source) const {
  m.define(source, std::make_shared<ExportResolver>());
}

void add_weight(jit::Module& m, const std::string& name, const at::Tensor& t) {
  m.register_parameter(name, t.detach().contiguous(), /*is_buffer=*/false);
}

const at::Tensor& weight(const std::map<std::string, at::Tensor>& state, const std::string& name) {
  const auto it = state.find(name);
  TORCH_INTERNAL_ASSERT(it != state.end(), "export: the model has no tensor ", name);
  return it->second;
}

std::string optional_arg(const std::map<std::string, at::Tensor>& state, const std::string& key,
                         const std::string& name) {
  return state.count(key) ? ", self." + name : "";
}

}  // namespace mft::exporting

namespace mft::exporting {

// Root of Mamba / Mamba-2. State: [conv_0, ssm_0, conv_1, ssm_1, ...], conv (B, channels, K - 1) in the
// activation dtype, ssm fp32: exactly the model's DecodeCache. prefill continues the state with a chunk
// of tokens; step is prefill of one token; forward starts from zeros (each layer's forward).
void define_recurrent_root(const ScriptBuilder& b, torch::jit::Module& root, const RecurrentRoot& r) {
  std::string forward_layers, prefill_layers;
  for (int64_t i = 0; i < r.layers; ++i) {
    const std::string n = std::to_string(i);
    forward_layers += "    h = self.layer_" + n + ".forward(h)\n";
    prefill_layers += "    h, conv, ssm = self.layer_" + n + ".block(h, state[" + std::to_string(2 * i) + "], state[" +
                      std::to_string(2 * i + 1) + "])\n    out.append(conv)\n    out.append(ssm)\n";
  }
  static const char* kSource = R"(
def embed(self, input_ids: Tensor) -> Tensor:
    return torch.embedding(self.embeddings_weight, input_ids)

def head(self, h: Tensor) -> Tensor:
    x = h.to(self.norm_f_weight.dtype)
    x32 = x.float()
    normed = self.norm_f_weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + ${EPS})).to(x.dtype)
    return torch.linear(normed.to(self.${HEAD}.dtype), self.${HEAD}).float()

def forward(self, input_ids: Tensor) -> Tensor:
    assert input_ids.dim() == 2, "forward: input_ids must be (batch, seqlen) int64"
    h = self.embed(input_ids)
${FORWARD_LAYERS}    return self.head(h)

def init_state(self, batch: int) -> List[Tensor]:
    state: List[Tensor] = []
    w = self.embeddings_weight
    for i in range(${LAYERS}):
        state.append(torch.zeros([batch, ${CONV_DIMS}], dtype=w.dtype, device=w.device))
        state.append(torch.zeros([batch, ${SSM_DIMS}], dtype=self.layer_0.A.dtype, device=w.device))
    return state

def prefill(self, input_ids: Tensor, state: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    assert input_ids.dim() == 2, "prefill: input_ids must be (batch, seqlen) int64"
    assert len(state) == ${STATE_LEN}, "prefill: state must be the list init_state returns"
    h = self.embed(input_ids)
    out: List[Tensor] = []
${PREFILL_LAYERS}    return self.head(h), out

def step(self, input_ids: Tensor, state: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    assert input_ids.dim() == 1, "step: input_ids must be (batch,) int64"
    logits, out = self.prefill(input_ids.unsqueeze(1), state)
    return logits.squeeze(1), out
)";
  b.define(root, substitute(kSource, {{"EPS", float_literal(r.eps)},
                                      {"HEAD", r.tied ? "embeddings_weight" : "lm_head_weight"},
                                      {"FORWARD_LAYERS", forward_layers},
                                      {"PREFILL_LAYERS", prefill_layers},
                                      {"LAYERS", std::to_string(r.layers)},
                                      {"STATE_LEN", std::to_string(2 * r.layers)},
                                      {"CONV_DIMS", r.conv_dims},
                                      {"SSM_DIMS", r.ssm_dims}}));
}

}  // namespace mft::exporting
