// Loglikelihood scoring against lm-evaluation-harness's HF-backend semantics: the rolling windows against
// lm-eval's own test cases, the pair tokenisation rules on the byte tokenizer, batching invariance and errors
// on a tiny preset, and whole requests against tests/eval/lm_eval_oracle.py (transformers + tokenizers on the
// same random-weight Mamba, Mamba-2 and GPT-NeoX models with a real BPE tokenizer).
#include "eval/loglikelihood.h"
#include "models/registry.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

using Catch::Matchers::Contains;
using mft::eval::LoglikelihoodRequest;
using mft::eval::RollingRequest;
using mft::eval::RollingWindow;
using mft::eval::ScoreRequest;
using mft::eval::TokenPair;
using nlohmann::json;
namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

namespace {
Ids range(int64_t begin, int64_t end) {
  Ids ids(static_cast<size_t>(end - begin));
  std::iota(ids.begin(), ids.end(), begin);
  return ids;
}

Ids bytes(const std::string& s) {
  Ids ids;
  for (const unsigned char c : s) ids.push_back(c);
  return ids;
}

// The two ways a window can be wrong, shown together on failure.
void check_windows(const std::vector<RollingWindow>& got, const std::vector<std::pair<Ids, Ids>>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("window " << i);
    CHECK(got[i].input == want[i].first);
    CHECK(got[i].predicted == want[i].second);
  }
}
}  // namespace

TEST_CASE("rolling windows are lm-eval's get_rolling_token_windows", "[loglikelihood]") {
  constexpr int64_t kPrefix = -100;  // lm-eval's tests use an id no vocabulary has: it must only be copied
  // lm-eval tests/test_utils.py v1: 34 tokens, max_seq_len 10, context_len 1 (what loglikelihood_rolling
  // uses): the first window predicts 10 tokens from the prefix token, then 10 each, the last 4 conditioned on
  // the 6 tokens before them.
  check_windows(mft::eval::rolling_token_windows(range(0, 34), kPrefix, 10, 1),
                {{{-100, 0, 1, 2, 3, 4, 5, 6, 7, 8}, range(0, 10)},
                 {range(9, 19), range(10, 20)},
                 {range(19, 29), range(20, 30)},
                 {range(23, 33), {30, 31, 32, 33}}});
  // v2: context_len 8 -> 3 new predictions per window after the first.
  const auto v2 = mft::eval::rolling_token_windows(range(0, 34), kPrefix, 10, 8);
  REQUIRE(v2.size() == 9);
  CHECK(v2[1].input == range(2, 12));
  CHECK(v2[1].predicted == Ids{10, 11, 12});
  CHECK(v2[8].input == range(23, 33));
  CHECK(v2[8].predicted == Ids{31, 32, 33});
  // v3: context_len = max_seq_len -> one new prediction per window, each on the 10 tokens before it.
  const auto v3 = mft::eval::rolling_token_windows(range(0, 34), kPrefix, 10, 10);
  REQUIRE(v3.size() == 25);
  CHECK(v3[1].input == range(0, 10));
  CHECK(v3[1].predicted == Ids{10});
  CHECK(v3[24].input == range(23, 33));
  // v5: the text fills whole windows exactly.
  check_windows(mft::eval::rolling_token_windows(range(0, 30), kPrefix, 10, 1),
                {{{-100, 0, 1, 2, 3, 4, 5, 6, 7, 8}, range(0, 10)},
                 {range(9, 19), range(10, 20)},
                 {range(19, 29), range(20, 30)}});
  // v6: max_seq_len 2.
  check_windows(mft::eval::rolling_token_windows(range(0, 9), kPrefix, 2, 1),
                {{{-100, 0}, {0, 1}}, {{1, 2}, {2, 3}}, {{3, 4}, {4, 5}}, {{5, 6}, {6, 7}}, {{6, 7}, {8}}});
  // Shorter than one window; no tokens at all.
  check_windows(mft::eval::rolling_token_windows({7, 8, 9}, kPrefix, 10, 1), {{{-100, 7, 8}, {7, 8, 9}}});
  CHECK(mft::eval::rolling_token_windows({}, kPrefix, 2, 1).empty());
  // Every token is predicted exactly once, in order, for any geometry.
  for (int64_t n : {1, 5, 16, 17, 33, 64}) {
    for (int64_t max_len : {1, 2, 7, 16}) {
      for (int64_t ctx : {int64_t{1}, max_len}) {
        Ids all;
        for (const auto& w : mft::eval::rolling_token_windows(range(0, n), kPrefix, max_len, ctx)) {
          CHECK(static_cast<int64_t>(w.input.size()) <= max_len);
          all.insert(all.end(), w.predicted.begin(), w.predicted.end());
        }
        CHECK(all == range(0, n));
      }
    }
  }
  CHECK_THROWS_WITH(mft::eval::rolling_token_windows({1}, kPrefix, 4, 5), Contains("context_len"));
  CHECK_THROWS_WITH(mft::eval::rolling_token_windows({1}, kPrefix, 4, 0), Contains("context_len"));
}

TEST_CASE("make_disjoint_window keeps only the context before the predictions", "[loglikelihood]") {
  // lm-eval tests/test_utils.py test_make_disjoint_window.
  auto disjoint = [](Ids input, Ids predicted) {
    const TokenPair p = mft::eval::make_disjoint_window({std::move(input), std::move(predicted)});
    return std::make_pair(p.context, p.continuation);
  };
  CHECK(disjoint({1, 2, 3, 4, 5}, {2, 3, 4, 5, 6}) == std::make_pair(Ids{1}, Ids{2, 3, 4, 5, 6}));
  CHECK(disjoint({1, 2, 3, 4, 5}, {4, 5, 6}) == std::make_pair(Ids{1, 2, 3}, Ids{4, 5, 6}));
  CHECK(disjoint({1, 2, 3, 4, 5}, {6}) == std::make_pair(Ids{1, 2, 3, 4, 5}, Ids{6}));
  CHECK_THROWS_WITH(disjoint({1}, {2, 3, 4}), Contains("3 predicted tokens but only 1 input"));
}

TEST_CASE("encode_pair follows lm-eval's _encode_pair", "[loglikelihood]") {
  const auto tok = mft::make_byte_tokenizer();  // ids are the bytes: the split is visible
  constexpr int64_t kEot = 256;
  auto pair = [&](const std::string& ctx, const std::string& cont) {
    const TokenPair p = mft::eval::encode_pair(*tok, ctx, cont, kEot);
    return std::make_pair(p.context, p.continuation);
  };
  CHECK(pair("Hello", " world") == std::make_pair(bytes("Hello"), bytes(" world")));
  // Trailing whitespace (Python str.isspace, as rstrip) moves to the continuation.
  CHECK(pair("Hello ", "world") == std::make_pair(bytes("Hello"), bytes(" world")));
  CHECK(pair("Q: x?\nA: \t\n", "y") == std::make_pair(bytes("Q: x?\nA:"), bytes(" \t\ny")));
  CHECK(pair("x\u3000\u00a0\x1c", "y") == std::make_pair(bytes("x"), bytes("\u3000\u00a0\x1cy")));
  // Not whitespace for Python: zero-width space, BOM, Mongolian vowel separator.
  CHECK(pair("x\u200b", "y") == std::make_pair(bytes("x\u200b"), bytes("y")));
  CHECK(pair("x\ufeff", "y") == std::make_pair(bytes("x\ufeff"), bytes("y")));
  CHECK(pair("x\u180e", "y") == std::make_pair(bytes("x\u180e"), bytes("y")));
  CHECK(pair("   ", "y") == std::make_pair(Ids{}, bytes("   y")));  // (an error once scored: empty context)
  // Empty context: the prefix token; a continuation that starts with it conditions on it instead.
  CHECK(pair("", "hi") == std::make_pair(Ids{kEot}, bytes("hi")));
  CHECK(pair("", "<|endoftext|>hi") == std::make_pair(Ids{kEot}, bytes("hi")));
  CHECK(pair("", "") == std::make_pair(Ids{kEot}, Ids{}));
  CHECK(pair("a", "") == std::make_pair(bytes("a"), Ids{}));
  CHECK_THROWS_WITH(pair("\xff", "a"), Contains("context is not valid UTF-8"));
  CHECK_THROWS_WITH(pair("a", "\xc3"), Contains("continuation is not valid UTF-8"));
  // BOS, else EOS, unless given.
  mft::eval::ScoreOptions options;
  CHECK(mft::eval::prefix_token(*tok, options) == kEot);
  options.prefix_token_id = 5;
  CHECK(mft::eval::prefix_token(*tok, options) == 5);
}

namespace {
std::shared_ptr<mft::models::CausalLM> tiny_model() {
  auto model = mft::models::load_model("preset:mamba-tiny", 3);
  model->eval();
  return model;
}
}  // namespace

TEST_CASE("scores do not depend on batching, order or shared inputs", "[loglikelihood]") {
  auto model = tiny_model();
  const auto tok = mft::make_byte_tokenizer();
  const std::vector<ScoreRequest> requests = {
      LoglikelihoodRequest{"The cat sat on the", " mat"},
      RollingRequest{"A rolling text that is longer than the window of twenty tokens!!"},  // 64 bytes
      LoglikelihoodRequest{"", "Hello"},
      LoglikelihoodRequest{"Answer:", " a"},
      LoglikelihoodRequest{"Answer:", " b"},  // same input as the one before: one forward pass for both
      LoglikelihoodRequest{"The cat sat on the", " mat"},
      RollingRequest{""},
      LoglikelihoodRequest{"A context far longer than the twenty tokens of max_length", " is truncated"},
  };
  mft::eval::ScoreOptions options;
  options.max_length = 20;
  options.share_contexts = false;  // lm-eval's way first: every distinct input one sequence
  int64_t calls = 0, last_done = 0, last_total = 0;
  options.progress = [&](int64_t done, int64_t total) {
    CHECK(done > last_done);
    ++calls, last_done = done, last_total = total;
  };
  const auto one = mft::eval::score(*model, *tok, requests, options);
  // Distinct inputs: 6 pairs less 2 shared + 4 windows of the 64-token rolling text.
  CHECK(last_total == 8);
  CHECK(last_done == last_total);
  CHECK(calls == 8);
  options.progress = nullptr;
  for (auto [batch, share] : {std::pair{3, false}, {16, false}, {1, true}, {4, true}}) {
    options.batch_size = batch;
    // Shared contexts: the two "Answer:" choices and the repeated pair run their context once and continue
    // from the decoding state; the empty context and the rolling text's first window share [prefix].
    options.share_contexts = share;
    const auto many = mft::eval::score(*model, *tok, requests, options);
    REQUIRE(many.size() == requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      INFO("batch " << batch << " share " << share << ", request " << i);
      // fp32 matmuls of a different batch width round differently; nothing else differs.
      CHECK(std::abs(many[i].loglikelihood - one[i].loglikelihood) <=
            1e-5 * std::max(1.0, std::abs(one[i].loglikelihood)));
      CHECK(many[i].is_greedy == one[i].is_greedy);
      CHECK(many[i].num_tokens == one[i].num_tokens);
    }
  }
  CHECK(one[0].loglikelihood == one[5].loglikelihood);
  CHECK(one[0].num_tokens == 4);
  CHECK(one[1].num_tokens == 64);
  CHECK(one[6].loglikelihood == 0);
  CHECK(one[6].num_tokens == 0);
  // Log-probabilities.
  for (const auto& r : one) CHECK(r.loglikelihood <= 0);
  // The typed entry points agree with the mixed one.
  const auto pairs = mft::eval::loglikelihood(*model, *tok, {{"The cat sat on the", " mat"}, {"", "Hello"}}, options);
  CHECK(std::abs(pairs[1].loglikelihood - one[2].loglikelihood) <= 1e-5 * std::abs(one[2].loglikelihood));
  const auto rolling = mft::eval::loglikelihood_rolling(*model, *tok, {{""}}, options);
  CHECK(rolling[0].num_tokens == 0);
  // Low-precision weights still give fp32 logits (a smoke test: the precision itself is the models' tests').
  mft::models::cast_model(*model, at::kBFloat16);
  for (const auto& r : mft::eval::score(*model, *tok, requests, options)) CHECK(std::isfinite(r.loglikelihood));
}

TEST_CASE("scoring errors name the request", "[loglikelihood]") {
  auto model = tiny_model();
  const auto tok = mft::make_byte_tokenizer();
  mft::eval::ScoreOptions options;
  options.max_length = 8;
  // lm-eval asserts len(continuation_enc) > 0 (and fails on continuation_enc[0] for an empty context).
  CHECK_THROWS_WITH(
      mft::eval::score(*model, *tok, {LoglikelihoodRequest{"a", "b"}, LoglikelihoodRequest{"a", ""}}, options),
      Contains("request 1: the continuation has no tokens"));
  CHECK_THROWS_WITH(mft::eval::score(*model, *tok, {LoglikelihoodRequest{"", ""}}, options),
                    Contains("request 0: the continuation has no tokens"));
  CHECK_THROWS_WITH(mft::eval::score(*model, *tok, {LoglikelihoodRequest{" ", "a"}}, options),
                    Contains("request 0: the context has no tokens"));
  // lm-eval asserts len(continuation_enc) <= max_length: nothing would condition its first token.
  CHECK_THROWS_WITH(mft::eval::score(*model, *tok, {LoglikelihoodRequest{"a", "123456789"}}, options),
                    Contains("request 0: the continuation has 9 tokens, more than max_length 8"));
  CHECK_THROWS_WITH(mft::eval::score(*model, *tok, {RollingRequest{"ok"}, RollingRequest{"\xe2\x82"}}, options),
                    Contains("request 1: the text is not valid UTF-8"));
  // Ids the model cannot embed (the preset's output layer has 272 rows).
  CHECK_THROWS_WITH(mft::eval::score_tokens(*model, {TokenPair{{1}, {2}}, TokenPair{{1}, {272}}}, options),
                    Contains("request 1: token id 272 is outside the model's vocabulary [0, 272)"));
  CHECK_THROWS_WITH(mft::eval::score_tokens(*model, {TokenPair{{-1}, {2}}}, options), Contains("token id -1"));
  options.batch_size = 0;
  CHECK_THROWS_WITH(mft::eval::score_tokens(*model, {TokenPair{{1}, {2}}}, options), Contains("batch size"));
  options.batch_size = 1;
  options.describe_request = [](size_t i) { return "line " + std::to_string(i + 7); };
  CHECK_THROWS_WITH(mft::eval::score(*model, *tok, {LoglikelihoodRequest{"a", ""}}, options),
                    Contains("line 7: the continuation has no tokens"));
}

namespace {
// The requests every family is scored on; with max_length 16 several are truncated and the long texts are
// cut into several windows.
std::vector<json> oracle_requests() {
  const std::string long_text =
      "The cat sat on the mat. The dog sat on the log. Hello, world! How are you doing today? Question: what is "
      "the answer?\nAnswer: the answer is forty two.";
  return {
      {{"context", "The cat sat on the"}, {"continuation", " mat."}},
      {{"context", "Question: what is the answer?\nAnswer:"}, {"continuation", " the answer is forty two."}},
      {{"context", ""}, {"continuation", "Hello, world!"}},
      {{"context", ""}, {"continuation", "<|endoftext|>Hello"}},
      {{"context", "The dog sat on the "}, {"continuation", "log"}},
      {{"context", "café \t\n"}, {"continuation", "naïve 日本語 🙂"}},
      {{"context", "x\u3000"}, {"continuation", "y\u200bz"}},
      {{"context", "Answer:"}, {"continuation", " the"}},
      {{"context", "Answer:"}, {"continuation", " a"}},
      {{"context", "Answer:"}, {"continuation", " the"}},
      {{"context", "Hello"}, {"continuation", "<|endoftext|>"}},
      {{"context", long_text}, {"continuation", " what"}},
      {{"context", long_text}, {"continuation", " The cat sat on the mat. The dog"}},
      {{"text", long_text}},
      {{"text", long_text + " " + long_text}},
      {{"text", ""}},
      {{"text", "hi"}},
      {{"text", "日本語 🙂 café résumé naïve"}},
  };
}

// A fresh folder, removed with everything in it, also when a REQUIRE fails while it is being filled.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/mft-score-XXXXXX";
    path = mkdtemp(tmpl);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { fs::remove_all(path); }
};

// Random models of each family with their tokenizer, the requests, and the oracle's answers for max_length
// 16 and 2048.
struct OracleFixture {
  TempDir tmp;
  const fs::path& root = tmp.path;
  std::vector<std::string> families{"mamba", "neox", "mamba2"};
  OracleFixture() {
    const std::string python = std::getenv("MFT_PYTHON");
    const std::string dir = std::string(MFT_TESTS_DIR) + "/eval/";
    std::string make = python + " " + dir + "make_scoring_model.py " + root.string();
    std::string oracle = python + " " + dir + "lm_eval_oracle.py --max-length 16,2048";
    for (const auto& family : families) {
      make += " " + family;
      oracle += " " + (root / family).string();
    }
    REQUIRE(std::system(make.c_str()) == 0);
    for (const auto& family : families) {
      std::ifstream greedy(root / family / "greedy.json");
      std::ofstream out(root / family / "requests.jsonl");
      for (const json& r : oracle_requests()) out << r.dump() << "\n";
      out << json::parse(greedy).dump() << "\n";
    }
    REQUIRE(std::system(oracle.c_str()) == 0);
  }
};

std::vector<json> read_jsonl(const fs::path& path) {
  std::ifstream in(path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}
}  // namespace

TEST_CASE("scores equal lm-eval's HF backend on Mamba, GPT-NeoX and Mamba-2", "[loglikelihood][oracle]") {
  if (std::getenv("MFT_PYTHON") == nullptr) {
    WARN("MFT_PYTHON not set (ctest sets it): skipped");
    return;
  }
  OracleFixture fixture;
  for (const auto& family : fixture.families) {
    const fs::path dir = fixture.root / family;
    auto model = mft::models::load_model(dir.string());
    model->eval();
    const auto tok = mft::load_tokenizer(dir.string());
    std::vector<ScoreRequest> requests;
    const std::vector<json> lines = read_jsonl(dir / "requests.jsonl");
    for (const json& r : lines) {
      if (r.contains("text")) {
        requests.push_back(RollingRequest{r["text"].get<std::string>()});
      } else {
        requests.push_back(LoglikelihoodRequest{r["context"].get<std::string>(), r["continuation"].get<std::string>()});
      }
    }
    for (int64_t max_length : {16, 2048}) {
      const std::vector<json> want = read_jsonl(dir / ("oracle-" + std::to_string(max_length) + ".jsonl"));
      REQUIRE(want.size() == requests.size());
      mft::eval::ScoreOptions options;
      options.max_length = max_length;
      options.batch_size = 3;  // the oracle scores one request at a time, unsorted
      const auto got = mft::eval::score(*model, *tok, requests, options);
      double max_diff = 0, max_rel = 0;
      int64_t greedy = 0;
      for (size_t i = 0; i < requests.size(); ++i) {
        INFO(family << ", max_length " << max_length << ", request " << lines[i].dump());
        const double ll = want[i]["loglikelihood"];
        const double diff = std::abs(got[i].loglikelihood - ll);
        max_diff = std::max(max_diff, diff);
        max_rel = std::max(max_rel, diff / std::max(1.0, std::abs(ll)));
        // Both sides compute fp32 logits of the same weights with different code and batch widths. The model
        // tests' fp32 bound (4 roundings per step over depth + width: 4 * (2 layers * 80 tokens + 32) * 2^-24
        // ~ 5e-5 of max|logit|) bounds that difference; a log-softmax moves by at most twice the largest logit
        // change, so with logits of a few units each token's log-prob (about -7 nats here) may move by ~1e-4
        // of itself, and a sum of same-sign terms keeps that relative bound: 1e-4 * max(1, |ll|), the floor
        // for near-certain continuations. Measured: at most 1.3e-7 relative (2 ulps), the worst case is rare.
        CHECK(diff <= 1e-4 * std::max(1.0, std::abs(ll)));
        CHECK(got[i].num_tokens == want[i]["num_tokens"].get<int64_t>());
        if (want[i].contains("is_greedy")) {
          CHECK(got[i].is_greedy == want[i]["is_greedy"].get<bool>());
          greedy += want[i]["is_greedy"].get<bool>() ? 1 : 0;
        }
      }
      // The fixture's greedy request makes sure is_greedy is checked both ways.
      CHECK(greedy >= 1);
      // MFT_SHOW_DIFF=1 prints the agreement (measured: max |diff| <= 5e-5, relative <= 2e-7).
      if (std::getenv("MFT_SHOW_DIFF") != nullptr) {
        WARN(family << " max_length " << max_length << ": max |diff| " << max_diff << ", max |diff| / max(1, |ll|) "
                    << max_rel);
      }
    }
  }
}

TEST_CASE("choices that share a context continue from its decoding state in every family", "[loglikelihood]") {
  const auto tok = mft::make_byte_tokenizer();
  // Four questions with 2-4 choices of different lengths (1 to 13 tokens), one question repeated, and one
  // context long enough to need truncation (scored whole).
  std::vector<ScoreRequest> requests;
  const std::vector<std::pair<std::string, std::vector<std::string>>> questions = {
      {"Question: what is two plus two?\nAnswer:", {" four", " five", " twenty-two", " 4"}},
      {"The capital of France is", {" Paris", " a city on the Seine river"}},
      {"Q:", {" a", " b", " c"}},
      {"Question: what is two plus two?\nAnswer:", {" four", " 22"}},
      {"A context that is much longer than the sixty-four tokens of max_length here, so it is truncated",
       {" x", " yz"}},
      // Three questions after the same 27-token "few-shot" prefix: it runs once (share_prefixes).
      {"Examples: 1+1=2. 2+2=4. Q: 3+3=", {"6", "7"}},
      {"Examples: 1+1=2. 2+2=4. Q: 5+1=", {"6", "51"}},
      {"Examples: 1+1=2. 2+2=4. Q: 9+9=", {"18", "99"}}};
  for (const auto& [ctx, choices] : questions) {
    for (const auto& c : choices) requests.push_back(LoglikelihoodRequest{ctx, c});
  }
  for (const char* preset : {"preset:mamba-tiny", "preset:mamba2-tiny", "preset:pythia-tiny"}) {
    INFO(preset);
    auto model = mft::models::load_model(preset, 3);
    model->eval();
    mft::eval::ScoreOptions options;
    options.max_length = 64;
    options.batch_size = 4;
    options.share_contexts = false;
    const auto whole = mft::eval::score(*model, *tok, requests, options);
    options.share_contexts = true;
    options.share_prefixes = false;
    int64_t last_total = 0, tokens_one_context_at_a_time = 0, tokens_shared_prefixes = 0;
    options.forwarded_tokens = &tokens_one_context_at_a_time;
    const auto no_prefixes = mft::eval::score(*model, *tok, requests, options);
    options.share_prefixes = true;
    options.forwarded_tokens = &tokens_shared_prefixes;
    options.progress = [&](int64_t, int64_t total) { last_total = total; };
    const auto shared = mft::eval::score(*model, *tok, requests, options);
    CHECK(last_total == static_cast<int64_t>(requests.size()));  // one sequence per pair
    // The few-shot prefix ran once instead of three times.
    const auto prefix = static_cast<int64_t>(std::string("Examples: 1+1=2. 2+2=4. Q: ").size());  // bytes = tokens
    CHECK(tokens_one_context_at_a_time - tokens_shared_prefixes == 2 * prefix);
    REQUIRE(shared.size() == whole.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      INFO("request " << i);
      CHECK(std::abs(no_prefixes[i].loglikelihood - whole[i].loglikelihood) <=
            1e-5 * std::max(1.0, std::abs(whole[i].loglikelihood)));
      // The chunked scan / cached attention rounds differently from the one-pass forward; nothing else.
      CHECK(std::abs(shared[i].loglikelihood - whole[i].loglikelihood) <=
            1e-5 * std::max(1.0, std::abs(whole[i].loglikelihood)));
      CHECK(shared[i].is_greedy == whole[i].is_greedy);
      CHECK(shared[i].num_tokens == whole[i].num_tokens);
    }
  }
}

TEST_CASE("single-choice contexts that share a prefix run it once in every family", "[loglikelihood]") {
  const auto tok = mft::make_byte_tokenizer();
  // Winogrande-like: two documents, each with two contexts that differ only after 40 shared bytes and one
  // continuation each; plus a context that shares nothing (scored whole).
  const std::string examples = "Example: the cup is on the table. Q: ";  // 37 bytes
  std::vector<ScoreRequest> requests = {LoglikelihoodRequest{examples + "Ann or Bob? Ann", " went home."},
                                        LoglikelihoodRequest{examples + "Ann or Bob? Bob", " went home."},
                                        LoglikelihoodRequest{examples + "red or blue? red", " is warm."},
                                        LoglikelihoodRequest{examples + "red or blue? blue", " is warm."},
                                        LoglikelihoodRequest{"Nothing shared here", " at all."}};
  for (const char* preset : {"preset:mamba-tiny", "preset:mamba2-tiny"}) {
    INFO(preset);
    auto model = mft::models::load_model(preset, 3);
    model->eval();
    mft::eval::ScoreOptions options;
    options.max_length = 64;
    options.batch_size = 1;  // no padding: token counts compare exactly
    options.share_contexts = false;
    int64_t whole_tokens = 0, shared_tokens = 0;
    options.forwarded_tokens = &whole_tokens;
    const auto whole = mft::eval::score(*model, *tok, requests, options);
    options.share_contexts = true;
    options.forwarded_tokens = &shared_tokens;
    const auto shared = mft::eval::score(*model, *tok, requests, options);
    // Each document's second context continues from the first one's state after their common prefix
    // (examples + "Ann or Bob? ": 49 bytes; examples + "red or blue? ": 50); everything else runs as before.
    CHECK(whole_tokens - shared_tokens == 49 + 50);
    for (size_t i = 0; i < requests.size(); ++i) {
      INFO("request " << i);
      CHECK(std::abs(shared[i].loglikelihood - whole[i].loglikelihood) <=
            1e-5 * std::max(1.0, std::abs(whole[i].loglikelihood)));
      CHECK(shared[i].is_greedy == whole[i].is_greedy);
    }
  }
}
