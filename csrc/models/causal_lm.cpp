#include "models/causal_lm.h"

#include <ATen/ATen.h>

namespace mft::models {

namespace {
thread_local bool native_logits = false;
}  // namespace

NativeLogits::NativeLogits() : previous_(native_logits) {
  native_logits = true;
}
NativeLogits::~NativeLogits() {
  native_logits = previous_;
}
bool NativeLogits::active() {
  return native_logits;
}

at::Tensor logits_out(const at::Tensor& logits) {
  return native_logits ? logits : logits.to(at::kFloat);
}

at::Tensor repeat_cache_rows(const DecodeCache& cache, const at::Tensor& t, int64_t n) {
  TORCH_CHECK(cache.batch == 1 && n >= 1, "DecodeCache::repeat: needs a cache of one sequence and n >= 1; got batch ",
              cache.batch, ", n ", n);
  if (!t.defined()) return t;
  std::vector<int64_t> reps(t.dim(), 1);
  reps[0] = n;
  return t.repeat(reps);
}

at::Tensor CausalLM::run_block(BlockFn block, const at::Tensor& h) const {
  if (record_hidden_states && record_hidden_states->empty()) record_hidden_states->push_back(h.detach());
  at::Tensor out = activation_checkpointing_ ? checkpoint_block(std::move(block), h) : block(h);
  if (record_hidden_states) record_hidden_states->push_back(out.detach());
  return out;
}

torch::nn::Linear register_untied_head(torch::nn::Module& owner, const std::string& name, const at::Tensor& embedding) {
  auto head = owner.register_module(
      name, torch::nn::Linear(torch::nn::LinearOptions(embedding.size(1), embedding.size(0)).bias(false)));
  head->weight.set_data(embedding.detach().clone());
  head->weight.set_requires_grad(embedding.requires_grad());
  return head;
}

void DecodeCache::truncate(int64_t) {
  TORCH_CHECK(false, "this model's decoding cache is a recurrent state and cannot be truncated");
}

at::Tensor CausalLM::forward_tree(const at::Tensor&, const at::Tensor&, const at::Tensor&, DecodeCache*,
                                  const at::Tensor&) {
  TORCH_CHECK(false, family(), ": tree-packed scoring needs attention; this model family has none (check ",
              "supports_tree_attention() first)");
}

at::Tensor last_positions(const at::Tensor& h, int64_t n) {
  const int64_t length = h.size(1);
  return n > 0 && n < length ? h.narrow(1, length - n, n) : h;
}

void check_input_ids(const at::Tensor& input_ids, int64_t vocab, const std::string& family) {
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.scalar_type() == at::kLong && input_ids.numel() > 0, family,
              ": input_ids must be a non-empty (batch, seqlen) int64 tensor; got ", input_ids.sizes(), " ",
              input_ids.scalar_type());
  const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
  TORCH_CHECK(lo >= 0 && hi < vocab, family, ": token ids must be in [0, ", vocab, "); got ids from ", lo, " to ", hi);
}

void check_seq_idx(const std::optional<at::Tensor>& seq_idx, const at::Tensor& input_ids, const std::string& family) {
  if (!seq_idx) return;
  TORCH_CHECK(seq_idx->sizes() == input_ids.sizes() && seq_idx->scalar_type() == at::kInt, family,
              ": seq_idx must be int32 with the shape of input_ids ", input_ids.sizes(), "; got ", seq_idx->sizes(),
              " ", seq_idx->scalar_type());
}

}  // namespace mft::models
