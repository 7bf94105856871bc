#pragma once
// Low-precision copies of frozen weights, kept from one autocast forward to the next.
//
// Under autocast every forward casts each fp32 weight to the autocast dtype. ATen's own autocast cache
// keeps only leaves that require grad, and only until the outermost autocast region exits (every
// step), so a frozen base weight (LoRA, peft.freeze) is cast again at each forward although it never
// changes: on mamba-130m lora-bf16 (seq 512, 2 threads) that was about 45 ms of a 0.9 s step.
//
// Entries are keyed by what the tensor reads (storage, offset, sizes, strides, dtype), so a view made
// afresh at each forward finds its entry too. An entry is reused while its storage is alive (a weak
// reference) and the tensor's version counter (bumped by every in-place change: optimizer steps, copy_,
// merges; shared by views) and data pointer are those it was made from; otherwise it is cast again.
// Only tensors that do not require grad are kept (the cast of a trained weight changes every step);
// inference tensors, which have no version counter, are never kept. Writes that bypass the version
// counter (through `.data()` aliases or raw pointers) are not seen: the project makes none to weights.
#include <ATen/core/Tensor.h>

namespace mft {

// t.to(dtype), reusing the copy made by an earlier call for the same unchanged frozen tensor. Call it
// for weights only (parameters, buffers), never for activations: a cached entry holds its copy until
// the source dies and the cache is next touched, or clear_cast_cache().
at::Tensor cached_cast(const at::Tensor& t, at::ScalarType dtype);

// The weight as an autocast op would see it on t's device: cached_cast to the autocast dtype when
// autocast is on there and t is a floating, non-fp64 tensor of another dtype; t itself otherwise.
at::Tensor autocast_weight(const at::Tensor& t);

// Drops every cached copy (their memory returns once no autograd graph holds them).
void clear_cast_cache();

// Number of live entries (for tests).
size_t cast_cache_size();

}  // namespace mft
