#include "eval/loglikelihood.h"

#include "eval/tree_scoring.h"
#include "models/memory_estimate.h"

#include "tokenizer/utf8.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>
#include <utility>

namespace mft::eval {
namespace {

std::string describe(const ScoreOptions& options, size_t i) {
  return options.describe_request ? options.describe_request(i) : "request " + std::to_string(i);
}

// Byte length of `s` without its trailing whitespace (valid UTF-8).
size_t rstrip_length(std::string_view s) {
  size_t end = 0;
  for (size_t i = 0; i < s.size();) {
    if (!tok::is_python_space(tok::next_code_point(s, i))) end = i;
  }
  return end;
}

void check_utf8(const std::string& s, const char* what) {
  const size_t bad = tok::find_invalid_utf8(s);
  TORCH_CHECK(bad == std::string_view::npos, "the ", what, " is not valid UTF-8 (byte ", bad, ")");
}

// What lm-eval asserts of a pair before scoring it, plus ids the model can embed.
void check_pair(const TokenPair& pair, int64_t vocab, int64_t max_length, const std::string& who) {
  TORCH_CHECK(!pair.context.empty(), who, ": the context has no tokens (every continuation is conditioned on at ",
              "least one token)");
  TORCH_CHECK(!pair.continuation.empty(), who, ": the continuation has no tokens (lm-eval requires at least one)");
  TORCH_CHECK(static_cast<int64_t>(pair.continuation.size()) <= max_length, who, ": the continuation has ",
              pair.continuation.size(), " tokens, more than max_length ", max_length);
  for (const auto* part : {&pair.context, &pair.continuation}) {
    for (const int64_t id : *part) {
      TORCH_CHECK(id >= 0 && id < vocab, who, ": token id ", id, " is outside the model's vocabulary [0, ", vocab, ")");
    }
  }
}

c10::Device model_device(models::CausalLM& model) {
  const auto params = model.parameters();
  return params.empty() ? c10::Device(c10::kCPU) : params.front().device();
}

// One distinct model input and the pairs that score their continuations on it.
struct Sequence {
  const std::vector<int64_t>* input;  // (context + continuation)[-(max_length + 1):][:-1], owned by Plan::inputs
  std::vector<size_t> pairs;
};

// The distinct inputs in scoring order. Inputs are held once (an MMLU run has ~10^5 requests of ~10^3 tokens).
struct Plan {
  std::map<std::vector<int64_t>, size_t> inputs;  // input -> its Sequence before sorting (map nodes are stable)
  std::vector<Sequence> seqs;
};

// Token k of context + continuation.
int64_t whole_token(const TokenPair& p, size_t k) {
  return k < p.context.size() ? p.context[k] : p.continuation[k - p.context.size()];
}

// lm-eval's Collator order: longest context + continuation first (ties: lexicographic), so that the first batch
// is the widest and running out of memory happens at once, not at the end. A sequence sorts by its first pair.
bool before(const TokenPair& a, const TokenPair& b) {
  const size_t na = a.context.size() + a.continuation.size(), nb = b.context.size() + b.continuation.size();
  if (na != nb) return na > nb;
  for (size_t k = 0; k < na; ++k) {
    const int64_t ta = whole_token(a, k), tb = whole_token(b, k);
    if (ta != tb) return ta < tb;
  }
  return false;
}

Plan plan_inputs(const std::vector<TokenPair>& pairs, int64_t max_length) {
  Plan plan;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const size_t n = pairs[i].context.size() + pairs[i].continuation.size();
    const size_t first = n - std::min(n, static_cast<size_t>(max_length) + 1);
    std::vector<int64_t> input;
    input.reserve(n - 1 - first);
    for (size_t k = first; k + 1 < n; ++k) input.push_back(whole_token(pairs[i], k));
    auto [it, inserted] = plan.inputs.emplace(std::move(input), plan.seqs.size());
    if (inserted) plan.seqs.push_back(Sequence{&it->first, {}});
    plan.seqs[it->second].pairs.push_back(i);
  }
  std::sort(plan.seqs.begin(), plan.seqs.end(),
            [&](const Sequence& a, const Sequence& b) { return before(pairs[a.pairs[0]], pairs[b.pairs[0]]); });
  return plan;
}

// Scores the pairs of seqs[begin, end) with one forward pass into their entries of `out`.
void score_batch(models::CausalLM& model, const std::vector<Sequence>& seqs, size_t begin, size_t end,
                 const std::vector<TokenPair>& pairs, const c10::Device& device, std::vector<TokenScore>& out,
                 int64_t* forwarded) {
  const auto batch = static_cast<int64_t>(end - begin);
  int64_t width = 0;
  for (size_t s = begin; s < end; ++s) width = std::max(width, static_cast<int64_t>(seqs[s].input->size()));
  // Right padding with id 0, as lm-eval's pad_and_concat: a causal model's outputs at the real positions do
  // not see it.
  at::Tensor ids = at::zeros({batch, width}, at::kLong);  // (B, T)
  auto* ids_data = ids.data_ptr<int64_t>();
  // Rows of the flattened (B * T, V) logits to score and the token each must predict, pair by pair.
  std::vector<int64_t> rows, targets;
  for (size_t s = begin; s < end; ++s) {
    const auto b = static_cast<int64_t>(s - begin);
    const auto& input = *seqs[s].input;
    std::copy(input.begin(), input.end(), ids_data + b * width);
    for (const size_t p : seqs[s].pairs) {
      const auto& cont = pairs[p].continuation;
      const auto first = static_cast<int64_t>(input.size() - cont.size());  // logits at t predict token t + 1
      for (size_t k = 0; k < cont.size(); ++k) {
        rows.push_back(b * width + first + static_cast<int64_t>(k));
        targets.push_back(cont[k]);
      }
    }
  }
  if (forwarded) *forwarded += ids.numel();
  const at::Tensor logits = model.forward(ids.to(device));  // (B, T, V) fp32
  TORCH_INTERNAL_ASSERT(logits.dim() == 3 && logits.size(0) == batch && logits.size(1) == width);
  // log_softmax over the whole output layer, rows beyond the tokenizer's vocabulary included, as lm-eval.
  std::vector<double> picked;
  std::vector<bool> greedy;
  score_rows(logits.reshape({-1, logits.size(2)}), rows, targets, picked, greedy);
  int64_t r = 0;
  for (size_t s = begin; s < end; ++s) {
    for (const size_t p : seqs[s].pairs) {
      TokenScore& score = out[p];
      score.loglikelihood = 0;
      score.is_greedy = true;
      for (size_t k = 0; k < pairs[p].continuation.size(); ++k, ++r) {
        score.loglikelihood += picked[static_cast<size_t>(r)];
        score.is_greedy = score.is_greedy && greedy[static_cast<size_t>(r)];
      }
    }
  }
}

// Whether the pair's model input is its whole text: context + continuation <= max_length + 1 tokens (the
// last token is only predicted), so no left truncation applies.
bool whole_input(const TokenPair& p, int64_t max_length) {
  return p.context.size() + p.continuation.size() <= static_cast<size_t>(max_length) + 1;
}

// Pairs grouped by identical context tokens, for groups whose inputs need no left truncation (context +
// continuation <= max_length + 1 tokens, so the model input is exactly the context followed by the
// continuation) and that share something: two or more pairs, or (with share_prefixes) a context that
// begins with kMinSharedPrefixTokens or more of a neighbouring context's tokens (a winogrande document's
// two options after the same examples); everything else is returned as `rest`, to be batched whole.
std::pair<std::vector<std::vector<size_t>>, std::vector<size_t>> shared_context_groups(
    const std::vector<TokenPair>& pairs, int64_t max_length, bool share_prefixes) {
  std::vector<size_t> order, rest;
  for (size_t i = 0; i < pairs.size(); ++i) (whole_input(pairs[i], max_length) ? order : rest).push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pairs[a].context < pairs[b].context; });
  std::vector<std::vector<size_t>> groups;
  auto shares_prefix = [&](size_t a, size_t b) {  // positions in `order`
    return common_prefix_length(pairs[order[a]].context, pairs[order[b]].context) >= kMinSharedPrefixTokens;
  };
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && pairs[order[j]].context == pairs[order[i]].context) ++j;
    const bool neighbour =
        share_prefixes && ((i > 0 && shares_prefix(i - 1, i)) || (j < order.size() && shares_prefix(i, j)));
    if (j - i >= 2 || neighbour) {
      groups.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                          order.begin() + static_cast<std::ptrdiff_t>(j));
    } else {
      rest.push_back(order[i]);
    }
    i = j;
  }
  std::sort(rest.begin(), rest.end());
  return {std::move(groups), std::move(rest)};
}

// Contexts of consecutive groups (in token order) often share a long prefix: the few-shot examples of an
// MMLU subject, a task description. The decoding state after the prefix the next group shares is kept, and
// that group's context starts from it (when they share at least kMinSharedPrefixTokens).

struct PrefixState {
  std::unique_ptr<models::DecodeCache> cache;  // batch 1, after `length` tokens of the previous context
  size_t length = 0;
  const std::vector<int64_t>* tokens = nullptr;  // the context it came from
};

// Runs `context` (batch 1) into a cache and returns its last position's logits (1, V). Starts from `state`
// when that holds a prefix of this context; leaves in `state` the cache after the first `keep` tokens
// (keep < context size) for the next context.
at::Tensor run_context(models::CausalLM& model, const std::vector<int64_t>& context, size_t keep, PrefixState& state,
                       const c10::Device& device, std::unique_ptr<models::DecodeCache>& cache, int64_t* forwarded) {
  size_t start = 0;
  const bool reuse =
      state.cache && state.length < context.size() && common_prefix_length(*state.tokens, context) >= state.length;
  if (reuse) {
    cache = state.cache->repeat(1);  // a copy: the state may serve the next context too
    start = state.length;
  } else {
    cache = model.new_cache(1);
  }
  auto chunk = [&](size_t from, size_t to, int64_t last_logits) {
    const at::Tensor ids =
        at::from_blob(const_cast<int64_t*>(context.data() + from), {1, static_cast<int64_t>(to - from)}, at::kLong)
            .to(device);
    if (forwarded) *forwarded += ids.numel();
    return model.forward_cached(ids, *cache, last_logits);
  };
  const bool share_next = keep >= kMinSharedPrefixTokens && keep < context.size();
  if (share_next && keep > start) {
    chunk(start, keep, 1);
    state.cache = cache->repeat(1);
    state.length = keep;
    state.tokens = &context;
    start = keep;
  } else if (!(share_next && reuse && keep == start)) {
    state.cache.reset();  // (when the next context shares exactly the state's prefix, the state stays)
  }
  return chunk(start, context.size(), 1).select(1, -1);
}

// The pairs of `group` share their context: one forward of the context (batch 1) into a decoding cache,
// whose last logits score every continuation's first token; the cache repeated once per pair continues
// with the continuations (all but their last token, right-padded) in one batch for the rest. The same
// numbers as scoring each (context + continuation) whole, for a fraction of the context's compute.
// `keep`, `state`: the shared prefix with the next group's context (run_context).
void score_shared_context(models::CausalLM& model, const std::vector<TokenPair>& pairs,
                          const std::vector<size_t>& group, size_t keep, PrefixState& state, const c10::Device& device,
                          std::vector<TokenScore>& out, int64_t* forwarded) {
  const std::vector<int64_t>& context = pairs[group[0]].context;
  const auto n = static_cast<int64_t>(group.size());
  std::unique_ptr<models::DecodeCache> cache;
  const at::Tensor last = run_context(model, context, keep, state, device, cache, forwarded);  // (1, V)
  std::vector<int64_t> rows(group.size(), 0), targets;  // first continuation tokens: row 0 of `last` each
  for (const size_t p : group) targets.push_back(pairs[p].continuation[0]);
  std::vector<double> ll;
  std::vector<bool> greedy;
  score_rows(last, rows, targets, ll, greedy);
  for (int64_t i = 0; i < n; ++i) out[group[i]] = {ll[i], greedy[i]};

  size_t width = 0;
  for (const size_t p : group) width = std::max(width, pairs[p].continuation.size() - 1);
  if (width == 0) return;
  at::Tensor ids = at::zeros({n, static_cast<int64_t>(width)}, at::kLong);  // right padding with id 0
  auto* ids_data = ids.data_ptr<int64_t>();
  rows.clear();
  targets.clear();
  for (int64_t i = 0; i < n; ++i) {
    const auto& cont = pairs[group[i]].continuation;
    std::copy(cont.begin(), cont.end() - 1, ids_data + i * static_cast<int64_t>(width));
    for (size_t k = 1; k < cont.size(); ++k) {  // the logits at position k - 1 predict token k
      rows.push_back(i * static_cast<int64_t>(width) + static_cast<int64_t>(k) - 1);
      targets.push_back(cont[k]);
    }
  }
  auto repeated = cache->repeat(n);
  if (forwarded) *forwarded += ids.numel();
  const at::Tensor logits = model.forward_cached(ids.to(device), *repeated);  // (n, width, V)
  score_rows(logits.reshape({-1, logits.size(2)}), rows, targets, ll, greedy);
  size_t r = 0;
  for (int64_t i = 0; i < n; ++i) {
    TokenScore& s = out[group[i]];
    for (size_t k = 1; k < pairs[group[i]].continuation.size(); ++k, ++r) {
      s.loglikelihood += ll[r];
      s.is_greedy = s.is_greedy && greedy[r];
    }
  }
}

}  // namespace

int64_t prefix_token(const Tokenizer& tokenizer, const ScoreOptions& options) {
  if (options.prefix_token_id) return *options.prefix_token_id;
  if (const auto bos = tokenizer.bos_token_id()) return *bos;
  const auto eos = tokenizer.eos_token_id();
  TORCH_CHECK(eos.has_value(), "the tokenizer has neither a BOS nor an EOS token to condition empty contexts and ",
              "rolling windows on; give a prefix token id");
  return *eos;
}

TokenPair encode_pair(const Tokenizer& tokenizer, const std::string& context, const std::string& continuation,
                      int64_t prefix_token) {
  check_utf8(context, "context");
  check_utf8(continuation, "continuation");
  // lm-eval's tok_encode adds no BOS to text that starts with the BOS text; our encode() never adds
  // special tokens, which is what the GPT-NeoX tokenizer does either way.
  if (context.empty()) {
    std::vector<int64_t> cont = tokenizer.encode(continuation);
    if (cont.empty() || cont.front() != prefix_token) return {{prefix_token}, std::move(cont)};
    return {{prefix_token}, std::vector<int64_t>(cont.begin() + 1, cont.end())};
  }
  // "Hello " + "world" scores "Hello" + " world": BPE vocabularies attach the space to the next word.
  const size_t keep = rstrip_length(context);
  const std::string ctx_text = context.substr(0, keep);
  const std::string cont_text = context.substr(keep) + continuation;
  TokenPair pair;
  pair.context = tokenizer.encode(ctx_text);
  const std::vector<int64_t> whole = tokenizer.encode(ctx_text + cont_text);
  // The continuation is what the whole adds after as many tokens as the context alone has, even where the
  // two tokenisations disagree at the boundary.
  if (whole.size() > pair.context.size()) {
    pair.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(pair.context.size()), whole.end());
  }
  return pair;
}

std::vector<RollingWindow> rolling_token_windows(const std::vector<int64_t>& tokens, int64_t prefix_token,
                                                 int64_t max_seq_len, int64_t context_len) {
  TORCH_CHECK(1 <= context_len && context_len <= max_seq_len, "rolling_token_windows: need 1 <= context_len (",
              context_len, ") <= max_seq_len (", max_seq_len, ")");
  std::vector<RollingWindow> windows;
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) return windows;
  const auto at = [&](int64_t i) { return tokens.begin() + i; };
  // The first window predicts every token it holds, the first from the prefix token alone.
  const int64_t first = std::min(max_seq_len, n);
  RollingWindow w0;
  w0.input.push_back(prefix_token);
  w0.input.insert(w0.input.end(), at(0), at(first - 1));
  w0.predicted.assign(at(0), at(first));
  windows.push_back(std::move(w0));
  // Later windows predict up to pred_len new tokens each, the first of them conditioned on at least
  // context_len tokens; the input is the max_seq_len tokens ending just before the last prediction (it
  // always starts at or after token 0: predicted >= max_seq_len here).
  const int64_t pred_len = max_seq_len - context_len + 1;
  for (int64_t predicted = first; predicted < n;) {
    const int64_t count = std::min(n - predicted, pred_len);
    const int64_t end = predicted + count;
    windows.push_back(
        {std::vector<int64_t>(at(end - max_seq_len - 1), at(end - 1)), std::vector<int64_t>(at(end - count), at(end))});
    predicted = end;
  }
  return windows;
}

TokenPair make_disjoint_window(const RollingWindow& window) {
  const size_t overlap = window.predicted.empty() ? 0 : window.predicted.size() - 1;
  TORCH_CHECK(overlap <= window.input.size(), "make_disjoint_window: ", window.predicted.size(),
              " predicted tokens but only ", window.input.size(), " input tokens");
  TokenPair pair;
  pair.context.assign(window.input.begin(), window.input.end() - static_cast<std::ptrdiff_t>(overlap));
  pair.continuation = window.predicted;
  return pair;
}

std::vector<TokenScore> score_tokens(models::CausalLM& model, const std::vector<TokenPair>& pairs,
                                     const ScoreOptions& options) {
  TORCH_CHECK(options.batch_size >= 1, "loglikelihood: batch size must be >= 1; got ", options.batch_size);
  TORCH_CHECK(options.max_length >= 1, "loglikelihood: max_length must be >= 1; got ", options.max_length);
  const int64_t vocab = model.vocab_size();
  for (size_t i = 0; i < pairs.size(); ++i) check_pair(pairs[i], vocab, options.max_length, describe(options, i));

  std::vector<TokenScore> out(pairs.size());
  const c10::Device device = model_device(model);
  at::NoGradGuard no_grad;
  // Pairs that share their context: the context once, then the continuations from its state; for
  // attention models, every pair whose input is its whole text goes into tree-packed rows instead.
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> rest, tree;
  const bool use_tree = options.share_contexts && model.supports_tree_attention();
  if (use_tree) {
    for (size_t i = 0; i < pairs.size(); ++i) (whole_input(pairs[i], options.max_length) ? tree : rest).push_back(i);
  } else if (options.share_contexts) {
    std::tie(groups, rest) = shared_context_groups(pairs, options.max_length, options.share_prefixes);
  } else {
    for (size_t i = 0; i < pairs.size(); ++i) rest.push_back(i);
  }
  std::vector<TokenPair> rest_pairs;
  rest_pairs.reserve(rest.size());
  for (const size_t i : rest) rest_pairs.push_back(pairs[i]);
  const Plan plan = plan_inputs(rest_pairs, options.max_length);
  const std::vector<Sequence>& seqs = plan.seqs;
  // The widest forward pass before any runs: the first batch (the longest inputs come first), or a tree row.
  int64_t widest = use_tree && !tree.empty() ? options.tree_row_tokens : 0;
  if (!seqs.empty()) {
    widest = std::max(widest, std::min<int64_t>(options.batch_size, int64_t(seqs.size())) *
                                  static_cast<int64_t>(seqs.front().input->size()));
  }
  models::check_memory(models::estimate_logits(vocab, 1, widest), "loglikelihood: the widest forward pass",
                       "lower --batch-size or --max-length");
  int64_t total = static_cast<int64_t>(seqs.size() + tree.size()), done = 0;
  for (const auto& g : groups) total += static_cast<int64_t>(g.size());
  if (!tree.empty()) {
    TreeScoringOptions tree_options;
    tree_options.row_tokens = options.tree_row_tokens;
    tree_options.share_prefixes = options.share_prefixes;
    tree_options.forwarded = options.forwarded_tokens;
    tree_options.progress = [&](int64_t pairs_done) {
      if (options.progress) options.progress(pairs_done, total);
    };
    score_tree(model, pairs, tree, device, tree_options, out);
    done = static_cast<int64_t>(tree.size());
  }
  PrefixState prefix;
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& g = groups[i];
    const size_t keep = i + 1 < groups.size() && options.share_prefixes
                            ? common_prefix_length(pairs[g[0]].context, pairs[groups[i + 1][0]].context)
                            : 0;
    score_shared_context(model, pairs, g, keep, prefix, device, out, options.forwarded_tokens);
    done += static_cast<int64_t>(g.size());
    if (options.progress) options.progress(done, total);
  }
  std::vector<TokenScore> rest_out(rest_pairs.size());
  for (size_t begin = 0; begin < seqs.size(); begin += static_cast<size_t>(options.batch_size)) {
    const size_t end = std::min(seqs.size(), begin + static_cast<size_t>(options.batch_size));
    score_batch(model, seqs, begin, end, rest_pairs, device, rest_out, options.forwarded_tokens);
    done += static_cast<int64_t>(end - begin);
    if (options.progress) options.progress(done, total);
  }
  for (size_t k = 0; k < rest.size(); ++k) out[rest[k]] = rest_out[k];
  return out;
}

std::vector<ScoreResult> score(models::CausalLM& model, const Tokenizer& tokenizer,
                               const std::vector<ScoreRequest>& requests, const ScoreOptions& options) {
  TORCH_CHECK(options.max_length >= 1, "loglikelihood: max_length must be >= 1; got ", options.max_length);
  // Only a request with an empty context or a rolling text needs a prefix token: ask for it only then.
  const bool needs_prefix = std::any_of(requests.begin(), requests.end(), [](const ScoreRequest& r) {
    const auto* pair = std::get_if<LoglikelihoodRequest>(&r);
    return pair == nullptr || pair->context.empty();
  });
  const int64_t prefix = needs_prefix ? prefix_token(tokenizer, options) : -1;

  std::vector<ScoreResult> results(requests.size());
  std::vector<TokenPair> pairs;
  std::vector<size_t> owner;  // request of each pair
  for (size_t i = 0; i < requests.size(); ++i) {
    if (const auto* r = std::get_if<LoglikelihoodRequest>(&requests[i])) {
      TORCH_CHECK(tok::find_invalid_utf8(r->context) == std::string_view::npos &&
                      tok::find_invalid_utf8(r->continuation) == std::string_view::npos,
                  describe(options, i), ": the text is not valid UTF-8");
      pairs.push_back(encode_pair(tokenizer, r->context, r->continuation, prefix));
      results[i].num_tokens = static_cast<int64_t>(pairs.back().continuation.size());
      owner.push_back(i);
    } else {
      const auto& text = std::get<RollingRequest>(requests[i]).text;
      TORCH_CHECK(tok::find_invalid_utf8(text) == std::string_view::npos, describe(options, i),
                  ": the text is not valid UTF-8");
      const std::vector<int64_t> tokens = tokenizer.encode(text);
      results[i].num_tokens = static_cast<int64_t>(tokens.size());
      results[i].is_greedy = true;  // vacuously, until a window says otherwise
      // context_len = 1 as lm-eval's loglikelihood_rolling: windows of max_length predictions, each after
      // the first conditioned on the one token before it (the last, shorter one on more).
      for (const RollingWindow& w : rolling_token_windows(tokens, prefix, options.max_length, 1)) {
        pairs.push_back(make_disjoint_window(w));
        owner.push_back(i);
      }
    }
  }

  ScoreOptions pair_options = options;
  pair_options.describe_request = [&](size_t p) { return describe(options, owner[p]); };
  const std::vector<TokenScore> scores = score_tokens(model, pairs, pair_options);
  for (size_t p = 0; p < pairs.size(); ++p) {
    ScoreResult& r = results[owner[p]];
    r.loglikelihood += scores[p].loglikelihood;
    r.is_greedy = std::holds_alternative<RollingRequest>(requests[owner[p]]) ? r.is_greedy && scores[p].is_greedy
                                                                             : scores[p].is_greedy;
  }
  for (size_t i = 0; i < results.size() && !options.allow_nonfinite; ++i) {
    const double ll = results[i].loglikelihood;
    TORCH_CHECK(std::isfinite(ll), describe(options, i), ": the loglikelihood is ",
                std::isnan(ll) ? "NaN"
                : ll > 0       ? "+Inf"
                               : "-Inf",
                ": the model computes NaN or Inf (check its weights and config.json; --allow-nonfinite reports it)");
  }
  return results;
}

std::vector<LoglikelihoodResult> loglikelihood(models::CausalLM& model, const Tokenizer& tokenizer,
                                               const std::vector<LoglikelihoodRequest>& requests,
                                               const ScoreOptions& options) {
  const std::vector<ScoreRequest> all(requests.begin(), requests.end());
  std::vector<LoglikelihoodResult> out;
  out.reserve(requests.size());
  for (const ScoreResult& r : score(model, tokenizer, all, options)) {
    out.push_back({r.loglikelihood, r.is_greedy, r.num_tokens});
  }
  return out;
}

std::vector<RollingResult> loglikelihood_rolling(models::CausalLM& model, const Tokenizer& tokenizer,
                                                 const std::vector<RollingRequest>& requests,
                                                 const ScoreOptions& options) {
  const std::vector<ScoreRequest> all(requests.begin(), requests.end());
  std::vector<RollingResult> out;
  out.reserve(requests.size());
  for (const ScoreResult& r : score(model, tokenizer, all, options)) out.push_back({r.loglikelihood, r.num_tokens});
  return out;
}

}  // namespace mft::eval
