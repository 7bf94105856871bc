#pragma once
// Batches for causal-LM training: a deterministic, resumable stream over examples, packed or padded,
// with labels already shifted for next-token prediction.
#include "data/dataset.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mft::data {

struct Batch {
  at::Tensor input_ids;        // (B, L) int64; padding = the stream's pad_id
  at::Tensor labels;           // (B, L) int64: labels[b, t] = target for position t (the next token of the same
                               // document), kIgnoreIndex at a document's last position, on untrained targets and
                               // on padding
  at::Tensor seq_idx;          // (B, L) int32: document index within the row (0, 1, 2, ...); padding continues the
                               // last document's index
  at::Tensor attention_mask;   // (B, L) bool, false on padding
  int64_t trained_tokens = 0;  // labels != kIgnoreIndex
  int64_t real_tokens = 0;     // attention_mask true
};

// Order: each epoch visits every example exactly once, in a permutation drawn by Fisher-Yates from
// make_rng(seed, epoch) (the same on every platform). Rows: with packing, examples are placed greedily in
// visiting order into rows of max_length tokens (an example is never split; it starts a new row when it
// does not fit), and L = max_length; without packing, one example per row, L = the longest in the batch.
// A batch never spans two epochs: the epoch's last batch may have fewer than batch_size rows.
// pad_id is the input id on padding (use the tokenizer's EOS, else 0); it is never a target.
class BatchStream {
 public:
  BatchStream(std::vector<Example> examples, int64_t batch_size, int64_t max_length, bool packing, uint64_t seed,
              int64_t pad_id);

  // The next batch; after an epoch's last batch, the next epoch begins in a new order.
  Batch next();

  // Position of the next batch: its epoch and how many of that epoch's examples came before it.
  struct State {
    int64_t epoch = 0, cursor = 0;
  };
  State state() const { return state_; }
  // Continue from a state() of a stream over the same examples and settings: the batches are identical.
  void restore(const State& s);
  int64_t epoch() const { return state_.epoch; }

  int64_t num_examples() const { return static_cast<int64_t>(examples_.size()); }

 private:
  const std::vector<int64_t>& order();  // this epoch's visiting order

  std::vector<Example> examples_;
  int64_t batch_size_, max_length_;
  bool packing_;
  uint64_t seed_;
  int64_t pad_id_;
  State state_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
};

}  // namespace mft::data
