// TorchScript export (csrc/export): the archive torch::jit::load opens runs the model's math, portable
// and with the mft:: ops, for every family; its step API reproduces the full forward; LoRA adapters are
// merged; the extra files are there; bad outputs fail clearly. check_export.py does the same from Python
// (torch.jit.load, portable archives in a process that never loads the op library).
//
// Tolerances. fp32: the archive and the model compute the same fp32 math, rounded in a different order
// (ATen conv1d and a loop of addcmul vs the mft kernels; chunked matmuls vs the SSD kernel), so their
// difference is a few roundings per operation and layer: fp32_bound(depth, width) with depth the
// sequence length plus the layers' operations, width the widest reduction. The issue's target, 1e-5, is
// checked as well (it is the stricter of the two at these sizes). Low precision: at most twice the
// error of the model itself run in that dtype (both measured against the fp32 model), plus the fp32 bound.
#include "core/library_info.h"
#include "export/torchscript_export.h"
#include "helpers.h"
#include "io/safetensors.h"
#include "models/gpt_neox.h"
#include "models/mamba.h"
#include "models/mamba2.h"
#include "models/registry.h"
#include "peft/lora.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/import.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace {
namespace fs = std::filesystem;
using mft::test::normalised_error;

const char* const kPresets[] = {"preset:mamba-tiny", "preset:mamba2-tiny", "preset:pythia-tiny"};
constexpr double kIssueTarget = 1e-5;        // the issue's bound on the max normalised error in fp32
constexpr int64_t kTokenizerVocab = 258;     // the tiny presets' byte tokenizer (the models pad to 272)
constexpr int64_t kBatch = 2, kLength = 67;  // odd sizes; 67 > the portable Mamba scan's 64-step blocks

// Depth of the error recurrence: every position's state has seen `kLength` steps; each layer adds a norm,
// its projections and the mixer (8 operations, each a few roundings).
int64_t error_depth(mft::models::CausalLM& model) {
  const int64_t layers = nlohmann::json::parse(model.hf_config_json()).at("num_hidden_layers").get<int64_t>();
  return kLength + 8 * layers;
}

int64_t widest(mft::models::CausalLM& model) {
  int64_t w = 0;
  for (const auto& [name, t] : model.hf_state_dict()) w = std::max(w, t.dim() == 2 ? t.size(1) : int64_t(0));
  return w;
}

at::Tensor random_ids(int64_t batch, int64_t length, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, kTokenizerVocab, {batch, length}, at::kLong);
}

torch::jit::Module export_and_load(mft::models::CausalLM& model, const std::string& path, bool with_ops,
                                   std::unordered_map<std::string, std::string>* extra = nullptr) {
  mft::exporting::ExportOptions o;
  o.with_ops = with_ops;
  mft::exporting::export_torchscript(model, path, o);
  std::unordered_map<std::string, std::string> files{{"config.json", ""}, {"mft_requires", ""}};
  torch::jit::Module m = torch::jit::load(path, c10::kCPU, files);
  if (extra) *extra = files;
  return m;
}

// Logits (B, L, V) of the archive's state API: prefill of the first `prefix` tokens (none when 0), then
// one step per token.
at::Tensor stepped_logits(torch::jit::Module& m, const at::Tensor& ids, int64_t prefix) {
  c10::IValue state = m.get_method("init_state")({c10::IValue(ids.size(0))});
  std::vector<at::Tensor> out;
  if (prefix > 0) {
    auto r = m.get_method("prefill")({ids.narrow(1, 0, prefix), state}).toTuple();
    out.push_back(r->elements()[0].toTensor());
    state = r->elements()[1];
  }
  for (int64_t t = prefix; t < ids.size(1); ++t) {
    auto r = m.get_method("step")({ids.select(1, t).contiguous(), state}).toTuple();
    out.push_back(r->elements()[0].toTensor().unsqueeze(1));
    state = r->elements()[1];
  }
  return at::cat(out, 1);
}

// True when some method of `m` or of its submodules calls an mft:: op.
bool calls_mft_ops(const torch::jit::Module& m) {
  for (const auto& sub : m.modules()) {
    for (const auto& method : sub.get_methods()) {
      if (method.graph()->toString().find("mft::") != std::string::npos) return true;
    }
  }
  return false;
}
}  // namespace

TEST_CASE("exported archives run the model's math (C++ torch::jit::load), fp32", "[export]") {
  at::NoGradGuard no_grad;
  const mft::test::TempDir dir("mft-export");
  const at::Tensor ids = random_ids(kBatch, kLength, 7);
  for (const char* preset : kPresets) {
    for (const bool with_ops : {false, true}) {
      INFO(preset << (with_ops ? " with ops" : " portable"));
      auto model = mft::models::load_model(preset, /*seed=*/3);
      model->eval();
      const at::Tensor native = model->forward(ids);
      std::unordered_map<std::string, std::string> extra;
      torch::jit::Module m = export_and_load(*model, dir.file("m.pt"), with_ops, &extra);
      const double bound = mft::test::fp32_bound(error_depth(*model), widest(*model));
      const at::Tensor logits = m.forward({ids}).toTensor();
      REQUIRE(logits.sizes() == native.sizes());
      REQUIRE(logits.scalar_type() == at::kFloat);
      const double err = normalised_error(logits, native);
      INFO("forward: max normalised error " << err << " (bound " << bound << ")");
      WARN(preset << (with_ops ? " with ops" : " portable") << ": forward max normalised error " << err);
      CHECK(err <= bound);
      CHECK(err <= kIssueTarget);
      // The state API reproduces the full forward: all steps, and a prefill followed by steps.
      for (const int64_t prefix : {int64_t(0), int64_t(40)}) {
        const double e = normalised_error(stepped_logits(m, ids, prefix), logits);
        INFO("prefill " << prefix << " + steps vs forward: " << e);
        WARN(preset << (with_ops ? " with ops" : " portable") << ": prefill " << prefix << " + steps vs forward " << e);
        CHECK(e <= bound);
        CHECK(e <= kIssueTarget);
      }
      // Extra files: the HF config with the export section; what the loader needs.
      const auto config = nlohmann::json::parse(extra.at("config.json"));
      CHECK(config.at("model_type") == model->family());
      CHECK(config.at("dtype") == "float32");
      const bool ops = with_ops && model->family() != "gpt_neox";
      CHECK(config.at("mft_export").at("with_ops") == ops);
      CHECK(extra.at("mft_requires") == (ops ? "libmft_ops.so" : ""));
      CHECK(calls_mft_ops(m) == ops);
    }
  }
}

// Configurations the presets do not cover: biases on every projection, no conv bias, untied heads, residual in
// the activation dtype, other conv widths; Mamba-2 with several groups, short chunks and a finite dt limit;
// GPT-NeoX sequential, without rotary dims or with all of them, without attention biases, tied.
std::vector<std::pair<std::string, std::shared_ptr<mft::models::CausalLM>>> odd_models() {
  std::vector<std::pair<std::string, std::shared_ptr<mft::models::CausalLM>>> out;
  mft::models::MambaConfig m;
  m.vocab_size = 300, m.hidden_size = 24, m.intermediate_size = 48, m.state_size = 8, m.time_step_rank = 3;
  m.num_hidden_layers = 2, m.conv_kernel = 2, m.use_bias = true, m.use_conv_bias = false;
  m.tie_word_embeddings = false, m.residual_in_fp32 = false;
  out.emplace_back("mamba biases, kernel 2, untied", mft::models::MambaForCausalLM(m).ptr());
  mft::models::Mamba2Config m2;
  m2.vocab_size = 300, m2.hidden_size = 32, m2.num_heads = 8, m2.head_dim = 8, m2.n_groups = 2, m2.state_size = 8;
  m2.num_hidden_layers = 2, m2.conv_kernel = 3, m2.chunk_size = 16, m2.use_bias = true, m2.dt_limit_min = 0.001;
  m2.dt_limit_max = 0.5, m2.tie_word_embeddings = false, m2.residual_in_fp32 = false;
  out.emplace_back("mamba2 2 groups, chunk 16, dt limit, untied", mft::models::Mamba2ForCausalLM(m2).ptr());
  m2.n_groups = 8, m2.dt_limit_max = std::numeric_limits<double>::infinity(), m2.use_conv_bias = false;
  out.emplace_back("mamba2 one head per group, no conv bias", mft::models::Mamba2ForCausalLM(m2).ptr());
  mft::models::GPTNeoXConfig n;
  n.vocab_size = 300, n.hidden_size = 32, n.num_attention_heads = 4, n.intermediate_size = 40;
  n.num_hidden_layers = 2, n.rotary_pct = 0.0, n.use_parallel_residual = false, n.attention_bias = false;
  n.tie_word_embeddings = true;
  out.emplace_back("gpt_neox sequential, no rotary, no attention bias, tied", mft::models::GPTNeoXForCausalLM(n).ptr());
  n.rotary_pct = 1.0, n.use_parallel_residual = true;
  out.emplace_back("gpt_neox full rotary", mft::models::GPTNeoXForCausalLM(n).ptr());
  at::NoGradGuard no_grad;
  uint64_t seed = 31;
  for (auto& [name, model] : out) {
    mft::models::init_family_weights(*model, seed++);
    // Zero biases would hide a missing bias: perturb every weight but A_log.
    for (auto& [key, t] : model->hf_state_dict()) {
      if (key.find("A_log") == std::string::npos) t.add_(at::randn_like(t) * 0.05);
    }
    model->eval();
  }
  return out;
}

TEST_CASE("exported archives of other configurations (biases, groups, chunks, rotary, residuals)", "[export]") {
  at::NoGradGuard no_grad;
  const mft::test::TempDir dir("mft-export");
  const at::Tensor ids = random_ids(kBatch, kLength, 37);
  for (auto& [name, model] : odd_models()) {
    const at::Tensor native = model->forward(ids);
    for (const bool with_ops : {false, true}) {
      INFO(name << (with_ops ? " with ops" : " portable"));
      torch::jit::Module m = export_and_load(*model, dir.file("odd.pt"), with_ops);
      const at::Tensor logits = m.forward({ids}).toTensor();
      const double err = normalised_error(logits, native);
      const double step_err = normalised_error(stepped_logits(m, ids, 20), logits);
      INFO("forward " << err << ", prefill + steps " << step_err);
      CHECK(err <= kIssueTarget);
      CHECK(step_err <= kIssueTarget);
    }
  }
}

TEST_CASE("bf16 and fp16 archives: within twice the model's own error in that dtype", "[export]") {
  at::NoGradGuard no_grad;
  const mft::test::TempDir dir("mft-export");
  const at::Tensor ids = random_ids(kBatch, kLength, 11);
  for (const char* preset : kPresets) {
    auto reference = mft::models::load_model(preset, 5);
    reference->eval();
    const at::Tensor ref = reference->forward(ids);
    for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
      auto model = mft::models::load_model(preset, 5);
      mft::models::cast_model(*model, dtype);
      model->eval();
      const double native_err = normalised_error(model->forward(ids), ref);
      for (const bool with_ops : {false, true}) {
        INFO(preset << " " << dtype << (with_ops ? " with ops" : " portable"));
        torch::jit::Module m = export_and_load(*model, dir.file("m.pt"), with_ops);
        const at::Tensor logits = m.forward({ids}).toTensor();
        const double err = normalised_error(logits, ref);
        const double bound = mft::test::low_precision_bound(native_err, error_depth(*model), widest(*model));
        const double step_err = normalised_error(stepped_logits(m, ids, 30), ref);
        INFO("vs fp32 model: archive " << err << " (prefill + steps " << step_err << "), model in this dtype "
                                       << native_err << ", bound " << bound);
        WARN(preset << " " << dtype << (with_ops ? " with ops" : " portable") << ": vs fp32 model " << err
                    << ", prefill + steps " << step_err << "; the model itself in this dtype " << native_err);
        CHECK(err <= bound);
        CHECK(step_err <= bound);
        // A_log, D and the dt biases stay fp32; the other weights are in the export dtype.
        for (const auto& p : m.named_parameters()) {
          const bool fp32 = p.name.find("A_log") != std::string::npos || p.name.find("dt_bias") != std::string::npos ||
                            (p.name.size() >= 2 && p.name.compare(p.name.size() - 2, 2, ".D") == 0);
          INFO(p.name);
          CHECK(p.value.scalar_type() == (fp32 ? at::kFloat : dtype));
        }
      }
    }
  }
}

TEST_CASE("LoRA adapters are merged: the archive equals the adapted model", "[export]") {
  at::NoGradGuard no_grad;
  const mft::test::TempDir dir("mft-export");
  const at::Tensor ids = random_ids(kBatch, 33, 13);
  for (const char* preset : kPresets) {
    INFO(preset);
    auto model = mft::models::load_model(preset, 9);
    mft::peft::LoraConfig c;
    c.rank = 4;
    c.alpha = 8;
    mft::peft::apply_lora(*model, c, 17);
    at::manual_seed(19);
    for (auto& [name, t] : mft::peft::lora_state_dict(*model)) t.normal_(0.0, 0.1);  // B = 0 would be a no-op
    model->eval();
    const at::Tensor adapted = model->forward(ids);
    auto base = mft::models::load_model(preset, 9);
    base->eval();
    REQUIRE(normalised_error(base->forward(ids), adapted) > 1e-3);  // the adapters matter
    torch::jit::Module m = export_and_load(*model, dir.file("lora.pt"), /*with_ops=*/true);
    CHECK(mft::peft::adapted_modules(*model).empty());  // merged
    const double err = normalised_error(m.forward({ids}).toTensor(), adapted);
    INFO("archive vs adapted model: " << err);
    CHECK(err <= kIssueTarget);
  }
}

TEST_CASE("export errors: unwritable output, a folder as output, an adapter of another model", "[export]") {
  const mft::test::TempDir dir("mft-export");
  auto model = mft::models::load_model("preset:mamba-tiny");
  auto message = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  const mft::exporting::ExportOptions o;
  CHECK_THAT(message([&] { mft::exporting::export_torchscript(*model, "/nonexistent-dir/m.pt", o); }),
             Catch::Matchers::Contains("export: cannot write /nonexistent-dir/m.pt"));
  CHECK_THAT(message([&] { mft::exporting::export_torchscript(*model, dir.path.string(), o); }),
             Catch::Matchers::Contains("it is a folder"));
  CHECK(!fs::exists("/nonexistent-dir/m.pt.tmp-" + std::to_string(::getpid())));
  // An adapter made for Mamba does not fit GPT-NeoX: refused before anything is exported.
  mft::peft::apply_lora(*model, mft::peft::LoraConfig{}, 1);
  mft::peft::save_peft_adapter(*model, dir.file("adapter"));
  auto other = mft::models::load_model("preset:pythia-tiny");
  const std::string err = message([&] { mft::peft::load_peft_adapter(*other, dir.file("adapter")); });
  INFO(err);
  CHECK(err != "no error");
}

TEST_CASE("Python torch.jit.load runs every exported family (check_export.py)", "[export][python]") {
  if (!mft::test::have_python()) return;
  at::NoGradGuard no_grad;
  const mft::test::TempDir dir("mft-export-py");
  const at::Tensor ids = random_ids(kBatch, kLength, 23);
  nlohmann::json manifest = nlohmann::json::array();
  for (const char* preset : kPresets) {
    auto model = mft::models::load_model(preset, 29);
    model->eval();
    const std::string name = std::string(preset).substr(7);
    // ids as fp32 (exact below 2^24): the safetensors writer stores floating tensors.
    mft::io::save_safetensors(dir.file(name + ".safetensors"),
                              {{"ids", ids.to(at::kFloat)}, {"logits", model->forward(ids)}});
    for (const bool with_ops : {false, true}) {
      const std::string file = name + (with_ops ? "-ops.pt" : ".pt");
      mft::exporting::ExportOptions o;
      o.with_ops = with_ops;
      mft::exporting::export_torchscript(*model, dir.file(file), o);
      manifest.push_back({{"archive", file}, {"reference", name + ".safetensors"}, {"family", model->family()}});
    }
  }
  std::ofstream(dir.file("manifest.json")) << manifest.dump(2);
  const std::string cmd = std::string(std::getenv("MFT_PYTHON")) + " " + MFT_TESTS_DIR + "/export/check_export.py " +
                          dir.path.string() + " --ops-library " + mft::op_library_path() + " --tolerance " +
                          std::to_string(kIssueTarget);
  CHECK(std::system(cmd.c_str()) == 0);
}
