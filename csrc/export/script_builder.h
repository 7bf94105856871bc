#pragma once
// Building blocks of the exported TorchScript modules (internal to csrc/export):
//   ScriptBuilder  one compilation unit for the root module and its per-layer submodules; compiles
//                  TorchScript source with a resolver that also knows `torch.ops.<namespace>.<op>`
//                  (LibTorch's default resolver for Module::define only knows `torch.<aten op>`).
//   substitute     fills ${NAME} placeholders of a source template (sizes, epsilons, optional biases).
// Each family file (mamba_script.cpp, ...) writes its model's math as TorchScript source text.
#include "models/causal_lm.h"

#include <torch/csrc/jit/api/module.h>

#include <map>
#include <memory>
#include <string>

namespace mft::exporting {

// TorchScript source of `text` with every ${KEY} replaced by its value; a placeholder without a value
// is an internal error (a typo in a template).
std::string substitute(const std::string& text, const std::map<std::string, std::string>& values);

// A double as a TorchScript float literal that reads back to the same value (17 significant digits).
std::string float_literal(double v);

class ScriptBuilder {
 public:
  ScriptBuilder();
  // A new module of class mft.<name> (mangled to be unique within this builder).
  torch::jit::Module new_module(const std::string& name) const;
  // Compiles `source` (def ... methods) into `m`, resolving torch.<op> and torch.ops.<ns>.<op>.
  void define(torch::jit::Module& m, const std::string& source) const;

 private:
  std::shared_ptr<torch::jit::CompilationUnit> cu_;
};

// Registers a copy-free, detached view of `t` as parameter `name` of `m` (contiguous).
void add_weight(torch::jit::Module& m, const std::string& name, const at::Tensor& t);

// The tensor `name` of `state` (an hf_state_dict()); missing is an internal error.
const at::Tensor& weight(const std::map<std::string, at::Tensor>& state, const std::string& name);

// ", self.NAME" when `state` holds `key` (an optional bias), else "": appended to a linear's arguments.
std::string optional_arg(const std::map<std::string, at::Tensor>& state, const std::string& key,
                         const std::string& name);

// Per family: the scripted root module (forward, init_state, prefill, step) of a model in its current
// dtype, portable or calling the mft:: ops. The model must carry no LoRA adapters (merge them first).
torch::jit::Module build_mamba_module(models::CausalLM& model, bool with_ops);
torch::jit::Module build_mamba2_module(models::CausalLM& model, bool with_ops);
torch::jit::Module build_gpt_neox_module(models::CausalLM& model);

}  // namespace mft::exporting

namespace mft::exporting {

// What the root module of a recurrent family (Mamba, Mamba-2) needs to know: its layers are submodules
// layer_0 .. layer_{n-1}, each with forward(h) -> h and block(h, conv, ssm) -> (h, conv, ssm) and an fp32
// tensor A; the root holds embeddings_weight, norm_f_weight and, when untied, lm_head_weight.
struct RecurrentRoot {
  int64_t layers = 0;
  std::string conv_dims, ssm_dims;  // per-layer state shapes after the batch: "E, K - 1" and "E, N" as numbers
  double eps = 1e-5;                // norm_f
  bool tied = true;
};
// Defines embed, head, forward, init_state, prefill and step on `root`.
void define_recurrent_root(const ScriptBuilder& b, torch::jit::Module& root, const RecurrentRoot& r);

}  // namespace mft::exporting
