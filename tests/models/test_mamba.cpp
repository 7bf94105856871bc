// Mamba-1 against HF transformers' MambaForCausalLM with random weights: same logits in fp32.
#include "helpers.h"

#include "io/safetensors.h"
#include "models/mamba.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
struct HfFixture {
  fs::path dir;
  explicit HfFixture(const std::string& config) {
    char tmpl[] = "/tmp/mft-hf-mamba-XXXXXX";
    dir = mkdtemp(tmpl);
    const std::string cmd = std::string(std::getenv("MFT_PYTHON")) + " " + MFT_TESTS_DIR + "/models/make_hf_mamba.py " +
                            dir.string() + " " + config;
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~HfFixture() { fs::remove_all(dir); }
};
}  // namespace

TEST_CASE("Mamba-1 logits match HF transformers with random weights", "[models][mamba]") {
  if (std::getenv("MFT_PYTHON") == nullptr) {
    WARN("MFT_PYTHON not set (ctest sets it): skipped");
    return;
  }
  for (const char* config : {"tied", "untied-odd"}) {
    INFO("config " << config);
    HfFixture hf(config);
    auto model = mft::models::load_mamba(hf.dir.string());
    const auto golden = mft::io::SafetensorsFile::open((hf.dir / "golden.safetensors").string());
    const at::Tensor ids = golden.tensor("ids").to(at::kLong);
    at::NoGradGuard no_grad;
    const at::Tensor logits = model->forward(ids);
    const at::Tensor ref = golden.tensor("logits");
    REQUIRE(logits.sizes() == ref.sizes());
    const double err = mft::test::normalised_error(logits, ref);
    INFO("max normalised error vs HF " << err);
    // Both compute in fp32 over 37 steps and a few layers: the fp32 bound of the op tests.
    CHECK(err <= mft::test::fp32_bound(37 * 3, model->config.hidden_size));
  }
}

TEST_CASE("Mamba-1 loading refuses mismatched checkpoints", "[models][mamba]") {
  if (std::getenv("MFT_PYTHON") == nullptr) {
    WARN("MFT_PYTHON not set (ctest sets it): skipped");
    return;
  }
  HfFixture hf("tied");
  auto tensors = mft::io::load_safetensors_checkpoint(hf.dir.string());
  std::map<std::string, at::Tensor> copy;
  for (auto& [k, v] : tensors) copy[k] = v.clone();
  copy.erase("backbone.layers.1.mixer.D");
  mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
  CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()), Contains("lacks tensor 'backbone.layers.1.mixer.D'"));
  copy["backbone.layers.1.mixer.D"] = at::zeros({5});
  mft::io::save_safetensors((hf.dir / "model.safetensors").string(), copy);
  CHECK_THROWS_WITH(mft::models::load_mamba(hf.dir.string()), Contains("config.json implies"));
}
