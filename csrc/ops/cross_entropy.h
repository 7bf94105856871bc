#pragma once
// Summed token cross-entropy, the training loss, as one fused autograd node:
//   loss = Σ_{i: labels[i] != ignore_index} (logsumexp(logits[i]) − logits[i, labels[i]])
// logits (N, V) fp32 or fp64, labels (N,) int64 -> a scalar in logits' dtype. Equal to
// at::cross_entropy_loss(logits, labels, {}, Reduction::Sum, ignore_index) (the reference the tests use).
// bf16/fp16 logits are read into fp32 row by row: the loss is fp32 and the gradient, computed in fp32,
// is rounded once to the logits' dtype, the same values as cross_entropy_sum(logits.to(fp32)) gives
// through autograd, without the (N, V) fp32 copy and its gradient (mamba-130m lora-bf16, seq 512: two
// 103 MB buffers and two cast passes a step).
//
// Why not that: it keeps the (N, V) log-softmax for its backward and runs log_softmax, nll_loss, their
// backwards and a zero fill as five passes over N x V (mamba-130m, seq 512: 103 MB each, about 35 ms
// of a step). Here the forward keeps one logsumexp per row and reads the logits once; the backward
// writes the gradient (softmax − one-hot) x grad in one pass. CPU kernels (vectorised, one task per
// row block); other devices use the ATen composition.
#include <ATen/core/Tensor.h>

namespace mft {

at::Tensor cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index = -100);

}  // namespace mft
