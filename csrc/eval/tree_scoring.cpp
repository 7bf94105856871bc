#include "eval/tree_scoring.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <memory>

namespace mft::eval {
namespace {

// Pairs with one context, in token order of their contexts.
struct Group {
  const std::vector<int64_t>* context;
  std::vector<size_t> pairs;
};

std::vector<Group> group_by_context(const std::vector<TokenPair>& pairs, const std::vector<size_t>& which) {
  std::vector<size_t> order = which;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pairs[a].context < pairs[b].context; });
  std::vector<Group> groups;
  for (const size_t p : order) {
    if (groups.empty() || *groups.back().context != pairs[p].context) groups.push_back({&pairs[p].context, {}});
    groups.back().pairs.push_back(p);
  }
  return groups;
}

// Row tokens of a group after `prefix` cached context tokens: the rest of its context, then each
// continuation but its last token (the last token is predicted, never input).
int64_t group_tokens(const Group& g, const std::vector<TokenPair>& pairs, size_t prefix) {
  auto n = static_cast<int64_t>(g.context->size() - prefix);
  for (const size_t p : g.pairs) n += static_cast<int64_t>(pairs[p].continuation.size()) - 1;
  return n;
}

at::Tensor long_tensor(const std::vector<int64_t>& v, const c10::Device& device) {
  return at::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, at::kLong).to(device);
}

// One forward of groups [begin, end) side by side after `prefix` tokens held by `cache` (nullptr when
// prefix is 0); scores their pairs into `out`. Returns the number of pairs scored.
int64_t run_row(models::CausalLM& model, const std::vector<TokenPair>& pairs, const std::vector<Group>& groups,
                size_t begin, size_t end, size_t prefix, models::DecodeCache* cache, const c10::Device& device,
                const TreeScoringOptions& o, std::vector<TokenScore>& out) {
  int64_t T = 0;
  for (size_t g = begin; g < end; ++g) T += group_tokens(groups[g], pairs, prefix);
  const auto P = static_cast<int64_t>(prefix), W = P + T;
  std::vector<int64_t> ids, positions, logit_rows;  // (T), (T), (N)
  std::vector<int64_t> target_row, target;          // per predicted token: its index in logit_rows, its id
  std::vector<size_t> target_pair;
  ids.reserve(static_cast<size_t>(T));
  positions.reserve(static_cast<size_t>(T));
  // visible[i][j]: row token i attends to token j of [cache (P) | row (T)]. One plain sequence (a lone pair)
  // needs no mask: its attention is the causal one.
  const bool plain = end - begin == 1 && groups[begin].pairs.size() == 1;
  at::Tensor visible = plain ? at::Tensor() : at::zeros({T, W}, at::kBool);
  bool* vis = plain ? nullptr : visible.data_ptr<bool>();
  auto see = [&](int64_t i, int64_t from, int64_t to) {
    if (!plain) std::fill(vis + i * W + from, vis + i * W + to, true);
  };
  int64_t pair_count = 0;
  for (size_t gi = begin; gi < end; ++gi) {
    const Group& g = groups[gi];
    const std::vector<int64_t>& ctx = *g.context;
    const auto a = static_cast<int64_t>(ids.size()), c = static_cast<int64_t>(ctx.size() - prefix);
    for (int64_t j = 0; j < c; ++j) {  // the context's own tokens: the cache, then causal
      ids.push_back(ctx[prefix + static_cast<size_t>(j)]);
      positions.push_back(P + j);
      see(a + j, 0, P);
      see(a + j, P + a, P + a + j + 1);
    }
    const auto context_logits = static_cast<int64_t>(logit_rows.size());
    logit_rows.push_back(a + c - 1);  // predicts every continuation's first token
    for (const size_t p : g.pairs) {
      const std::vector<int64_t>& cont = pairs[p].continuation;
      out[p] = {0.0, true};
      ++pair_count;
      target_row.push_back(context_logits);
      target.push_back(cont[0]);
      target_pair.push_back(p);
      const auto b = static_cast<int64_t>(ids.size());
      for (int64_t t = 0; t + 1 < static_cast<int64_t>(cont.size()); ++t) {  // the context, then causal
        ids.push_back(cont[static_cast<size_t>(t)]);
        positions.push_back(P + c + t);
        see(b + t, 0, P);
        see(b + t, P + a, P + a + c);
        see(b + t, P + b, P + b + t + 1);
        target_row.push_back(static_cast<int64_t>(logit_rows.size()));
        logit_rows.push_back(b + t);
        target.push_back(cont[static_cast<size_t>(t) + 1]);
        target_pair.push_back(p);
      }
    }
  }
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(ids.size()) == T);
  if (o.forwarded) *o.forwarded += T;
  const at::Tensor logits = model.forward_tree(long_tensor(ids, device).unsqueeze(0), long_tensor(positions, device),
                                               visible.defined() ? visible.to(device) : visible, cache,
                                               long_tensor(logit_rows, device));  // (N, V)
  std::vector<double> ll;
  std::vector<bool> greedy;
  score_rows(logits, target_row, target, ll, greedy);
  for (size_t k = 0; k < target.size(); ++k) {
    TokenScore& s = out[target_pair[k]];
    s.loglikelihood += ll[k];
    s.is_greedy = s.is_greedy && greedy[k];
  }
  return pair_count;
}

}  // namespace

void score_rows(const at::Tensor& logits, const std::vector<int64_t>& row, const std::vector<int64_t>& target,
                std::vector<double>& loglikelihood, std::vector<bool>& greedy) {
  TORCH_INTERNAL_ASSERT(row.size() == target.size());
  const auto n = static_cast<int64_t>(target.size());
  loglikelihood.clear();
  greedy.clear();
  if (n == 0) return;
  const at::Tensor index = long_tensor(row, logits.device());
  const at::Tensor t = long_tensor(target, logits.device()).unsqueeze(1);                       // (n, 1)
  const at::Tensor log_probs = at::log_softmax(logits.index_select(0, index), -1, at::kFloat);  // (n, V)
  const at::Tensor picked = log_probs.gather(1, t).squeeze(1).to(at::kCPU, at::kDouble);
  const at::Tensor is_max = log_probs.argmax(-1).eq(t.squeeze(1)).to(at::kCPU);
  const double* picked_data = picked.data_ptr<double>();
  const bool* max_data = is_max.data_ptr<bool>();
  for (int64_t k = 0; k < n; ++k) {
    loglikelihood.push_back(picked_data[k]);
    greedy.push_back(max_data[k]);
  }
}

namespace {

// Walks the groups (sorted by context) as a prefix tree: a range of groups whose contexts share at least
// kMinSharedPrefixTokens more tokens than the cache holds extends the cache by their common part (one
// forward), is walked the same way one level deeper, and the cache goes back; groups that share nothing
// more at a level go into rows on the cache as it is. Rows collect neighbouring groups of one level.
class TreeWalk {
 public:
  TreeWalk(models::CausalLM& model, const std::vector<TokenPair>& pairs, const std::vector<Group>& groups,
           const c10::Device& device, const TreeScoringOptions& o, std::vector<TokenScore>& out)
      : model_(model), pairs_(pairs), groups_(groups), device_(device), o_(o), out_(out) {}

  void run() {
    level(0, groups_.size());
    flush(groups_.size());
  }

 private:
  const std::vector<int64_t>& context(size_t g) const { return *groups_[g].context; }
  size_t depth() const { return cache_ ? static_cast<size_t>(cache_->length) : 0; }

  // Groups [i, j), whose contexts all start with the cache's tokens.
  void level(size_t i, size_t j) {
    const size_t d = depth();
    for (size_t a = i; a < j;) {
      // The longest range from a whose neighbours share kMinSharedPrefixTokens more; `shared` is what all of
      // them share, each context keeping a token of its own (its logits score the continuations' first tokens).
      size_t b = a + 1, shared = context(a).size() - 1;
      while (o_.share_prefixes && b < j) {
        const size_t common = std::min(common_prefix_length(context(b - 1), context(b)), context(b).size() - 1);
        if (common < d + kMinSharedPrefixTokens) break;
        shared = std::min(shared, common);
        ++b;
      }
      if (b - a < 2 || shared < d + kMinSharedPrefixTokens) {
        add(a);
        ++a;
        continue;
      }
      flush(a);
      extend(context(a), d, shared);
      level(a, b);
      flush(b);
      cache_->truncate(static_cast<int64_t>(d));
      a = b;
    }
  }

  // The cache continues with tokens [from, to) of `tokens`.
  void extend(const std::vector<int64_t>& tokens, size_t from, size_t to) {
    if (!cache_) cache_ = model_.new_cache(1);
    const std::vector<int64_t> part(tokens.begin() + static_cast<std::ptrdiff_t>(from),
                                    tokens.begin() + static_cast<std::ptrdiff_t>(to));
    if (o_.forwarded) *o_.forwarded += static_cast<int64_t>(part.size());
    model_.forward_cached(long_tensor(part, device_).unsqueeze(0), *cache_, 1);  // logits unused
  }

  void add(size_t g) {
    const int64_t t = group_tokens(groups_[g], pairs_, depth());
    if (g > row_begin_ && row_tokens_ + t > o_.row_tokens) flush(g);
    if (row_tokens_ == 0) row_begin_ = g;
    row_tokens_ += t;
  }

  // Runs the pending row (groups row_begin_ .. end-1, when any) on the cache as it is.
  void flush(size_t end) {
    if (row_tokens_ > 0) {
      const size_t d = depth();
      done_ += run_row(model_, pairs_, groups_, row_begin_, end, d, d > 0 ? cache_.get() : nullptr, device_, o_, out_);
      if (o_.progress) o_.progress(done_);
    }
    row_begin_ = end;
    row_tokens_ = 0;
  }

  models::CausalLM& model_;
  const std::vector<TokenPair>& pairs_;
  const std::vector<Group>& groups_;
  const c10::Device& device_;
  const TreeScoringOptions& o_;
  std::vector<TokenScore>& out_;
  std::unique_ptr<models::DecodeCache> cache_;
  size_t row_begin_ = 0;
  int64_t row_tokens_ = 0;
  int64_t done_ = 0;
};

}  // namespace

void score_tree(models::CausalLM& model, const std::vector<TokenPair>& pairs, const std::vector<size_t>& which,
                const c10::Device& device, const TreeScoringOptions& o, std::vector<TokenScore>& out) {
  TORCH_CHECK(model.supports_tree_attention(), model.family(), ": tree-packed scoring needs an attention model");
  TORCH_CHECK(o.row_tokens >= 1, "tree scoring: row_tokens must be >= 1; got ", o.row_tokens);
  const std::vector<Group> groups = group_by_context(pairs, which);
  TreeWalk(model, pairs, groups, device, o, out).run();
}

size_t common_prefix_length(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t k = 0;
  while (k < n && a[k] == b[k]) ++k;
  return k;
}

}  // namespace mft::eval
