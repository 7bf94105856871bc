#include "models/tied_embeddings.h"

#include "models/lora_adapter.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace mft::models {
namespace {

// True when no tensor other than t (and, for a view, its base, held only by t) references t's memory.
bool sole_owner(const at::Tensor& t) {
  if (!t.is_view()) return t.storage().use_count() == 1;
  return t.storage().use_count() == 2 && t._base().use_count() == 1;
}

// (W, ids) -> (W[ids] (B, L, D), W as an alias for the head).
struct TiedLookup : public torch::autograd::Function<TiedLookup> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& weight,
                                                const at::Tensor& ids) {
    ctx->save_for_backward({ids});
    ctx->saved_data["rows"] = weight.size(0);
    at::Tensor embedded = at::embedding(weight, ids);
    return {embedded, weight};  // autograd makes the second an alias of W whose gradient comes here
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor ids = ctx->get_saved_variables()[0].reshape({-1});
    const at::Tensor d_embedded = grads[0], d_head = grads[1];
    const int64_t rows = ctx->saved_data["rows"].toInt();
    at::Tensor d_weight;
    // The head's gradient is a fresh (V, D) tensor: the head's weight-gradient GEMM, often seen through
    // transposes (a view whose base only that view holds). When nothing else references its memory, add
    // into it in place; a shared or strided one is copied first.
    if (d_head.defined() && d_head.is_contiguous() && sole_owner(d_head)) {
      d_weight = d_head;
    } else if (d_head.defined()) {
      d_weight = d_head.clone(at::MemoryFormat::Contiguous);
    }
    if (d_embedded.defined()) {
      const at::Tensor rows_grad = d_embedded.reshape({-1, d_embedded.size(-1)});  // (B L, D)
      if (!d_weight.defined()) d_weight = at::zeros({rows, rows_grad.size(1)}, rows_grad.options());
      d_weight.index_add_(0, ids, rows_grad.to(d_weight.scalar_type()));
    }
    return {d_weight, at::Tensor()};
  }
};

}  // namespace

TiedUse tied_lookup(torch::nn::EmbeddingImpl& m, const at::Tensor& ids) {
  const auto& o = m.options;
  const bool fused = at::GradMode::is_enabled() && m.weight.requires_grad() && find_lora(m) == nullptr &&
                     !o.padding_idx() && !o.max_norm() && !o.sparse() && !o.scale_grad_by_freq();
  if (!fused) return {adapted_embedding(m, ids), m.weight};
  auto out = TiedLookup::apply(m.weight, ids);
  return {out[0], out[1]};
}

}  // namespace mft::models
