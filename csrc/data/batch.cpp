#include "data/batch.h"

#include "data/random.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace mft::data {

BatchStream::BatchStream(std::vector<Example> examples, int64_t batch_size, int64_t max_length, bool packing,
                         uint64_t seed, int64_t pad_id)
    : examples_(std::move(examples)),
      batch_size_(batch_size),
      max_length_(max_length),
      packing_(packing),
      seed_(seed),
      pad_id_(pad_id) {
  TORCH_CHECK(!examples_.empty(), "BatchStream: no examples");
  TORCH_CHECK(batch_size_ >= 1, "BatchStream: batch_size must be positive; got ", batch_size_);
  TORCH_CHECK(max_length_ >= 2, "BatchStream: max_length must be at least 2; got ", max_length_);
  for (size_t i = 0; i < examples_.size(); ++i) {
    const Example& ex = examples_[i];
    TORCH_CHECK(!ex.ids.empty() && ex.ids.size() == ex.labels.size(), "BatchStream: example ", i,
                " must have as many labels as ids (and at least one); got ", ex.ids.size(), " ids and ",
                ex.labels.size(), " labels");
    TORCH_CHECK(static_cast<int64_t>(ex.ids.size()) <= max_length_, "BatchStream: example ", i, " has ", ex.ids.size(),
                " tokens, more than max_length ", max_length_, " (load_examples truncates)");
  }
}

const std::vector<int64_t>& BatchStream::order() {
  if (order_epoch_ != state_.epoch) {
    std::mt19937_64 rng = make_rng(seed_, static_cast<uint64_t>(state_.epoch));
    order_ = shuffled_indices(num_examples(), rng);
    order_epoch_ = state_.epoch;
  }
  return order_;
}

void BatchStream::restore(const State& s) {
  TORCH_CHECK(s.epoch >= 0 && s.cursor >= 0 && s.cursor < num_examples(), "BatchStream: cannot restore epoch ", s.epoch,
              ", cursor ", s.cursor, " in a stream of ", num_examples(), " examples");
  state_ = s;
}

Batch BatchStream::next() {
  const std::vector<int64_t>& ord = order();
  const int64_t n = num_examples();
  // Rows as lists of example indices.
  std::vector<std::vector<int64_t>> rows;
  int64_t width = packing_ ? max_length_ : 0;
  while (static_cast<int64_t>(rows.size()) < batch_size_ && state_.cursor < n) {
    std::vector<int64_t> row;
    int64_t used = 0;
    do {
      const int64_t e = ord[static_cast<size_t>(state_.cursor)];
      const auto len = static_cast<int64_t>(examples_[static_cast<size_t>(e)].ids.size());
      if (!row.empty() && used + len > max_length_) break;
      row.push_back(e);
      used += len;
      ++state_.cursor;
    } while (packing_ && state_.cursor < n);
    width = std::max(width, used);
    rows.push_back(std::move(row));
  }
  if (state_.cursor == n) state_ = {state_.epoch + 1, 0};

  const auto B = static_cast<int64_t>(rows.size());
  const int64_t L = width;
  std::vector<int64_t> ids(static_cast<size_t>(B * L), pad_id_), labels(static_cast<size_t>(B * L), kIgnoreIndex);
  std::vector<int32_t> seq(static_cast<size_t>(B * L), 0);
  std::vector<uint8_t> mask(static_cast<size_t>(B * L), 0);
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    int64_t t = b * L;
    int32_t doc = 0;
    for (int64_t e : rows[static_cast<size_t>(b)]) {
      const Example& ex = examples_[static_cast<size_t>(e)];
      const size_t len = ex.ids.size();
      for (size_t i = 0; i < len; ++i, ++t) {
        ids[t] = ex.ids[i];
        // Shift: position i predicts token i + 1 of the same document; a document's last position has no
        // target (the next token in the row belongs to another document).
        labels[t] = i + 1 < len ? ex.labels[i + 1] : kIgnoreIndex;
        seq[t] = doc;
        mask[t] = 1;
        batch.trained_tokens += labels[t] != kIgnoreIndex;
        ++batch.real_tokens;
      }
      ++doc;
    }
    for (const int64_t end = (b + 1) * L; t < end; ++t) seq[t] = doc - 1;
  }
  const auto opts = at::TensorOptions().device(at::kCPU);
  batch.input_ids = at::from_blob(ids.data(), {B, L}, opts.dtype(at::kLong)).clone();
  batch.labels = at::from_blob(labels.data(), {B, L}, opts.dtype(at::kLong)).clone();
  batch.seq_idx = at::from_blob(seq.data(), {B, L}, opts.dtype(at::kInt)).clone();
  batch.attention_mask = at::from_blob(mask.data(), {B, L}, opts.dtype(at::kByte)).to(at::kBool);
  return batch;
}

}  // namespace mft::data
