#pragma once
// Synthetic examples shared by the data tests (header-only, no LibTorch).
#include "data/dataset.h"

#include <cstdint>
#include <vector>

namespace mft::test {

// `n` examples of 3..max_len tokens; token 0 of example k is 1000 + k (to recognise it in a batch), and
// every third label is ignored so that the shift of real masks is checked.
inline std::vector<mft::data::Example> numbered_examples(int64_t n, int64_t max_len) {
  std::vector<mft::data::Example> out;
  for (int64_t k = 0; k < n; ++k) {
    mft::data::Example ex;
    const int64_t len = 3 + (k * 7) % (max_len - 2);
    for (int64_t i = 0; i < len; ++i) {
      ex.ids.push_back(i == 0 ? 1000 + k : 10 * k + i);
      ex.labels.push_back(i % 3 == 1 ? mft::data::kIgnoreIndex : ex.ids.back());
    }
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace mft::test
