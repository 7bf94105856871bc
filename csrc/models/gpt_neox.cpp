#include "models/gpt_neox.h"

#include "core/json_parse.h"
#include "models/checkpoint.h"
#include "models/config_json.h"
#include "models/load_weights.h"
#include "models/lora_adapter.h"
#include "models/tied_embeddings.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <regex>
#include <set>
#include <tuple>

namespace mft::models {
namespace nn = torch::nn;

GPTNeoXConfig GPTNeoXConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "gpt_neox"), path);
}

GPTNeoXConfig GPTNeoXConfig::from_json(const nlohmann::json& json, const std::string& path) {
  const ConfigJson j(json, path, "gpt_neox");
  if (j.has("model_type")) {
    j.require(json["model_type"] == "gpt_neox",
              "model_type is " + json_excerpt(json["model_type"]) + "; expected \"gpt_neox\"");
  }
  GPTNeoXConfig c;
  j.get_positive_int("vocab_size", c.vocab_size);
  j.get_positive_int("hidden_size", c.hidden_size);
  j.get_positive_int("num_hidden_layers", c.num_hidden_layers);
  j.get_positive_int("num_attention_heads", c.num_attention_heads);
  j.get_positive_int("intermediate_size", c.intermediate_size);
  // Older files: rotary_pct / rotary_emb_base; newer transformers: rope_parameters. Every spelling given
  // must be in range and agree with the others (an edited one must not be silently overridden).
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& rope =
      j.has("rope_parameters") && j.json()["rope_parameters"].is_object() ? j.json()["rope_parameters"] : none;
  auto one_value = [&](double& field, std::initializer_list<std::pair<const nlohmann::json*, const char*>> spellings,
                       double lo, double hi, bool lo_open) {
    std::string first;
    for (const auto& [obj, key] : spellings) {
      double v = 0;
      if (!j.get_number_between(*obj, key, v, lo, hi, lo_open)) continue;
      const std::string name = obj == &rope ? std::string("rope_parameters.") + key : key;
      j.require(first.empty() || v == field, "\"" + name + "\" = " + json_excerpt((*obj)[key]) + " disagrees with \"" +
                                                 first + "\" = " + std::to_string(field));
      if (first.empty()) first = name;
      field = v;
    }
  };
  const nlohmann::json& top = j.json();
  one_value(c.rotary_pct, {{&top, "rotary_pct"}, {&top, "partial_rotary_factor"}, {&rope, "partial_rotary_factor"}}, 0,
            1, /*lo_open=*/false);
  one_value(c.rotary_emb_base, {{&top, "rotary_emb_base"}, {&top, "rope_theta"}, {&rope, "rope_theta"}}, 0, 1e12,
            /*lo_open=*/true);
  j.get_number_between("layer_norm_eps", c.layer_norm_eps, 0, 1, /*lo_open=*/true);
  j.get_bool("use_parallel_residual", c.use_parallel_residual);
  j.get_bool("attention_bias", c.attention_bias);
  j.get_bool("tie_word_embeddings", c.tie_word_embeddings);
  if (j.has("hidden_act")) {
    j.require(j.json()["hidden_act"] == "gelu",
              "hidden_act " + json_excerpt(j.json()["hidden_act"]) + " is not supported (\"gelu\" only)");
  }
  j.require(c.hidden_size % c.num_attention_heads == 0, "hidden_size " + std::to_string(c.hidden_size) +
                                                            " must be divisible by num_attention_heads " +
                                                            std::to_string(c.num_attention_heads));
  j.require(c.rotary_pct >= 0 && c.rotary_pct <= 1 && c.rotary_ndims() % 2 == 0,
            "rotary_pct " + std::to_string(c.rotary_pct) + " must give an even number of rotary dims (got " +
                std::to_string(c.rotary_ndims()) + ")");
  for (auto [key, field] : {std::pair{"bos_token_id", &c.bos_token_id}, {"eos_token_id", &c.eos_token_id}}) {
    if (j.has(key) && j.json()[key].is_number_integer()) *field = j.json()[key].get<int64_t>();
  }
  j.get_positive_int("max_position_embeddings", c.max_position_embeddings);
  return c;
}

ModelFootprint GPTNeoXConfig::footprint() const {
  const int64_t H = hidden_size, I = intermediate_size;
  const int64_t layer =
      4 * H + H * 3 * H + (attention_bias ? 3 * H : 0) + H * H + (attention_bias ? H : 0) + H * I + I + I * H + H;
  ModelFootprint f;
  f.family = "gpt_neox";
  f.layers = num_hidden_layers;
  f.vocab = vocab_size;
  f.parameters = num_hidden_layers * layer + vocab_size * H + 2 * H + (tie_word_embeddings ? 0 : vocab_size * H);
  // bench-train at pythia-160m, fp32, seq 256 -> 1024: +0.2 MiB per token besides the logits, over 12
  // layers with H = 768: 5.6 H fp32 values per token and layer.
  f.train_bytes_per_token_layer = 5.6 * double(H) * 4;
  f.cache_bytes_per_token_layer = 2.0 * double(H) * 4;  // keys and values
  f.lora_features = double(num_hidden_layers * (8 * H + 2 * I) + vocab_size + H);
  return f;
}

std::string GPTNeoXConfig::to_hf_json() const {
  nlohmann::json j;
  j["architectures"] = {"GPTNeoXForCausalLM"};
  j["model_type"] = "gpt_neox";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = "gelu";
  j["rotary_pct"] = rotary_pct;
  j["rotary_emb_base"] = rotary_emb_base;
  j["rope_parameters"] = {
      {"rope_type", "default"}, {"rope_theta", rotary_emb_base}, {"partial_rotary_factor", rotary_pct}};
  j["layer_norm_eps"] = layer_norm_eps;
  j["use_parallel_residual"] = use_parallel_residual;
  j["attention_bias"] = attention_bias;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["max_position_embeddings"] = max_position_embeddings;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["dtype"] = "float32";
  return j.dump(2) + "\n";
}

GPTNeoXLayerImpl::GPTNeoXLayerImpl(const GPTNeoXConfig& c)
    : heads(c.num_attention_heads),
      head_size(c.head_size()),
      rotary_ndims(c.rotary_ndims()),
      parallel(c.use_parallel_residual) {
  const auto ln = [&] { return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)); };
  input_layernorm = register_module("input_layernorm", ln());
  post_attention_layernorm = register_module("post_attention_layernorm", ln());
  query_key_value = register_module(
      "query_key_value", nn::Linear(nn::LinearOptions(c.hidden_size, 3 * c.hidden_size).bias(c.attention_bias)));
  dense = register_module("dense", nn::Linear(nn::LinearOptions(c.hidden_size, c.hidden_size).bias(c.attention_bias)));
  dense_h_to_4h = register_module("dense_h_to_4h", nn::Linear(c.hidden_size, c.intermediate_size));
  dense_4h_to_h = register_module("dense_4h_to_h", nn::Linear(c.intermediate_size, c.hidden_size));
}

namespace {
// x' = x cos + rotate_half(x) sin on the first `rot` dims; x: (B, H, L, hd), cos/sin: (L, rot).
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t rot) {
  if (rot == 0) return x;
  const at::Tensor xr = x.narrow(-1, 0, rot), pass = x.narrow(-1, rot, x.size(-1) - rot);
  const at::Tensor rotated = at::cat({-xr.narrow(-1, rot / 2, rot / 2), xr.narrow(-1, 0, rot / 2)}, -1);
  return at::cat({xr * cos + rotated * sin, pass}, -1);
}
}  // namespace

namespace {
// Attention of a segmented tree row (TreeAttention): q, k, v (1, H, T, hd) of the row; the cache holds `past`
// keys and values that every row token sees.
at::Tensor segmented_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const KVLayer* kv,
                               int64_t past, const TreeAttention& tree) {
  std::vector<at::Tensor> outs, lses;
  for (const auto& [begin, end] : tree.segments) {
    const int64_t n = end - begin;
    auto [o, lse] = at::_scaled_dot_product_flash_attention_for_cpu(
        q.narrow(2, begin, n), k.narrow(2, begin, n), v.narrow(2, begin, n), 0.0, false,
        tree.row_mask.narrow(0, begin, n).narrow(1, begin, n));
    outs.push_back(std::move(o));
    lses.push_back(std::move(lse));
  }
  const at::Tensor o_row = outs.size() == 1 ? outs[0] : at::cat(outs, 2);  // (1, H, T, hd)
  if (past == 0) return o_row;
  const at::Tensor lse_row = lses.size() == 1 ? lses[0] : at::cat(lses, 2);  // (1, H, T) fp32
  auto [o_cache, lse_cache] =
      at::_scaled_dot_product_flash_attention_for_cpu(q, kv->k.narrow(2, 0, past), kv->v.narrow(2, 0, past));
  // softmax over [cache | row] = each part's softmax weighted by its share of the total exp-sum.
  // (In fp32, or fp64 for an fp64 model: bf16/fp16 outputs are widened first.)
  const at::ScalarType acc = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor lse = at::logaddexp(lse_cache, lse_row);
  const at::Tensor merged =
      o_cache.to(acc) * (lse_cache - lse).exp().unsqueeze(-1) + o_row.to(acc) * (lse_row - lse).exp().unsqueeze(-1);
  return merged.to(q.scalar_type());
}

// Appends this chunk's keys and values (B, H, L, hd) after the `past` ones of `kv` (grown by doubling: amortised
// O(1) per token) and returns all of them.
std::pair<at::Tensor, at::Tensor> append_kv(KVLayer& kv, const at::Tensor& k, const at::Tensor& v, int64_t past) {
  const int64_t B = k.size(0), heads = k.size(1), L = k.size(2), head_size = k.size(3), total = past + L;
  if (!kv.k.defined() || kv.k.size(2) < total) {
    const int64_t cap = std::max<int64_t>(total, kv.k.defined() ? 2 * kv.k.size(2) : 64);
    at::Tensor nk = at::empty({B, heads, cap, head_size}, k.options()), nv = at::empty_like(nk);
    if (past > 0) {
      nk.narrow(2, 0, past).copy_(kv.k.narrow(2, 0, past));
      nv.narrow(2, 0, past).copy_(kv.v.narrow(2, 0, past));
    }
    kv.k = nk;
    kv.v = nv;
  }
  kv.k.narrow(2, past, L).copy_(k);
  kv.v.narrow(2, past, L).copy_(v);
  return {kv.k.narrow(2, 0, total), kv.v.narrow(2, 0, total)};
}
}  // namespace

at::Tensor GPTNeoXLayerImpl::attention(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, KVLayer* kv,
                                       int64_t past, const at::Tensor& mask, const TreeAttention* tree,
                                       const at::Tensor& keep) {
  const int64_t B = x.size(0), L = x.size(1);
  // Fused projection interleaved per head: (B, L, H, [q | k | v] x head_size).
  const at::Tensor qkv =
      adapted_linear(*query_key_value, x).view({B, L, heads, 3 * head_size}).transpose(1, 2);  // (B, H, L, 3hd)
  const at::Tensor q = apply_rotary(qkv.narrow(-1, 0, head_size), cos, sin, rotary_ndims);
  at::Tensor k = apply_rotary(qkv.narrow(-1, head_size, head_size), cos, sin, rotary_ndims);
  at::Tensor v = qkv.narrow(-1, 2 * head_size, head_size);
  at::Tensor o;  // (B, H, L or N, hd)
  if (keep.defined()) {
    // Only the queries at positions past + keep[i] (N of them); every key and value is still needed.
    at::Tensor visible;  // (N, past + L) or (B, 1, N, past + L): bool, or additive for a tree row
    if (tree != nullptr) {
      if (past > 0) {
        k = at::cat({kv->k.narrow(2, 0, past), k}, 2);
        v = at::cat({kv->v.narrow(2, 0, past), v}, 2);
      }
      const at::Tensor rows = tree->row_mask.index_select(0, keep);  // (N, L)
      visible = at::cat({at::zeros({rows.size(0), past}, rows.options()), rows}, 1);
    } else {
      if (kv != nullptr) std::tie(k, v) = append_kv(*kv, k, v, past);
      if (mask.defined()) {
        visible = mask.index_select(-2, keep);
      } else {  // causal: position past + keep[i] sees keys 0 .. past + keep[i]
        const at::Tensor cols = at::arange(past + L, keep.options()).unsqueeze(0);
        visible = cols.le((keep + past).unsqueeze(1));
      }
    }
    o = at::scaled_dot_product_attention(q.index_select(2, keep), k, v, visible);
  } else if (tree != nullptr) {
    o = segmented_attention(q, k, v, kv, past, *tree);
  } else {
    if (kv != nullptr) std::tie(k, v) = append_kv(*kv, k, v, past);
    if (mask.defined()) {
      o = at::scaled_dot_product_attention(q, k, v, mask);
    } else if (past == 0) {
      o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    } else if (L == 1) {
      o = at::scaled_dot_product_attention(q, k, v);  // the new token sees everything before it
    } else {
      // Query i (position past + i) sees keys 0 .. past + i.
      const at::Tensor rows = at::arange(past, past + L, x.options().dtype(at::kLong)).unsqueeze(1);
      const at::Tensor cols = at::arange(past + L, x.options().dtype(at::kLong)).unsqueeze(0);
      o = at::scaled_dot_product_attention(q, k, v, cols.le(rows));
    }
  }
  return adapted_linear(*dense, o.transpose(1, 2).reshape({B, o.size(2), heads * head_size}));
}

at::Tensor GPTNeoXLayerImpl::mlp(const at::Tensor& x) {
  return adapted_linear(*dense_4h_to_h, at::gelu(adapted_linear(*dense_h_to_4h, x)));  // exact erf GELU, as HF "gelu"
}

at::Tensor GPTNeoXLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, KVLayer* kv,
                                     int64_t past, const at::Tensor& mask, const TreeAttention* tree,
                                     const at::Tensor& keep) {
  const at::Tensor attn = attention(input_layernorm(x), cos, sin, kv, past, mask, tree, keep);
  const at::Tensor x_kept = keep.defined() ? x.index_select(1, keep) : x;
  if (parallel) return x_kept + attn + mlp(post_attention_layernorm(x_kept));
  const at::Tensor h = x_kept + attn;
  return h + mlp(post_attention_layernorm(h));
}

GPTNeoXForCausalLMImpl::GPTNeoXForCausalLMImpl(const GPTNeoXConfig& c) : config(c) {
  embed_in = register_module("embed_in", nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(GPTNeoXLayer(c));
  final_layer_norm =
      register_module("final_layer_norm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  if (!c.tie_word_embeddings) {
    embed_out = register_module("embed_out", nn::Linear(nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  }
}

at::Tensor GPTNeoXForCausalLMImpl::forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& seq_idx) {
  return run(input_ids, nullptr, seq_idx);
}

at::Tensor GPTNeoXForCausalLMImpl::forward_cached(const at::Tensor& input_ids, DecodeCache& base, int64_t last_logits) {
  auto* cache = dynamic_cast<GPTNeoXCache*>(&base);
  TORCH_CHECK(cache && cache->batch == input_ids.size(0) && cache->layers.size() == layers->size(),
              "gpt_neox: the cache was not made by this model for batch ", input_ids.size(0));
  return run(input_ids, cache, std::nullopt, last_logits);
}

std::unique_ptr<DecodeCache> GPTNeoXCache::repeat(int64_t n) const {
  auto c = std::make_unique<GPTNeoXCache>();
  c->batch = n;
  c->length = length;
  for (const auto& l : layers)
    c->layers.push_back({repeat_cache_rows(*this, l.k, n), repeat_cache_rows(*this, l.v, n)});
  return c;
}

void GPTNeoXCache::truncate(int64_t n) {
  TORCH_CHECK(n >= 0 && n <= length, "gpt_neox: cannot truncate a cache of ", length, " tokens to ", n);
  length = n;  // the keys and values after n are spare capacity from now on
}

std::unique_ptr<DecodeCache> GPTNeoXForCausalLMImpl::new_cache(int64_t batch) {
  auto cache = std::make_unique<GPTNeoXCache>();
  cache->batch = batch;
  cache->layers.resize(layers->size());
  return cache;
}

at::Tensor GPTNeoXForCausalLMImpl::run(const at::Tensor& input_ids, GPTNeoXCache* cache,
                                       const std::optional<at::Tensor>& seq_idx, int64_t last_logits) {
  check_input_ids(input_ids, config.vocab_size, "gpt_neox");
  check_seq_idx(seq_idx, input_ids, "gpt_neox");
  const int64_t B = input_ids.size(0), L = input_ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  // Positions past..past+L-1, or, for packed documents, counted from each document's start, with attention
  // kept inside the document.
  const auto f32 = embed_in->weight.options().dtype(at::kFloat);
  at::Tensor positions = at::arange(past, past + L, f32);  // (L,)
  at::Tensor mask;
  if (seq_idx) {
    const at::Tensor t = at::arange(L, f32.dtype(at::kLong)).expand({B, L});
    const at::Tensor starts = at::cat({at::ones({B, 1}, seq_idx->options().dtype(at::kBool)),
                                       seq_idx->narrow(1, 1, L - 1).ne(seq_idx->narrow(1, 0, L - 1))},
                                      1);                                            // (B, L)
    const at::Tensor doc_start = std::get<0>((t * starts.to(at::kLong)).cummax(1));  // (B, L)
    positions = (t - doc_start).to(at::kFloat).unsqueeze(1);                         // (B, 1, L)
    const at::Tensor same = seq_idx->unsqueeze(2).eq(seq_idx->unsqueeze(1));         // (B, L, L)
    mask = same.logical_and(at::ones({L, L}, same.options()).tril()).unsqueeze(1);   // (B, 1, L, L)
  }
  at::Tensor head;
  const at::Tensor keep = last_logits > 0 && last_logits < L
                              ? at::arange(L - last_logits, L, input_ids.options().dtype(at::kLong))
                              : at::Tensor();
  at::Tensor h = trunk(input_ids, positions, cache, past, mask, &head, nullptr, keep);  // (B, L or last_logits, D)
  if (cache) cache->length += L;
  h = final_layer_norm(h);
  return logits_out(at::linear(h, head));  // head (V, D)
}

namespace {
// One extra attention call costs about as much as this many (query, key) pairs (measured here: ~0.09 ms per
// flash-attention call on a 2-core CPU, ~20 ns per pair at head size 64, 12 heads).
constexpr int64_t kAttentionCallPairs = 4096;
}  // namespace

std::optional<TreeAttention> split_tree_row(const at::Tensor& visible, int64_t past, at::ScalarType dtype) {
  const at::Tensor vis = visible.to(at::kCPU).contiguous();
  const int64_t T = vis.size(0), W = vis.size(1);
  const bool* v = vis.data_ptr<bool>();
  std::vector<int64_t> first(static_cast<size_t>(T)), last(static_cast<size_t>(T));  // row tokens each one sees
  for (int64_t i = 0; i < T; ++i) {
    const bool* row = v + i * W;
    if (!std::all_of(row, row + past, [](bool b) { return b; })) return std::nullopt;
    int64_t a = 0, b = T - 1;
    while (a < T && !row[past + a]) ++a;
    while (b >= 0 && !row[past + b]) --b;
    if (a == T) return std::nullopt;  // sees only the cache: leave such rows to the dense mask
    first[static_cast<size_t>(i)] = a;
    last[static_cast<size_t>(i)] = b;
  }
  // A segment starts at s when no token from s on sees a row token before s.
  TreeAttention tree;
  int64_t lowest = T, end = T;
  for (int64_t s = T - 1; s >= 0; --s) {
    lowest = std::min(lowest, first[static_cast<size_t>(s)]);
    if (lowest == s) {
      tree.segments.emplace_back(s, end);
      end = s;
    }
  }
  std::reverse(tree.segments.begin(), tree.segments.end());
  int64_t kept = 0;
  for (const auto& [begin, stop] : tree.segments) {
    for (int64_t i = begin; i < stop; ++i) {
      if (last[static_cast<size_t>(i)] >= stop) return std::nullopt;  // sees a later segment
    }
    kept += (stop - begin) * (stop - begin);
  }
  const auto calls = static_cast<int64_t>(tree.segments.size()) + 1;
  if (tree.segments.size() < 2 || T * T - kept <= kAttentionCallPairs * calls) return std::nullopt;
  tree.row_mask = at::zeros({T, T}, vis.options().dtype(dtype))
                      .masked_fill_(vis.narrow(1, past, T).logical_not(), -std::numeric_limits<double>::infinity());
  return tree;
}

at::Tensor GPTNeoXForCausalLMImpl::forward_tree(const at::Tensor& input_ids, const at::Tensor& positions,
                                                const at::Tensor& visible, DecodeCache* base,
                                                const at::Tensor& logit_rows) {
  check_input_ids(input_ids, config.vocab_size, "gpt_neox");
  auto* cache = base ? dynamic_cast<GPTNeoXCache*>(base) : nullptr;
  TORCH_CHECK(base == nullptr || (cache && cache->batch == 1 && cache->layers.size() == layers->size()),
              "gpt_neox: forward_tree needs a batch-1 cache made by this model");
  const int64_t T = input_ids.size(1), past = cache ? cache->length : 0;
  TORCH_CHECK(input_ids.size(0) == 1, "gpt_neox: forward_tree takes one row (1, T); got ", input_ids.sizes());
  TORCH_CHECK(positions.dim() == 1 && positions.size(0) == T && positions.scalar_type() == at::kLong,
              "gpt_neox: forward_tree positions must be (", T, ") int64; got ", positions.sizes(), " ",
              positions.scalar_type());
  TORCH_CHECK(!visible.defined() || (visible.dim() == 2 && visible.size(0) == T && visible.size(1) == past + T &&
                                     visible.scalar_type() == at::kBool),
              "gpt_neox: forward_tree visible must be (", T, ", ", past + T, ") bool; got ", visible.sizes(), " ",
              visible.scalar_type());
  TORCH_CHECK(logit_rows.dim() == 1 && logit_rows.scalar_type() == at::kLong,
              "gpt_neox: forward_tree logit_rows must be (N) int64; got ", logit_rows.sizes());
  const auto f32 = embed_in->weight.options().dtype(at::kFloat);
  at::Tensor head;
  // Split attention runs on the CPU flash-attention kernel; elsewhere, and when it does not pay, one dense mask.
  std::optional<TreeAttention> tree;
  if (visible.defined() && input_ids.is_cpu()) tree = split_tree_row(visible, past, embed_in->weight.scalar_type());
  const at::Tensor mask =
      visible.defined() && !tree ? visible.unsqueeze(0).unsqueeze(0) : at::Tensor();  // (1, 1, T, past + T)
  // Only the scored tokens go through the last layer's attention output and MLP, the final norm and the
  // output layer.
  const at::Tensor h = trunk(input_ids, positions.to(f32), cache, past, mask, &head, tree ? &*tree : nullptr,
                             logit_rows.numel() > 0 ? logit_rows : at::Tensor());
  const at::Tensor picked = final_layer_norm(logit_rows.numel() > 0 ? h.select(0, 0) : h.select(0, 0).narrow(0, 0, 0));
  return logits_out(at::linear(picked, head));  // (N, V)
}

at::Tensor GPTNeoXForCausalLMImpl::trunk(const at::Tensor& input_ids, const at::Tensor& positions, GPTNeoXCache* cache,
                                         int64_t past, const at::Tensor& mask, at::Tensor* head,
                                         const TreeAttention* tree, const at::Tensor& keep) {
  const int64_t rot = config.rotary_ndims();
  // inv_freq[j] = base^(-2j / rot); angles duplicated to rot dims.
  const auto f32 = embed_in->weight.options().dtype(at::kFloat);
  const at::Tensor inv_freq =
      at::pow(config.rotary_emb_base, -at::arange(0, rot, 2, f32) / double(std::max<int64_t>(rot, 1)));
  const at::Tensor freqs = positions.unsqueeze(-1) * inv_freq;  // (L, rot/2) or (B, 1, L, rot/2)
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  TiedUse in = config.tie_word_embeddings ? tied_lookup(*embed_in, input_ids)
                                          : TiedUse{adapted_embedding(*embed_in, input_ids), embed_out->weight};
  at::Tensor h = in.embedded;
  const at::Tensor cos = emb.cos().to(h.scalar_type()), sin = emb.sin().to(h.scalar_type());
  for (size_t i = 0; i < layers->size(); ++i) {
    GPTNeoXLayerImpl* layer = layers[i]->as<GPTNeoXLayer>();
    // The last layer computes only the kept positions (keys and values still for all).
    const at::Tensor kept = i + 1 == layers->size() ? keep : at::Tensor();
    if (cache) {
      h = layer->forward(h, cos, sin, &cache->layers[i], past, mask, tree, kept);
    } else {
      h = run_block([layer, cos, sin, mask, tree,
                     kept](const at::Tensor& x) { return layer->forward(x, cos, sin, nullptr, 0, mask, tree, kept); },
                    h);
    }
  }
  *head = in.head;
  return h;
}

std::map<std::string, std::shared_ptr<torch::nn::Module>> GPTNeoXForCausalLMImpl::hf_lora_modules() {
  std::map<std::string, std::shared_ptr<torch::nn::Module>> t;
  t["gpt_neox.embed_in"] = embed_in.ptr();
  for (size_t i = 0; i < layers->size(); ++i) {
    auto& l = *layers[i]->as<GPTNeoXLayer>();
    const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
    t[p + "attention.query_key_value"] = l.query_key_value.ptr();
    t[p + "attention.dense"] = l.dense.ptr();
    t[p + "mlp.dense_h_to_4h"] = l.dense_h_to_4h.ptr();
    t[p + "mlp.dense_4h_to_h"] = l.dense_4h_to_h.ptr();
  }
  return t;
}

void GPTNeoXForCausalLMImpl::untie_word_embeddings() {
  if (!config.tie_word_embeddings) return;
  embed_out = register_untied_head(*this, "embed_out", embed_in->weight);
  config.tie_word_embeddings = false;
}

std::map<std::string, at::Tensor> GPTNeoXForCausalLMImpl::hf_state_dict() {
  std::map<std::string, at::Tensor> table;
  table["gpt_neox.embed_in.weight"] = embed_in->weight;
  table["gpt_neox.final_layer_norm.weight"] = final_layer_norm->weight;
  table["gpt_neox.final_layer_norm.bias"] = final_layer_norm->bias;
  if (!config.tie_word_embeddings) table["embed_out.weight"] = embed_out->weight;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto& l = *layers[i]->as<GPTNeoXLayer>();
    const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
    for (const auto& [name, m] : {std::pair<std::string, nn::Module*>{"input_layernorm", l.input_layernorm.get()},
                                  {"post_attention_layernorm", l.post_attention_layernorm.get()},
                                  {"attention.query_key_value", l.query_key_value.get()},
                                  {"attention.dense", l.dense.get()},
                                  {"mlp.dense_h_to_4h", l.dense_h_to_4h.get()},
                                  {"mlp.dense_4h_to_h", l.dense_4h_to_h.get()}}) {
      for (const auto& param : m->named_parameters(/*recurse=*/false))
        table[p + name + "." + param.key()] = param.value();
    }
  }
  return table;
}

GPTNeoXForCausalLM load_gpt_neox(const std::string& dir) {
  namespace fs = std::filesystem;
  const GPTNeoXConfig config = GPTNeoXConfig::from_json_file((fs::path(dir) / "config.json").string());
  GPTNeoXForCausalLM model(config);
  const auto table = model->hf_state_dict();
  // Buffers older transformers saved (causal mask, masked_bias, rotary inv_freq) are not parameters
  // and may be uint8/bool: skipped whatever their dtype.
  static const std::regex buffer(R"(gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq))");
  // transformers 5 calls the output layer lm_head in memory; files use embed_out.
  static const RenameTable renames = {{"lm_head.", "embed_out."}};
  const auto tensors =
      read_checkpoint(dir, renames, [](const std::string& name) { return std::regex_match(name, buffer); });
  const std::set<std::string> tolerated =
      config.tie_word_embeddings ? std::set<std::string>{"embed_out.weight"} : std::set<std::string>{};
  load_weights("gpt_neox", dir, table, tensors, tolerated);
  return model;
}

}  // namespace mft::models
