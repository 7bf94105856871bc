// Tree-packed scoring (csrc/eval/tree_scoring.*) and the model side it stands on (CausalLM::forward_tree,
// DecodeCache::truncate): every packed token must see exactly what it would see in its own sequence, so the
// logits equal those of running each sequence alone, and the scores equal scoring each pair whole.
#include "eval/loglikelihood.h"
#include "eval/tree_scoring.h"
#include "models/gpt_neox.h"
#include "models/registry.h"
#include "tokenizer/tokenizer.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using Catch::Matchers::Contains;
using mft::eval::LoglikelihoodRequest;
using mft::eval::ScoreRequest;
using Ids = std::vector<int64_t>;

namespace {
at::Tensor ids_tensor(const Ids& ids) {
  return at::tensor(at::ArrayRef<int64_t>(ids), at::kLong).unsqueeze(0);  // (1, L)
}

Ids concat(const Ids& a, const Ids& b) {
  Ids c = a;
  c.insert(c.end(), b.begin(), b.end());
  return c;
}

Ids iota_ids(int64_t n, int64_t start) {
  Ids ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((start + 7 * i) % 250 + 1);
  return ids;
}

// fp64 weights: both sides compute in fp64 and round to fp32 at the very end, so they agree to within a
// couple of fp32 ulps of the logits (the two paths sum attention over different, masked, widths).
void check_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.sizes() == want.sizes());
  const double scale = want.abs().max().item<double>();
  const double err = (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
  CHECK(err <= 4 * std::numeric_limits<float>::epsilon() * std::max(1.0, scale));
}

std::shared_ptr<mft::models::CausalLM> tiny_neox() {
  auto model = mft::models::load_model("preset:pythia-tiny", 5);
  model->eval();
  model->to(at::kDouble);
  return model;
}
}  // namespace

TEST_CASE("forward_tree gives each packed token the logits of its own sequence", "[tree_scoring]") {
  at::NoGradGuard no_grad;
  auto model = tiny_neox();
  REQUIRE(model->supports_tree_attention());
  const Ids prefix = iota_ids(6, 3), ctx = iota_ids(7, 40), a = iota_ids(3, 90), b = iota_ids(4, 120),
            other = iota_ids(5, 200);
  // Row: [ctx | a | b | other]; a and b continue ctx, other stands alone.
  const Ids row = concat(concat(concat(ctx, a), b), other);
  const int64_t T = static_cast<int64_t>(row.size());
  auto row_mask = [&](int64_t past) {
    at::Tensor visible = at::zeros({T, past + T}, at::kBool);
    visible.narrow(1, 0, past).fill_(true);
    auto causal = [&](int64_t from, int64_t n) {
      for (int64_t i = 0; i < n; ++i) visible[from + i].narrow(0, past + from, i + 1).fill_(true);
    };
    causal(0, 7);                                                                 // ctx
    for (const auto& [from, n] : {std::pair<int64_t, int64_t>{7, 3}, {10, 4}}) {  // a, b: see ctx
      visible.narrow(0, from, n).narrow(1, past, 7).fill_(true);
      causal(from, n);
    }
    causal(14, 5);  // other: only itself
    return visible;
  };
  Ids positions_ids;
  for (int64_t i = 0; i < 7; ++i) positions_ids.push_back(i);
  for (int64_t i = 0; i < 3; ++i) positions_ids.push_back(7 + i);
  for (int64_t i = 0; i < 4; ++i) positions_ids.push_back(7 + i);
  for (int64_t i = 0; i < 5; ++i) positions_ids.push_back(i);
  const at::Tensor rows = at::arange(T, at::kLong);

  SECTION("without a cache") {
    const at::Tensor got = model->forward_tree(ids_tensor(row), at::tensor(positions_ids, at::kLong), row_mask(0),
                                               nullptr, rows);  // (T, V)
    const at::Tensor with_a = model->forward(ids_tensor(concat(ctx, a))).select(0, 0);
    const at::Tensor with_b = model->forward(ids_tensor(concat(ctx, b))).select(0, 0);
    check_close(got.narrow(0, 0, 10), with_a, "ctx + a");
    check_close(got.narrow(0, 10, 4), with_b.narrow(0, 7, 4), "b after ctx");
    check_close(got.narrow(0, 14, 5), model->forward(ids_tensor(other)).select(0, 0), "other alone");
    // Only the rows asked for, in the order asked.
    const at::Tensor some = model->forward_tree(ids_tensor(row), at::tensor(positions_ids, at::kLong), row_mask(0),
                                                nullptr, at::tensor(Ids{13, 0, 13}, at::kLong));
    check_close(some, at::stack({got[13], got[0], got[13]}), "selected rows");
  }

  SECTION("after a cached prefix, which stays as it was") {
    const int64_t past = static_cast<int64_t>(prefix.size());
    auto cache = model->new_cache(1);
    model->forward_cached(ids_tensor(prefix), *cache);
    Ids shifted = positions_ids;
    for (auto& p : shifted) p += past;
    // `other` continues the prefix too here: every row token sees the cache.
    const at::Tensor got =
        model->forward_tree(ids_tensor(row), at::tensor(shifted, at::kLong), row_mask(past), cache.get(), rows);
    CHECK(cache->length == past);
    const at::Tensor with_a = model->forward(ids_tensor(concat(concat(prefix, ctx), a))).select(0, 0);
    const at::Tensor with_b = model->forward(ids_tensor(concat(concat(prefix, ctx), b))).select(0, 0);
    const at::Tensor with_other = model->forward(ids_tensor(concat(prefix, other))).select(0, 0);
    check_close(got.narrow(0, 0, 10), with_a.narrow(0, past, 10), "prefix + ctx + a");
    check_close(got.narrow(0, 10, 4), with_b.narrow(0, past + 7, 4), "b");
    check_close(got.narrow(0, 14, 5), with_other.narrow(0, past, 5), "other after the prefix");
    // The row wrote into the cache's spare capacity only: decoding on from the prefix is unchanged.
    const at::Tensor next = model->forward_cached(ids_tensor(a), *cache);
    check_close(next.select(0, 0), model->forward(ids_tensor(concat(prefix, a))).select(0, 0).narrow(0, past, 3),
                "the cache after the row");
    // Truncating forgets the tokens after n; the next chunk continues from there.
    cache->truncate(past);
    const at::Tensor again = model->forward_cached(ids_tensor(b), *cache);
    check_close(again.select(0, 0), model->forward(ids_tensor(concat(prefix, b))).select(0, 0).narrow(0, past, 4),
                "after truncate");
    // No mask: one plain sequence continuing the cache.
    cache->truncate(past);
    const Ids seq = concat(ctx, a);
    Ids seq_positions;
    for (int64_t i = 0; i < 10; ++i) seq_positions.push_back(past + i);
    const at::Tensor plain = model->forward_tree(ids_tensor(seq), at::tensor(seq_positions, at::kLong), at::Tensor(),
                                                 cache.get(), at::arange(10, at::kLong));
    check_close(plain, with_a.narrow(0, past, 10), "plain sequence on the cache");
    CHECK_THROWS_WITH(cache->truncate(past + 1), Contains("cannot truncate a cache of 6 tokens to 7"));
  }

  SECTION("bad input") {
    const at::Tensor pos = at::tensor(positions_ids, at::kLong);
    CHECK_THROWS_WITH(model->forward_tree(ids_tensor(row), pos.to(at::kInt), row_mask(0), nullptr, rows),
                      Contains("positions must be (19) int64"));
    CHECK_THROWS_WITH(model->forward_tree(ids_tensor(row), pos, row_mask(1), nullptr, rows),
                      Contains("visible must be (19, 19) bool"));
    CHECK_THROWS_WITH(model->forward_tree(ids_tensor(row).expand({2, T}), pos, row_mask(0), nullptr, rows),
                      Contains("takes one row"));
    auto two = model->new_cache(2);
    CHECK_THROWS_WITH(model->forward_tree(ids_tensor(row), pos, row_mask(0), two.get(), rows),
                      Contains("needs a batch-1 cache"));
  }

  SECTION("recurrent models have no tree attention and no truncation") {
    auto mamba = mft::models::load_model("preset:mamba-tiny", 5);
    CHECK_FALSE(mamba->supports_tree_attention());
    CHECK_THROWS_WITH(
        mamba->forward_tree(ids_tensor(row), at::tensor(positions_ids, at::kLong), row_mask(0), nullptr, rows),
        Contains("needs attention"));
    auto cache = mamba->new_cache(1);
    CHECK_THROWS_WITH(cache->truncate(0), Contains("cannot be truncated"));
  }
}

namespace {
// A tree row as tree scoring builds it: groups side by side, each a context then continuations that see it.
struct TreeRow {
  Ids ids, positions;
  at::Tensor visible;             // (T, past + T)
  std::vector<Ids> sequences;     // each row token's whole sequence (prefix included) ...
  std::vector<int64_t> position;  // ... and its position in it
};

TreeRow build_row(const std::vector<std::pair<Ids, std::vector<Ids>>>& groups, const Ids& prefix) {
  TreeRow r;
  const auto P = static_cast<int64_t>(prefix.size());
  int64_t T = 0;
  for (const auto& [ctx, conts] : groups) {
    T += static_cast<int64_t>(ctx.size());
    for (const auto& c : conts) T += static_cast<int64_t>(c.size());
  }
  r.visible = at::zeros({T, P + T}, at::kBool);
  r.visible.narrow(1, 0, P).fill_(true);
  for (const auto& [ctx, conts] : groups) {
    const auto a = static_cast<int64_t>(r.ids.size()), c = static_cast<int64_t>(ctx.size());
    for (int64_t j = 0; j < c; ++j) {
      r.ids.push_back(ctx[static_cast<size_t>(j)]);
      r.positions.push_back(P + j);
      r.visible[a + j].narrow(0, P + a, j + 1).fill_(true);
      r.sequences.push_back(concat(prefix, ctx));
      r.position.push_back(P + j);
    }
    for (const auto& cont : conts) {
      const auto b = static_cast<int64_t>(r.ids.size());
      for (int64_t t = 0; t < static_cast<int64_t>(cont.size()); ++t) {
        r.ids.push_back(cont[static_cast<size_t>(t)]);
        r.positions.push_back(P + c + t);
        r.visible[b + t].narrow(0, P + a, c).fill_(true);
        r.visible[b + t].narrow(0, P + b, t + 1).fill_(true);
        r.sequences.push_back(concat(concat(prefix, ctx), cont));
        r.position.push_back(P + c + t);
      }
    }
  }
  return r;
}
}  // namespace

TEST_CASE("long tree rows attend per segment with the dense mask's logits", "[tree_scoring]") {
  at::NoGradGuard no_grad;
  auto model = tiny_neox();
  // Three groups of 60 + 10 + 12 tokens: wide enough that attention runs per group (plus the cache).
  std::vector<std::pair<Ids, std::vector<Ids>>> groups;
  for (int64_t g = 0; g < 3; ++g)
    groups.push_back({iota_ids(60, 11 * g), {iota_ids(10, 50 + g), iota_ids(12, 90 + g)}});
  for (const int64_t past : {0, 20}) {
    INFO("cached prefix of " << past);
    const Ids prefix = iota_ids(past, 170);
    const TreeRow row = build_row(groups, prefix);
    const auto T = static_cast<int64_t>(row.ids.size());
    const auto split = mft::models::split_tree_row(row.visible, past, at::kDouble);
    REQUIRE(split.has_value());
    CHECK(split->segments == std::vector<std::pair<int64_t, int64_t>>{{0, 82}, {82, 164}, {164, 246}});
    auto cache = model->new_cache(1);
    if (past > 0) model->forward_cached(ids_tensor(prefix), *cache);
    const at::Tensor got = model->forward_tree(ids_tensor(row.ids), at::tensor(row.positions, at::kLong), row.visible,
                                               past > 0 ? cache.get() : nullptr, at::arange(T, at::kLong));
    std::vector<at::Tensor> want;
    for (int64_t i = 0; i < T; ++i) {
      want.push_back(
          model->forward(ids_tensor(row.sequences[static_cast<size_t>(i)]))[0][row.position[static_cast<size_t>(i)]]);
    }
    check_close(got, at::stack(want), "every row token");
  }
  // A token that sees an earlier group joins the two into one segment.
  TreeRow joined = build_row(groups, {});
  joined.visible[100][5] = true;
  const auto two = mft::models::split_tree_row(joined.visible, 0, at::kFloat);
  REQUIRE(two.has_value());
  CHECK(two->segments == std::vector<std::pair<int64_t, int64_t>>{{0, 164}, {164, 246}});
  // Rows too small to pay for the extra calls, a token that sees a later token or misses part of the
  // cache: one dense mask.
  const TreeRow small = build_row({{iota_ids(5, 1), {iota_ids(3, 9)}}, {iota_ids(4, 30), {}}}, {});
  CHECK_FALSE(mft::models::split_tree_row(small.visible, 0, at::kFloat).has_value());
  TreeRow ahead = build_row(groups, {});
  ahead.visible[10][100] = true;
  CHECK_FALSE(mft::models::split_tree_row(ahead.visible, 0, at::kFloat).has_value());
  TreeRow partial = build_row(groups, iota_ids(4, 3));
  partial.visible[7][1] = false;
  CHECK_FALSE(mft::models::split_tree_row(partial.visible, 4, at::kFloat).has_value());
}

TEST_CASE("tree-packed scoring equals scoring every pair whole", "[tree_scoring]") {
  const auto tok = mft::make_byte_tokenizer();
  auto model = mft::models::load_model("preset:pythia-tiny", 3);
  model->eval();
  std::vector<ScoreRequest> requests;
  auto ask = [&](const std::string& ctx, const std::vector<std::string>& choices) {
    for (const auto& c : choices) requests.push_back(LoglikelihoodRequest{ctx, c});
  };
  // MMLU-like: two subjects, each a description (>= 16 tokens) then either the question (zero-shot) or
  // examples and the question (few-shot: a second level of shared prefix); one-token choices.
  const std::string algebra = "Questions about algebra follow.\n\n", shots = "Q: 1+1? A: 2\n\nQ: 2+3? A: 5\n\n";
  for (const std::string q : {"Q: 3+4? A:", "Q: 9-2? A:", "Q: 2*8? A:"}) {
    ask(algebra + q, {" 7", " 8", " 9"});
    ask(algebra + shots + q, {" 7", " 8", " 9"});
  }
  ask("Questions about the sea follow.\n\nQ: Is it wet? A:", {" yes", " no"});
  // Hellaswag-like: multi-token endings of different lengths.
  ask("A man is sitting on a roof. He", {" starts pulling up roofing.", " is ripping level tiles off.", " x"});
  // Winogrande-like: two contexts that differ only at their end, one continuation.
  ask("The trophy does not fit into the suitcase because the trophy", {" is too large."});
  ask("The trophy does not fit into the suitcase because the suitcase", {" is too large."});
  // One context a prefix of another; a repeated request; an empty context; a pair too long for max_length.
  ask("Long shared beginning of a sentence", {" ends here."});
  ask("Long shared beginning of a sentence that goes on", {" and on."});
  ask("A man is sitting on a roof. He", {" x"});
  ask("", {"Hello there"});
  ask(std::string(100, 'z'), {" truncated"});

  mft::eval::ScoreOptions options;
  options.max_length = 96;
  options.share_contexts = false;  // lm-eval's way: every pair whole
  const auto whole = mft::eval::score(*model, *tok, requests, options);
  options.share_contexts = true;
  for (const int64_t row_tokens : {1, 8, 64, 512}) {
    for (const bool prefixes : {false, true}) {
      INFO("row_tokens " << row_tokens << ", shared prefixes " << prefixes);
      options.tree_row_tokens = row_tokens;
      options.share_prefixes = prefixes;
      int64_t last_done = 0, last_total = 0;
      options.progress = [&](int64_t done, int64_t total) {
        CHECK(done > last_done);
        last_done = done, last_total = total;
      };
      const auto tree = mft::eval::score(*model, *tok, requests, options);
      CHECK(last_total == static_cast<int64_t>(requests.size()));  // one per pair (the truncated one's input once)
      CHECK(last_done == last_total);
      REQUIRE(tree.size() == whole.size());
      for (size_t i = 0; i < requests.size(); ++i) {
        INFO("request " << i);
        // fp32 matrix products of other widths round differently; nothing else differs.
        CHECK(std::abs(tree[i].loglikelihood - whole[i].loglikelihood) <=
              1e-5 * std::max(1.0, std::abs(whole[i].loglikelihood)));
        CHECK(tree[i].is_greedy == whole[i].is_greedy);
        CHECK(tree[i].num_tokens == whole[i].num_tokens);
      }
    }
  }
}

TEST_CASE("tree-packed scoring runs each shared token once", "[tree_scoring]") {
  const auto tok = mft::make_byte_tokenizer();
  auto model = mft::models::load_model("preset:pythia-tiny", 3);
  model->eval();
  // Three contexts after one 30-token prefix, each 4 tokens of its own, each with two one-token choices;
  // then a fourth context sharing only 10 tokens (below the 16 worth a cached prefix).
  const std::string prefix = "Thirty bytes of shared prefix:";
  REQUIRE(prefix.size() == 30);
  std::vector<ScoreRequest> requests;
  for (const std::string own : {"Abc?", "Def?", "Ghi?"}) {
    for (const std::string choice : {"y", "n"}) requests.push_back(LoglikelihoodRequest{prefix + own, choice});
  }
  requests.push_back(LoglikelihoodRequest{"Thirty byt and more", "y"});
  mft::eval::ScoreOptions options;
  options.max_length = 128;
  int64_t shared = 0, unshared = 0;
  options.forwarded_tokens = &shared;
  mft::eval::score(*model, *tok, requests, options);
  options.share_prefixes = false;
  options.forwarded_tokens = &unshared;
  mft::eval::score(*model, *tok, requests, options);
  // The prefix once (30), each context's own 4 tokens, the fourth context whole (19); one-token choices
  // add no input tokens (they are predicted by their context's last position).
  CHECK(shared == 30 + 3 * 4 + 19);
  CHECK(unshared == 3 * 34 + 19);
}

TEST_CASE("score_rows picks log-probabilities and argmax per target", "[tree_scoring]") {
  const at::Tensor logits = at::tensor({0.0, 1.0, 2.0, 3.0, 0.0, 0.0}, at::kFloat).reshape({2, 3});
  std::vector<double> ll;
  std::vector<bool> greedy;
  mft::eval::score_rows(logits, {0, 0, 1}, {2, 0, 0}, ll, greedy);
  const double lse0 = std::log(std::exp(0.0) + std::exp(1.0) + std::exp(2.0));
  const double lse1 = std::log(std::exp(3.0) + 2.0);
  REQUIRE(ll.size() == 3);
  CHECK(ll[0] == Approx(2.0 - lse0).epsilon(1e-6));
  CHECK(ll[1] == Approx(0.0 - lse0).epsilon(1e-6));
  CHECK(ll[2] == Approx(3.0 - lse1).epsilon(1e-6));
  CHECK(greedy == std::vector<bool>{true, false, true});
}
