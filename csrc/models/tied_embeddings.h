#pragma once
// Tied word embeddings (HF's tie_word_embeddings): the token embedding and the output head read one
// matrix W (V, D). Used twice in a graph, W's gradient is summed by autograd: the embedding backward
// fills a dense (V, D) zero tensor and scatters the rows into it, then the head's (V, D) gradient is
// added to it out of place (mamba-130m full fp32 trace: 47 ms of a 1.7 s step, and one more (V, D)
// buffer). tied_lookup gives both uses from one autograd node; its backward adds the looked-up rows'
// gradients into the head's gradient in place.
#include <ATen/core/Tensor.h>
#include <torch/nn/modules/embedding.h>

namespace mft::models {

struct TiedUse {
  at::Tensor embedded;  // (B, L, D): the embedding of ids (with its LoRA update, if one is attached)
  at::Tensor head;      // (V, D): W for the output head
};

// The fused node when W is trained (grad mode on, W requires grad, no adapter, no padding_idx or
// max_norm); adapted_embedding(m, ids) and W itself otherwise. The gradient is the same either way.
TiedUse tied_lookup(torch::nn::EmbeddingImpl& m, const at::Tensor& ids);

}  // namespace mft::models
