// Models against HF transformers with random weights (tests/models/make_hf_model.py writes the HF
// folder and HF's logits at test time): same logits in fp32, clear errors for mismatched checkpoints.
#include "helpers.h"

#include "io/safetensors.h"
#include "models/checkpoint.h"
#include "models/config_json.h"
#include "models/generation.h"
#include "models/gpt_neox.h"
#include "models/mamba.h"
#include "models/mamba2.h"
#include "models/registry.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using mft::test::have_python;

namespace {

struct HfFixture {
  fs::path dir;
  explicit HfFixture(const std::string& config, const std::string& layout = "hf") {
    char tmpl[] = "/tmp/mft-hf-model-XXXXXX";
    dir = mkdtemp(tmpl);
    const std::string cmd = std::string(std::getenv("MFT_PYTHON")) + " " + MFT_TESTS_DIR + "/models/make_hf_model.py " +
                            dir.string() + " " + config + " " + layout;
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~HfFixture() { fs::remove_all(dir); }
};

// Runs `forward` on the golden ids and compares with HF's logits.
void check_logits(const HfFixture& hf, const std::function<at::Tensor(const at::Tensor&)>& forward, int64_t depth,
                  int64_t width) {
  const auto golden = mft::io::SafetensorsFile::open((hf.dir / "golden.safetensors").string());
  const at::Tensor ids = golden.tensor("ids").to(at::kLong);
  at::NoGradGuard no_grad;
  const at::Tensor logits = forward(ids);
  const at::Tensor ref = golden.tensor("logits");
  REQUIRE(logits.sizes() == ref.sizes());
  const double err = mft::test::normalised_error(logits, ref);
  INFO("max normalised error vs HF " << err);
  // Both compute in fp32: the op tests' fp32 bound over the sequence x layers and the hidden width.
  CHECK(err <= mft::test::fp32_bound(depth, width));
}
}  // namespace

TEST_CASE("Mamba-1 logits match HF transformers with random weights", "[models][mamba]") {
  if (!have_python()) return;
  for (const char* config : {"mamba-tied", "mamba-untied-odd"}) {
    INFO("config " << config);
    HfFixture hf(config);
    auto model = mft::models::load_mamba(hf.dir.string());
    check_logits(
        hf, [&](const at::Tensor& ids) { return model->forward(ids); }, 37 * 3, model->config.hidden_size);
  }
}

TEST_CASE("GPT-NeoX logits match HF transformers with random weights", "[models][gpt_neox]") {
  if (!have_python()) return;
  for (const char* config : {"neox-parallel", "neox-sequential-tied"}) {
    INFO("config " << config);
    HfFixture hf(config);
    auto model = mft::models::load_gpt_neox(hf.dir.string());
    check_logits(
        hf, [&](const at::Tensor& ids) { return model->forward(ids); }, 37 * 3, model->config.hidden_size);
  }
}

TEST_CASE("model loading refuses mismatched checkpoints and skips old buffers", "[models][mamba][gpt_neox]") {
  if (!have_python()) return;
  {
    HfFixture hf("mamba-tied");
    std::map<std::string, at::Tensor> copy;
    for (auto& [k, v] : mft::io::load_safetensors_checkpoint(hf.dir.string())) copy[k] = v.clone();
    copy.erase("backbone.layers.1.mixer.D");
    mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
    CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()), Contains("lacks tensor 'backbone.layers.1.mixer.D'"));
    copy["backbone.layers.1.mixer.D"] = at::zeros({5});
    mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
    CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()), Contains("config.json implies"));
    copy["backbone.layers.1.mixer.D"] = at::zeros({96});
    copy["backbone.layers.1.mixer.surprise"] = at::zeros({2});
    mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
    CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()), Contains("unexpected tensor"));
    // Config errors name the file and the key.
    std::ofstream((hf.dir / "config.json").string()) << R"({"model_type": "mamba", "state_size": "sixteen"})";
    CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()),
                      Contains("config.json: \"state_size\" must be an integer from 1 to 1024; got \"sixteen\""));
    std::ofstream((hf.dir / "config.json").string()) << R"({"model_type": "gpt_neox"})";
    CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()), Contains("expected \"mamba\""));
  }
  {
    HfFixture hf("neox-parallel");
    std::map<std::string, at::Tensor> copy;
    for (auto& [k, v] : mft::io::load_safetensors_checkpoint(hf.dir.string())) copy[k] = v.clone();
    // What old transformers versions saved next to the parameters.
    copy["gpt_neox.layers.0.attention.masked_bias"] = at::full({}, -1e9);
    copy["gpt_neox.layers.1.attention.rotary_emb.inv_freq"] = at::ones({2});
    mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
    CHECK_NOTHROW(mft::models::load_gpt_neox(hf.dir.string()));
    copy.erase("embed_out.weight");
    mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
    CHECK_THROWS_WITH(mft::models::load_gpt_neox(hf.dir.string()), Contains("lacks tensor 'embed_out.weight'"));
  }
}

namespace {
const char* const kAllConfigs[] = {"mamba-tied",        "mamba-untied-odd", "mamba2-tied",
                                   "mamba2-untied-odd", "neox-parallel",    "neox-sequential-tied"};

at::Tensor golden(const HfFixture& hf, const char* name) {
  return mft::io::SafetensorsFile::open((hf.dir / "golden.safetensors").string()).tensor(name);
}

int64_t hidden_of(mft::models::CausalLM& m) {
  return m.hf_state_dict().begin()->second.size(-1);
}
}  // namespace

TEST_CASE("Mamba-2 logits match HF transformers with random weights", "[models][mamba2]") {
  if (!have_python()) return;
  for (const char* config : {"mamba2-tied", "mamba2-untied-odd"}) {
    INFO("config " << config);
    HfFixture hf(config);
    auto model = mft::models::load_mamba2(hf.dir.string());
    check_logits(
        hf, [&](const at::Tensor& ids) { return model->forward(ids); }, 37 * 3, model->config.hidden_size);
  }
}

TEST_CASE("cached decoding reproduces the full forward; greedy generation equals HF's", "[models][decode_models]") {
  if (!have_python()) return;
  for (const char* config : kAllConfigs) {
    INFO("config " << config);
    HfFixture hf(config);
    auto model = mft::models::load_model(hf.dir.string());
    at::NoGradGuard no_grad;
    const at::Tensor ids = golden(hf, "ids").to(at::kLong);  // (2, 37)
    const at::Tensor full = model->forward(ids);
    // Prefill 20 tokens, a second prefill chunk of 5 (continuing from the cache), then one token at a time.
    auto cache = model->new_cache(2);
    std::vector<at::Tensor> parts{model->forward_cached(ids.narrow(1, 0, 20), *cache),
                                  model->forward_cached(ids.narrow(1, 20, 5), *cache)};
    for (int64_t t = 25; t < 37; ++t) parts.push_back(model->forward_cached(ids.narrow(1, t, 1), *cache));
    const double err = mft::test::normalised_error(at::cat(parts, 1), full);
    INFO("stepped vs full normalised error " << err);
    CHECK(err <= mft::test::fp32_bound(37 * 3, hidden_of(*model)));
    CHECK(cache->length == 37);
    // last_logits: a prefill that returns only its last positions' logits, the same values.
    auto short_cache = model->new_cache(2);
    const at::Tensor last3 = model->forward_cached(ids.narrow(1, 0, 25), *short_cache, /*last_logits=*/3);
    REQUIRE(last3.sizes() == at::IntArrayRef({2, 3, full.size(2)}));
    CHECK(mft::test::normalised_error(last3, full.narrow(1, 22, 3)) <=
          mft::test::fp32_bound(37 * 3, hidden_of(*model)));
    CHECK(short_cache->length == 25);
    // ... and a cache holding all 25 tokens: the next step continues as the full forward does.
    const at::Tensor next = model->forward_cached(ids.narrow(1, 25, 1), *short_cache);
    CHECK(mft::test::normalised_error(next, full.narrow(1, 25, 1)) <= mft::test::fp32_bound(37 * 3, hidden_of(*model)));

    const auto prompt = ids[0].narrow(0, 0, 10);
    const std::vector<int64_t> p(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + 10);
    mft::models::GenerationOptions opts;
    opts.max_new_tokens = 12;
    std::vector<int64_t> streamed;
    const auto ours = mft::models::generate(*model, p, opts, [&](int64_t id) {
      streamed.push_back(id);
      return true;
    });
    const at::Tensor theirs = golden(hf, "greedy").to(at::kLong).view({-1});
    CHECK(at::equal(at::tensor(ours, at::kLong), theirs));
    CHECK(streamed == ours);
  }
}

TEST_CASE("original state-spaces, pytorch_model.bin and sharded checkpoints load", "[models][layouts]") {
  if (!have_python()) return;
  for (const auto& [config, layout] : {std::pair{"mamba-tied", "original"},
                                       {"mamba-untied-odd", "original"},
                                       {"mamba2-tied", "sharded"},
                                       {"neox-parallel", "bin"},
                                       {"neox-sequential-tied", "sharded"}}) {
    INFO("config " << config << " layout " << layout);
    HfFixture hf(config, layout);
    auto model = mft::models::load_model(hf.dir.string());
    check_logits(
        hf, [&](const at::Tensor& ids) { return model->forward(ids); }, 37 * 3, hidden_of(*model));
  }
}

TEST_CASE("saved in HF layout, HF transformers loads the same model", "[models][save]") {
  if (!have_python()) return;
  for (const char* config : kAllConfigs) {
    INFO("config " << config);
    HfFixture hf(config);
    auto model = mft::models::load_model(hf.dir.string());
    const fs::path out = hf.dir / "saved";
    mft::models::save_hf_model(*model, out.string());
    const std::string cmd = std::string(std::getenv("MFT_PYTHON")) + " " + MFT_TESTS_DIR + "/models/hf_logits.py " +
                            out.string() + " " + (hf.dir / "golden.safetensors").string() + " " +
                            (hf.dir / "reloaded.safetensors").string();
    REQUIRE(std::system(cmd.c_str()) == 0);
    at::NoGradGuard no_grad;
    const at::Tensor ours = model->forward(golden(hf, "ids").to(at::kLong));
    const at::Tensor theirs =
        mft::io::SafetensorsFile::open((hf.dir / "reloaded.safetensors").string()).tensor("logits");
    CHECK(mft::test::normalised_error(ours, theirs) <= mft::test::fp32_bound(37 * 3, hidden_of(*model)));
    // And mamba-ft reads its own output back identically.
    auto again = mft::models::load_model(out.string());
    CHECK(at::equal(again->forward(golden(hf, "ids").to(at::kLong)), ours));
  }
}

TEST_CASE("Mamba-2 config errors name the file and the field; lenient JSON", "[models][mamba2]") {
  using mft::models::Mamba2Config;
  const auto parse = [](const std::string& text) { return mft::models::parse_lenient_json(text); };
  const auto base = parse(
      R"({"model_type": "mamba2", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_heads": 4,
          "head_dim": 4, "state_size": 2, "time_step_limit": [0.0, Infinity]})");
  const Mamba2Config c = Mamba2Config::from_json(base, "cfg.json");
  CHECK(std::isinf(c.dt_limit_max));
  auto tf5 = base;
  tf5["time_step_limit"] = parse(R"([0.0, {"__float__": "Infinity"}])");
  CHECK(std::isinf(Mamba2Config::from_json(tf5, "cfg.json").dt_limit_max));
  CHECK(parse(R"({"s": "NaN is text", "x": NaN})")["s"] == "NaN is text");
  auto bad = base;
  bad.erase("num_heads");
  CHECK_THROWS_WITH(Mamba2Config::from_json(bad, "cfg.json"), Contains("cfg.json: lacks \"num_heads\""));
  bad = base;
  bad["head_dim"] = 3;
  CHECK_THROWS_WITH(Mamba2Config::from_json(bad, "cfg.json"), Contains("must equal num_heads * head_dim"));
  bad = base;
  bad["time_step_limit"] = "wide";
  CHECK_THROWS_WITH(Mamba2Config::from_json(bad, "cfg.json"), Contains("\"time_step_limit\" must be [min, max]"));
}

TEST_CASE("presets build with their family's init; tiny presets have matched sizes", "[models][presets]") {
  std::map<std::string, int64_t> counts;
  for (const char* name : {"mamba-tiny", "mamba2-tiny", "pythia-tiny"}) {
    auto m = mft::models::load_model(std::string("preset:") + name, 3);
    int64_t n = 0;
    for (const auto& [k, t] : m->hf_state_dict()) n += t.numel();
    counts[name] = n;
    at::NoGradGuard no_grad;
    const at::Tensor logits = m->forward(at::randint(0, 258, {1, 9}, at::kLong));
    CHECK(at::isfinite(logits).all().item<bool>());
    // Same seed, same weights; another seed, other weights.
    auto again = mft::models::load_model(std::string("preset:") + name, 3);
    auto other = mft::models::load_model(std::string("preset:") + name, 4);
    CHECK(at::equal(again->forward(at::ones({1, 3}, at::kLong)), m->forward(at::ones({1, 3}, at::kLong))));
    CHECK_FALSE(at::equal(other->forward(at::ones({1, 3}, at::kLong)), m->forward(at::ones({1, 3}, at::kLong))));
  }
  const auto [lo, hi] = std::minmax({counts["mamba-tiny"], counts["mamba2-tiny"], counts["pythia-tiny"]});
  INFO("tiny parameter counts: mamba " << counts["mamba-tiny"] << ", mamba2 " << counts["mamba2-tiny"] << ", pythia "
                                       << counts["pythia-tiny"]);
  CHECK(double(hi) / double(lo) <= 1.15);
  // Mamba-2's dt bias is softplus^-1 of dt in [1e-3, 0.1]; A_log = log(U(1, 16)).
  auto m2 = mft::models::load_model("preset:mamba2-tiny", 1);
  const auto sd = m2->hf_state_dict();
  const at::Tensor dt = at::softplus(sd.at("backbone.layers.0.mixer.dt_bias"));
  CHECK(dt.min().item<double>() >= 1e-4);
  CHECK(dt.max().item<double>() <= 0.1 + 1e-6);
  const at::Tensor A = sd.at("backbone.layers.0.mixer.A_log").exp();
  CHECK(A.min().item<double>() >= 1.0);
  CHECK(A.max().item<double>() <= 16.0);
  CHECK_THROWS_WITH(mft::models::load_model("preset:mamba-7b"), Contains("unknown preset \"mamba-7b\"; presets are:"));
}

TEST_CASE("footprint: the parameter count from the config equals the built model's", "[models][presets]") {
  auto distinct = [](mft::models::CausalLM& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  for (const char* name : {"mamba-tiny", "mamba2-tiny", "pythia-tiny", "mamba-130m", "mamba2-130m", "pythia-160m"}) {
    INFO(name);
    const std::string spec = std::string("preset:") + name;
    auto m = mft::models::load_model(spec);
    const mft::models::ModelFootprint f = mft::models::model_footprint(spec);
    CHECK(f.parameters == distinct(*m));
    CHECK(f.family == m->family());
    CHECK(f.train_bytes_per_token_layer > 0);
  }
  CHECK(mft::models::model_footprint("preset:mamba-130m").parameters == 129135360);  // HF's state-spaces/mamba-130m-hf
  // Biases, untied heads and odd sizes: every term of each formula.
  mft::models::MambaConfig mc;
  mc.vocab_size = 37, mc.hidden_size = 12, mc.state_size = 5, mc.num_hidden_layers = 3, mc.intermediate_size = 20;
  mc.time_step_rank = 3, mc.conv_kernel = 3, mc.use_bias = true, mc.use_conv_bias = false,
  mc.tie_word_embeddings = false;
  CHECK(mc.footprint().parameters == distinct(*mft::models::MambaForCausalLM(mc)));
  mft::models::Mamba2Config m2;
  m2.vocab_size = 41, m2.hidden_size = 16, m2.state_size = 6, m2.num_hidden_layers = 2, m2.num_heads = 4;
  m2.head_dim = 8, m2.n_groups = 2, m2.expand = 2, m2.use_bias = true, m2.tie_word_embeddings = false;
  CHECK(m2.footprint().parameters == distinct(*mft::models::Mamba2ForCausalLM(m2)));
  mft::models::GPTNeoXConfig nc;
  nc.vocab_size = 43, nc.hidden_size = 16, nc.num_hidden_layers = 2, nc.num_attention_heads = 4;
  nc.intermediate_size = 40, nc.attention_bias = false, nc.tie_word_embeddings = true;
  CHECK(nc.footprint().parameters == distinct(*mft::models::GPTNeoXForCausalLM(nc)));
}

TEST_CASE("NativeLogits keeps the output layer's dtype; without it logits are fp32", "[models][dtypes]") {
  for (const char* name : {"mamba-tiny", "pythia-tiny", "mamba2-tiny"}) {
    INFO(name);
    auto model = mft::models::load_model(std::string("preset:") + name, 3);
    mft::models::cast_model(*model, at::kBFloat16);
    at::NoGradGuard no_grad;
    const at::Tensor ids = at::randint(0, 200, {2, 9}, at::kLong);
    const at::Tensor f32 = model->forward(ids);
    CHECK(f32.scalar_type() == at::kFloat);
    at::Tensor native, cached;
    {
      const mft::models::NativeLogits guard;
      CHECK(mft::models::NativeLogits::active());
      native = model->forward(ids);
      auto cache = model->new_cache(2);
      cached = model->forward_cached(ids, *cache, /*last_logits=*/1);
    }
    CHECK_FALSE(mft::models::NativeLogits::active());  // restored at scope exit
    CHECK(native.scalar_type() == at::kBFloat16);
    CHECK(cached.scalar_type() == at::kBFloat16);
    CHECK(at::equal(native.to(at::kFloat), f32));  // the same values, only not cast
    CHECK(model->forward(ids).scalar_type() == at::kFloat);
  }
}

TEST_CASE("models run in bf16 and fp16 with at most twice HF's bf16 error", "[models][dtypes]") {
  if (!have_python()) return;
  for (const char* config : kAllConfigs) {
    HfFixture hf(config);
    const at::Tensor ids = golden(hf, "ids").to(at::kLong);
    const at::Tensor ref = golden(hf, "logits");
    const double hf_err = mft::test::normalised_error(golden(hf, "logits_bf16"), ref);
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
      auto model = mft::models::load_model(hf.dir.string());
      mft::models::cast_model(*model, dtype);
      at::NoGradGuard no_grad;
      const double err = mft::test::normalised_error(model->forward(ids), ref);
      INFO(config << " " << dtype << ": normalised error vs HF fp32 " << err << ", HF's own bf16 error " << hf_err);
      // fp16 has 3 more mantissa bits than bf16, so bf16's yardstick bounds it too.
      CHECK(err <= 2 * hf_err + mft::test::fp32_bound(37 * 3, hidden_of(*model)));
      // The SSM parameters the kernels read in fp32 stay fp32.
      for (const auto& [name, t] : model->hf_state_dict()) {
        const bool ssm = name.find("A_log") != std::string::npos || name.find("dt_bias") != std::string::npos ||
                         name.find("dt_proj.bias") != std::string::npos ||
                         (name.size() > 2 && name.substr(name.size() - 2) == ".D");
        INFO(name);
        CHECK(t.scalar_type() == (ssm ? at::kFloat : dtype));
      }
    }
  }
}

TEST_CASE("packed documents (seq_idx) compute as if each were alone", "[models][presets]") {
  for (const char* name : {"preset:mamba-tiny", "preset:mamba2-tiny", "preset:pythia-tiny"}) {
    INFO(name);
    auto model = mft::models::load_model(name, 5);
    at::NoGradGuard no_grad;
    const std::vector<int64_t> lengths{5, 7, 4};
    std::vector<at::Tensor> docs, seq;
    for (size_t d = 0; d < lengths.size(); ++d) {
      docs.push_back(at::randint(0, 258, {1, lengths[d]}, at::kLong));
      seq.push_back(at::full({1, lengths[d]}, int(d), at::kInt));
    }
    const at::Tensor packed = model->forward(at::cat(docs, 1), at::cat(seq, 1));  // (1, 16, V)
    int64_t offset = 0;
    for (size_t d = 0; d < docs.size(); ++d) {
      const at::Tensor alone = model->forward(docs[d]);
      const double err = mft::test::normalised_error(packed.narrow(1, offset, lengths[d]), alone);
      INFO("document " << d << " normalised error " << err);
      CHECK(err <= mft::test::fp32_bound(16 * 4, 64));
      offset += lengths[d];
    }
    CHECK_THROWS_WITH(model->forward(at::cat(docs, 1), at::zeros({1, 3}, at::kInt)),
                      Contains("seq_idx must be int32 with the shape of input_ids"));
  }
}
