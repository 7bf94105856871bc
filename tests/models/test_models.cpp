// Models against HF transformers with random weights (tests/models/make_hf_model.py writes the HF
// folder and HF's logits at test time): same logits in fp32, clear errors for mismatched checkpoints.
#include "helpers.h"

#include "io/safetensors.h"
#include "models/gpt_neox.h"
#include "models/mamba.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
bool have_python() {
  if (std::getenv("MFT_PYTHON") != nullptr) return true;
  WARN("MFT_PYTHON not set (ctest sets it): skipped");
  return false;
}

struct HfFixture {
  fs::path dir;
  explicit HfFixture(const std::string& config) {
    char tmpl[] = "/tmp/mft-hf-model-XXXXXX";
    dir = mkdtemp(tmpl);
    const std::string cmd = std::string(std::getenv("MFT_PYTHON")) + " " + MFT_TESTS_DIR + "/models/make_hf_model.py " +
                            dir.string() + " " + config;
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
                      Contains("config.json: \"state_size\" must be a positive integer; got \"sixteen\""));
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
