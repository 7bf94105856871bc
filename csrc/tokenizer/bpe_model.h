#pragma once
// The BPE model of a byte-level tokenizer.json: vocab, ranked merges and the merge loop of HF
// `tokenizers` (models/bpe/word.rs merge_all: a min-heap of (rank, position); the lowest-ranked
// adjacent pair is merged first, ties left to right, stale entries skipped), with a cache of merged
// pieces. Pieces are raw bytes; each byte starts as the vocab symbol of its table character.
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mft::tok {

struct BpeSpec {
  std::unordered_map<std::string, int64_t> vocab;           // model.vocab
  std::vector<std::pair<std::string, std::string>> merges;  // model.merges in rank order
  std::optional<std::string> unk_token;                     // symbols missing from vocab: this token, or dropped (HF)
  bool fuse_unk = false;                                    // consecutive unknown symbols give one unk token
  bool ignore_merges = false;                               // a piece that is itself in the vocab is one token
};

class BpeModel {
 public:
  // Validates `spec`; errors start with `where` (the file) and name the field, e.g.
  // "x/tokenizer.json: model.merges[3] "a bc": "bc" is not in model.vocab".
  BpeModel(BpeSpec spec, const std::string& where);

  // Appends the ids of one pre-tokenised piece (raw bytes). Thread-safe.
  void encode_piece(std::string_view piece, std::vector<int64_t>& ids) const;

  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  struct PairHash {
    size_t operator()(uint64_t key) const;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  const Merge* find_merge(int32_t a, int32_t b) const;
  std::vector<int32_t> merge_piece(std::string_view piece) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<uint64_t, Merge, PairHash> merges_;
  std::array<int32_t, 256> byte_ids_{};  // vocab id of each byte's table character, -1 if absent
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false, ignore_merges_ = false;

  // Merged pieces by their bytes (text repeats words, so most pieces are found here), in shards with a
  // lock each. One reader-writer lock for all made 2 threads slower than 1 (its cache line bounces
  // between the cores on every piece): scripts/bench-tokenizer with the 20B file, 2 MB, on a 2-core
  // machine partly busy with other work: 1 thread 6.2M tokens/s, 2 threads 2.2M; with shards 5.7M, 5.2M.
  static constexpr size_t kCacheShards = 64;
  struct alignas(64) CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> pieces;
  };
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace mft::tok
