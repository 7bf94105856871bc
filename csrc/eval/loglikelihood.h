#pragma once
// Loglikelihood scoring exactly as lm-evaluation-harness's HF backend (HFLM) does it, so that numbers from
// mamba-ft can be compared with published lm-eval results:
//  - pairs (`loglikelihood`): log P(continuation | context) summed over the continuation's tokens, and
//    whether greedy decoding would have produced every one of them;
//  - rolling (`loglikelihood_rolling`): log P(text) (perplexity tasks), the text's tokens cut into windows of
//    max_length predictions: the first conditioned on the prefix token (BOS/EOS), each later one on the token
//    before it, and the last, shorter one on as many earlier tokens as fill max_length.
// The tokenisation rules (where trailing context whitespace goes, what an empty context becomes), the
// left truncation and the position of the scored logits follow lm_eval/api/model.py (`_encode_pair`,
// `loglikelihood`), lm_eval/models/huggingface.py (`_loglikelihood_tokens`, `loglikelihood_rolling`) and
// lm_eval/utils.py (`get_rolling_token_windows`, `make_disjoint_window`).
#include "models/causal_lm.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mft::eval {

// lm-eval's HFLM default when neither the model config nor the tokenizer names a length (Mamba and Mamba-2
// configs name none; GPT-NeoX's max_position_embeddings is 2048 for Pythia).
constexpr int64_t kDefaultMaxLength = 2048;

// Tokens a tree-packed row aims at (eval/tree_scoring.h): wide matrix products run nearer the machine's
// peak (pythia-160m geometry, 2 cores: 512 -> 1024 tokens per row took ~3 % off an lm-eval task mix; 1536
// and 2048 gained nothing more). A group of pairs longer than this gets a row of its own.
constexpr int64_t kTreeRowTokens = 1024;

struct LoglikelihoodRequest {
  std::string context, continuation;
};
struct LoglikelihoodResult {
  double loglikelihood = 0;  // sum over the continuation's tokens of log P(token | everything before it)
  bool is_greedy = false;    // the argmax at every continuation position is the continuation's token
  int64_t num_tokens = 0;    // tokens of the continuation (after lm-eval's re-tokenisation)
};

struct RollingRequest {
  std::string text;
};
struct RollingResult {
  double loglikelihood = 0;  // log P(text) over all its tokens (0 for a text without tokens)
  int64_t num_tokens = 0;
};

// Either kind, as a requests file mixes them; for rolling requests is_greedy is that of every window.
using ScoreRequest = std::variant<LoglikelihoodRequest, RollingRequest>;
struct ScoreResult {
  double loglikelihood = 0;
  bool is_greedy = false;
  int64_t num_tokens = 0;
};

struct ScoreOptions {
  // Sequences per forward pass (lm-eval's --batch_size; it defaults to 1). Results do not depend on it
  // beyond rounding: causal models ignore right padding.
  int64_t batch_size = 1;
  // Longest model input: longer inputs keep their last max_length tokens (lm-eval's max_length).
  int64_t max_length = kDefaultMaxLength;
  // The token an empty context and the first rolling window condition on; default BOS, else EOS (HFLM's
  // prefix_token_id; lm-eval's --model_args prefix_token_id=N overrides it the same way).
  std::optional<int64_t> prefix_token_id;
  // Pairs with the same context tokens (a question's choices) run the context once and continue from its
  // decoding state (Mamba: conv + SSM states; GPT-NeoX: keys and values), when no left truncation applies.
  // Off: every pair is scored whole, as lm-eval does (the same numbers up to rounding).
  bool share_contexts = true;
  // With share_contexts: consecutive shared contexts (in token order) that begin with the same tokens (an
  // MMLU subject's few-shot examples) run that prefix once; the next context continues from its state.
  bool share_prefixes = true;
  // With share_contexts, for attention models (GPT-NeoX): tokens per tree-packed row (eval/tree_scoring.h);
  // such models score every pair that needs no left truncation that way (batch_size does not apply).
  int64_t tree_row_tokens = kTreeRowTokens;
  // When set, incremented by the number of input tokens the model ran (tests and benchmarks).
  int64_t* forwarded_tokens = nullptr;
  // Called after each forward pass with (sequences scored, sequences in all): one sequence per pair, one
  // per rolling window, identical model inputs counted once.
  std::function<void(int64_t done, int64_t total)> progress;
  // How errors name request i (default "request i", 0-based); the CLI names file lines instead.
  std::function<std::string(size_t)> describe_request;
  // A NaN or infinite loglikelihood is an error naming the request, unless this is set (then it is
  // reported as it is, null in JSON).
  bool allow_nonfinite = false;
};

// Token-level pieces, public for tests and for callers that tokenise themselves.
struct TokenPair {
  std::vector<int64_t> context, continuation;
};
struct TokenScore {
  double loglikelihood = 0;
  bool is_greedy = false;
};
// One window of get_rolling_token_windows: the model input and the tokens predicted from its last
// predicted.size() positions (the two overlap: predicted[i] follows input[input.size() - predicted.size() + i]).
struct RollingWindow {
  std::vector<int64_t> input, predicted;
};

// options.prefix_token_id, else the tokenizer's BOS, else its EOS; an error when there is none of them.
int64_t prefix_token(const Tokenizer& tokenizer, const ScoreOptions& options);

// lm-eval's _encode_pair (plus loglikelihood's empty-context rule): the context's trailing whitespace (Python
// str.isspace) moves to the front of the continuation; then context = enc(context) and continuation =
// enc(context + continuation)[len(context):]. An empty context becomes [prefix_token], unless the
// continuation's first token is the prefix token, which then serves as the context. Invalid UTF-8 is an error.
TokenPair encode_pair(const Tokenizer& tokenizer, const std::string& context, const std::string& continuation,
                      int64_t prefix_token);

// get_rolling_token_windows(tokens, prefix_token, max_seq_len, context_len): the first window predicts the
// first min(max_seq_len, n) tokens from [prefix_token] + tokens; each later one predicts the next
// max_seq_len - context_len + 1 tokens (fewer at the end) from the max_seq_len tokens ending just before its
// last. Every token is predicted exactly once; no tokens, no windows. Needs 1 <= context_len <= max_seq_len.
std::vector<RollingWindow> rolling_token_windows(const std::vector<int64_t>& tokens, int64_t prefix_token,
                                                 int64_t max_seq_len, int64_t context_len);

// make_disjoint_window: the input without the tokens it shares with the predicted ones (all but the first
// prediction's own conditioning token), so that context + continuation is the window's whole text.
TokenPair make_disjoint_window(const RollingWindow& window);

// _loglikelihood_tokens: for each pair, input = (context + continuation)[-(max_length + 1):][:-1], and the
// continuation is scored at the input's last len(continuation) positions with log_softmax over the model's
// whole output layer (fp32; the sum accumulated in fp64). Pairs are sorted longest first and batched with
// right padding; pairs with the same input share one forward pass (lm-eval's one-token-continuation cache
// generalised); results come back in input order. Errors (empty context or continuation, a continuation
// longer than max_length, ids outside the model's vocabulary) name the pair.
std::vector<TokenScore> score_tokens(models::CausalLM& model, const std::vector<TokenPair>& pairs,
                                     const ScoreOptions& options = {});

// Both kinds in one list (one sorted batching over all of them), results in input order.
std::vector<ScoreResult> score(models::CausalLM& model, const Tokenizer& tokenizer,
                               const std::vector<ScoreRequest>& requests, const ScoreOptions& options = {});

std::vector<LoglikelihoodResult> loglikelihood(models::CausalLM& model, const Tokenizer& tokenizer,
                                               const std::vector<LoglikelihoodRequest>& requests,
                                               const ScoreOptions& options = {});

std::vector<RollingResult> loglikelihood_rolling(models::CausalLM& model, const Tokenizer& tokenizer,
                                                 const std::vector<RollingRequest>& requests,
                                                 const ScoreOptions& options = {});

}  // namespace mft::eval
