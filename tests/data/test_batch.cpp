// The batching of the data pipeline: the next-token label shift, packing and padding into batches,
// deterministic and resumable order (the LibTorch half of csrc/data; tests/data/test_records.cpp has the rest).
#include "data/batch.h"
#include "numbered_examples.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

using Catch::Matchers::Contains;
using mft::data::Batch;
using mft::data::BatchStream;
using mft::data::Example;
using mft::data::kIgnoreIndex;
using Ids = std::vector<int64_t>;
using mft::test::numbered_examples;

namespace {
constexpr int64_t kEos = 256;  // the byte tokenizer's <|endoftext|>

Ids row(const at::Tensor& t, int64_t b) {
  const at::Tensor r = t[b].to(at::kLong).contiguous();
  return Ids(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

bool same(const Batch& a, const Batch& b) {
  return a.input_ids.equal(b.input_ids) && a.labels.equal(b.labels) && a.seq_idx.equal(b.seq_idx) &&
         a.attention_mask.equal(b.attention_mask);
}

}  // namespace

TEST_CASE("batch: labels are shifted next tokens of the same document", "[data]") {
  Example ex{{1, 2, 3, 4, 5}, {kIgnoreIndex, kIgnoreIndex, 3, 4, 5}};
  BatchStream s({ex}, 1, 8, /*packing=*/false, 0, kEos);
  const Batch b = s.next();
  CHECK(b.input_ids.sizes() == at::IntArrayRef({1, 5}));
  CHECK(row(b.input_ids, 0) == Ids{1, 2, 3, 4, 5});
  CHECK(row(b.labels, 0) == Ids{kIgnoreIndex, 3, 4, 5, kIgnoreIndex});
  CHECK(b.trained_tokens == 3);
  CHECK(b.real_tokens == 5);
  CHECK(b.input_ids.scalar_type() == at::kLong);
  CHECK(b.labels.scalar_type() == at::kLong);
  CHECK(b.seq_idx.scalar_type() == at::kInt);
  CHECK(b.attention_mask.scalar_type() == at::kBool);
  CHECK(s.epoch() == 1);  // one example: every batch ends an epoch
}

TEST_CASE("batch: packing places every example once per epoch, no cross-document targets", "[data]") {
  constexpr int64_t kN = 37, kMax = 32, kB = 4;
  const std::vector<Example> examples = numbered_examples(kN, 20);
  BatchStream s(examples, kB, kMax, /*packing=*/true, 7, kEos);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int64_t> seen;
    int64_t batches = 0;
    while (s.epoch() == epoch) {
      const Batch b = s.next();
      ++batches;
      REQUIRE(b.input_ids.size(1) == kMax);
      REQUIRE(b.input_ids.size(0) <= kB);
      int64_t trained = 0, real = 0;
      for (int64_t r = 0; r < b.input_ids.size(0); ++r) {
        const Ids ids = row(b.input_ids, r), labels = row(b.labels, r), seq = row(b.seq_idx, r),
                  mask = row(b.attention_mask, r);
        int64_t t = 0, doc = 0;
        while (t < kMax && mask[t]) {
          REQUIRE(ids[t] >= 1000);
          const Example& ex = examples[ids[t] - 1000];
          seen.insert(ids[t] - 1000);
          for (size_t i = 0; i < ex.ids.size(); ++i, ++t) {
            REQUIRE(t < kMax);
            CHECK(ids[t] == ex.ids[i]);
            CHECK(seq[t] == doc);
            CHECK(labels[t] == (i + 1 < ex.ids.size() ? ex.labels[i + 1] : kIgnoreIndex));
            trained += labels[t] != kIgnoreIndex;
            ++real;
          }
          ++doc;
        }
        REQUIRE(doc > 0);
        for (; t < kMax; ++t) {
          CHECK(!mask[t]);
          CHECK(ids[t] == kEos);
          CHECK(labels[t] == kIgnoreIndex);
          CHECK(seq[t] == doc - 1);
        }
      }
      CHECK(b.trained_tokens == trained);
      CHECK(b.real_tokens == real);
    }
    CHECK(seen.size() == static_cast<size_t>(kN));
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == static_cast<size_t>(kN));
    CHECK(batches < kN / kB);  // packing did put several examples in a row
  }
}

TEST_CASE("batch: padding mode pads each row to the longest in the batch", "[data]") {
  const std::vector<Example> examples = numbered_examples(10, 12);
  BatchStream s(examples, 3, 64, /*packing=*/false, 3, /*pad_id=*/0);
  std::multiset<int64_t> seen;
  while (s.epoch() == 0) {
    const Batch b = s.next();
    int64_t longest = 0;
    for (int64_t r = 0; r < b.input_ids.size(0); ++r) {
      const Example& ex = examples[row(b.input_ids, r)[0] - 1000];
      seen.insert(row(b.input_ids, r)[0] - 1000);
      longest = std::max<int64_t>(longest, static_cast<int64_t>(ex.ids.size()));
      const Ids ids = row(b.input_ids, r), mask = row(b.attention_mask, r), seq = row(b.seq_idx, r);
      for (size_t t = 0; t < ids.size(); ++t) {
        CHECK(mask[t] == (t < ex.ids.size()));
        CHECK(seq[t] == 0);
        if (t >= ex.ids.size()) CHECK(ids[t] == 0);
      }
    }
    CHECK(b.input_ids.size(1) == longest);
  }
  CHECK(seen.size() == 10);
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 10);
}

TEST_CASE("batch: deterministic order, resumable, seed-dependent", "[data]") {
  const std::vector<Example> examples = numbered_examples(23, 16);
  for (bool packing : {true, false}) {
    BatchStream a(examples, 2, 24, packing, 11, kEos), b(examples, 2, 24, packing, 11, kEos);
    std::vector<Batch> first;
    for (int i = 0; i < 40; ++i) {  // several epochs
      first.push_back(a.next());
      CHECK(same(first.back(), b.next()));
    }
    // Resume after k batches in a new stream.
    for (int k : {0, 3, 17}) {
      BatchStream c(examples, 2, 24, packing, 11, kEos);
      for (int i = 0; i < k; ++i) c.next();
      const BatchStream::State st = c.state();
      BatchStream d(examples, 2, 24, packing, 11, kEos);
      d.restore(st);
      CHECK(d.epoch() == st.epoch);
      for (int i = k; i < k + 12; ++i) CHECK(same(d.next(), first[i]));
    }
    BatchStream other(examples, 2, 24, packing, 12, kEos);
    CHECK(!same(other.next(), first[0]));
  }
  BatchStream s(examples, 2, 24, true, 11, kEos);
  CHECK_THROWS_WITH(s.restore({0, 23}), Contains("cannot restore"));
  CHECK_THROWS_WITH(BatchStream(examples, 2, 8, true, 0, kEos), Contains("more than max_length 8"));
}
