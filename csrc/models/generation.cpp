#include "models/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace mft::models {

int64_t choose_token(const at::Tensor& logits, const GenerationOptions& o, at::Generator& gen) {
  if (o.temperature <= 0.0) return logits.argmax().item<int64_t>();
  at::Tensor scores = logits.to(at::kFloat) / o.temperature;
  if (o.top_k > 0 && o.top_k < scores.size(0)) {
    const at::Tensor kth = std::get<0>(scores.topk(o.top_k)).select(0, o.top_k - 1);
    scores = scores.masked_fill(scores < kth, -INFINITY);
  }
  if (o.top_p < 1.0) {
    auto [sorted, order] = scores.sort(/*dim=*/0, /*descending=*/true);
    const at::Tensor cum = sorted.softmax(0).cumsum(0);
    // Drop a token when the tokens before it already reach top_p (the first always stays).
    const at::Tensor drop = (cum - sorted.softmax(0)) >= o.top_p;
    scores = scores.index_put({order.masked_select(drop)}, at::scalar_tensor(-INFINITY));
  }
  return at::multinomial(scores.softmax(0).to(at::kDouble), 1, false, gen).item<int64_t>();
}

std::vector<int64_t> generate(CausalLM& model, const std::vector<int64_t>& prompt, const GenerationOptions& o,
                              const std::function<bool(int64_t)>& on_token) {
  TORCH_CHECK(!prompt.empty(), "generate: the prompt must have at least one token");
  TORCH_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0; got ", o.max_new_tokens);
  TORCH_CHECK(o.temperature >= 0.0, "generate: temperature must be >= 0; got ", o.temperature);
  TORCH_CHECK(o.top_p > 0.0 && o.top_p <= 1.0, "generate: top_p must be in (0, 1]; got ", o.top_p);
  TORCH_CHECK(o.top_k >= 0, "generate: top_k must be >= 0; got ", o.top_k);
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const auto device = model.parameters().front().device();
  auto cache = model.new_cache(1);
  const at::Tensor ids = at::tensor(prompt, at::kLong).view({1, -1}).to(device);
  at::Tensor logits = model.forward_cached(ids, *cache, /*last_logits=*/1).select(1, -1).squeeze(0);  // (vocab,)
  std::vector<int64_t> out;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const at::Tensor step_logits = logits.cpu();
    // NaN or Inf logits would choose an arbitrary token (argmax of NaN) or fail deep in sampling.
    TORCH_CHECK(at::isfinite(step_logits).all().item<bool>(),
                "generate: the model's logits hold NaN or Inf at new token ", i + 1,
                " (check its weights and config.json)");
    const int64_t next = choose_token(step_logits, o, gen);
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (o.eos_token_id && next == *o.eos_token_id) break;
    if (i + 1 == o.max_new_tokens) break;
    logits = model.forward_cached(at::full({1, 1}, next, ids.options()), *cache).view({-1});
  }
  return out;
}

}  // namespace mft::models
