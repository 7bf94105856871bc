#include "tokenizer/bpe_model.h"

#include "tokenizer/byte_level.h"

#include <functional>
#include <mutex>
#include <queue>
#include <stdexcept>

namespace mft::tok {
namespace {
// Pieces longer than this are not cached (HF uses the same limit): long runs of one character are rare
// and would crowd the cache.
constexpr size_t kMaxCachedPieceBytes = 256;
// About 10 MB of cached pieces; enough for the distinct words of a few hundred MB of English text.
constexpr size_t kCacheCapacity = 100'000;

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}
}  // namespace

size_t BpeModel::PairHash::operator()(uint64_t key) const {
  // splitmix64 finaliser: the two ids are small integers; an identity hash would collide in buckets.
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  key ^= key >> 31;
  return static_cast<size_t>(key);
}

BpeModel::BpeModel(BpeSpec spec, const std::string& where)
    : vocab_(std::move(spec.vocab)), fuse_unk_(spec.fuse_unk), ignore_merges_(spec.ignore_merges) {
  const auto id_of = [&](const std::string& token, size_t i, const std::string& merge) {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) {
      throw std::runtime_error(where + ": model.merges[" + std::to_string(i) + "] " + quoted(merge) + ": " +
                               quoted(token) + " is not in model.vocab");
    }
    return static_cast<int32_t>(it->second);
  };
  merges_.reserve(spec.merges.size());
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    const auto& [a, b] = spec.merges[i];
    const std::string merge = a + " " + b;
    const int32_t a_id = id_of(a, i, merge), b_id = id_of(b, i, merge), new_id = id_of(a + b, i, merge);
    // A repeated pair keeps its last rank, as in HF (the map is filled in order).
    merges_[pair_key(a_id, b_id)] = Merge{static_cast<uint32_t>(i), new_id};
  }
  for (int b = 0; b < 256; ++b) {
    std::string table_char;
    table_char = bytes_to_table_chars(std::string(1, static_cast<char>(b)));
    const auto it = vocab_.find(table_char);
    byte_ids_[b] = it == vocab_.end() ? -1 : static_cast<int32_t>(it->second);
  }
  if (spec.unk_token) {
    const auto it = vocab_.find(*spec.unk_token);
    if (it == vocab_.end()) {
      throw std::runtime_error(where + ": model.unk_token " + quoted(*spec.unk_token) + " is not in model.vocab");
    }
    unk_id_ = static_cast<int32_t>(it->second);
  }
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  const auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<int32_t> BpeModel::merge_piece(std::string_view piece) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the linked list of live symbols (-1: none)
    bool live;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  const auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, true});
  };
  // Symbols without a vocab entry: the unk token (fused when asked) or nothing, as HF's merge_word.
  bool pending_unk = false;
  for (const char ch : piece) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(ch)];
    if (id >= 0) {
      if (pending_unk) add(unk_id_);
      pending_unk = false;
      add(id);
    } else if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) add(unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(unk_id_);

  struct Candidate {
    uint32_t rank;
    int32_t pos, new_id;
    // Min-heap on (rank, pos): the lowest rank first, the leftmost of equal ranks first.
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.live || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Stale entry: the pair at this position changed since it was queued.
    const Merge* now = find_merge(left.id, right.id);
    if (now == nullptr || now->new_id != top.new_id) continue;
    left.id = top.new_id;
    left.next = right.next;
    right.live = false;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* m = find_merge(symbols[left.prev].id, left.id)) queue.push({m->rank, left.prev, m->new_id});
    }
    if (left.next >= 0) {
      if (const Merge* m = find_merge(left.id, symbols[left.next].id)) queue.push({m->rank, top.pos, m->new_id});
    }
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols) {
    if (s.live) ids.push_back(s.id);
  }
  return ids;
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int64_t>& ids) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(bytes_to_table_chars(piece));
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() < kMaxCachedPieceBytes;
  std::string key;
  CacheShard* shard = nullptr;
  if (cacheable) {
    key.assign(piece);
    shard = &cache_[std::hash<std::string>()(key) % kCacheShards];
    const std::lock_guard<std::mutex> lock(shard->mutex);
    const auto it = shard->pieces.find(key);
    if (it != shard->pieces.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge_piece(piece);
  ids.insert(ids.end(), merged.begin(), merged.end());
  if (cacheable) {
    const std::lock_guard<std::mutex> lock(shard->mutex);
    if (shard->pieces.size() < kCacheCapacity / kCacheShards) shard->pieces.emplace(std::move(key), std::move(merged));
  }
}

}  // namespace mft::tok
