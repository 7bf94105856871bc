#pragma once
// Activation checkpointing per block: the forward runs a block without keeping its activations (only
// its input); the backward recomputes the block from that input, under the forward's autocast and RNG
// state (so LoRA dropout masks repeat exactly), and backpropagates through the recomputation. Training
// memory then holds one block's activations at a time plus one tensor per block boundary, for about one
// extra forward pass of compute.
#include <ATen/core/Tensor.h>

#include <functional>

namespace mft::models {

using BlockFn = std::function<at::Tensor(const at::Tensor&)>;

// block(h) (B, L, D) -> (B, L, D), checkpointed. `block` must capture what it needs by value: it runs
// again during backward.
at::Tensor checkpoint_block(BlockFn block, const at::Tensor& h);

}  // namespace mft::models
