// Activation checkpointing per block: for every family, full fine-tuning and LoRA with dropout, fp32 and
// bf16 autocast, packed documents: the loss and every gradient equal those of the plain forward (the
// recomputation replays the same autocast state and dropout masks), and the RNG continues as without.
#include "helpers.h"

#include "models/activation_checkpoint.h"
#include "models/registry.h"
#include "peft/lora.h"

#include <ATen/autocast_mode.h>
#include <catch2/catch.hpp>

using namespace mft::test;

namespace {
struct Run {
  double loss = 0;
  std::vector<at::Tensor> grads;  // of the trained parameters, in parameters() order
  at::Tensor next_random;         // a draw after backward: the RNG must continue identically
};

Run train_step(const std::string& preset, bool lora, bool bf16, bool checkpointing) {
  auto model = mft::models::load_model("preset:" + preset, /*seed=*/3);
  if (lora) {
    mft::peft::LoraConfig c;
    c.rank = 4;
    c.dropout = 0.2;
    mft::peft::apply_lora(*model, c, /*seed=*/5);
    // Fresh adapters have B = 0 (A = 0 for embeddings); give them values so the low-rank path (and its
    // dropout) matters.
    at::NoGradGuard g;
    for (auto& p : model->named_parameters()) {
      if (p.key().find("lora_") != std::string::npos) p.value().normal_(0, 0.05);
    }
  }
  model->train();
  model->set_activation_checkpointing(checkpointing);
  at::manual_seed(11);
  const at::Tensor ids = at::randint(model->vocab_size(), {2, 24}, at::kLong);
  const at::Tensor seq_idx = (at::arange(24, at::kInt) >= 10).to(at::kInt).unsqueeze(0).repeat({2, 1});
  at::Tensor logits;
  {
    at::autocast::set_autocast_enabled(at::kCPU, bf16);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    logits = model->forward(ids, seq_idx);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  const at::Tensor loss = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), ids.view({-1}));
  loss.backward();
  Run r;
  r.loss = loss.item<double>();
  for (const auto& p : model->parameters()) {
    if (p.requires_grad()) r.grads.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
  }
  r.next_random = at::rand({4});
  return r;
}
}  // namespace

TEST_CASE("activation checkpointing gives the gradients of the plain forward", "[checkpointing]") {
  for (const std::string preset : {"mamba-tiny", "mamba2-tiny", "pythia-tiny"}) {
    for (bool lora : {false, true}) {
      for (bool bf16 : {false, true}) {
        INFO(preset << " lora " << lora << " bf16 " << bf16);
        const Run plain = train_step(preset, lora, bf16, false);
        const Run ckpt = train_step(preset, lora, bf16, true);
        CHECK(ckpt.loss == plain.loss);
        REQUIRE(ckpt.grads.size() == plain.grads.size());
        REQUIRE(!plain.grads.empty());
        int nonzero = 0;
        for (size_t i = 0; i < plain.grads.size(); ++i) {
          INFO("parameter " << i);
          REQUIRE(ckpt.grads[i].defined() == plain.grads[i].defined());
          if (!plain.grads[i].defined()) continue;
          // Same operations on the same values: identical up to the order in which autograd sums the
          // contributions of a tensor used twice (a few fp32 roundings).
          CHECK(normalised_error(ckpt.grads[i], plain.grads[i]) <= 1e-6);
          nonzero += plain.grads[i].abs().sum().item<double>() > 0;
        }
        CHECK(nonzero == int(plain.grads.size()));  // every trained tensor learns through the blocks
        CHECK(at::equal(ckpt.next_random, plain.next_random));
      }
    }
  }
}

TEST_CASE("checkpoint_block needs no gradient at its input and is plain without grad mode", "[checkpointing]") {
  const at::Tensor w = at::randn({4, 4}).requires_grad_(true);
  const at::Tensor h = at::randn({2, 3, 4});  // e.g. a frozen embedding's output
  const at::Tensor out =
      mft::models::checkpoint_block([w](const at::Tensor& x) { return at::tanh(at::matmul(x, w)); }, h);
  out.sum().backward();
  REQUIRE(w.grad().defined());
  const at::Tensor w2 = w.detach().clone().requires_grad_(true);
  at::tanh(at::matmul(h, w2)).sum().backward();
  CHECK(at::allclose(w.grad(), w2.grad()));
  at::NoGradGuard no_grad;
  CHECK(!mft::models::checkpoint_block([w](const at::Tensor& x) { return at::matmul(x, w); }, h).requires_grad());
}
