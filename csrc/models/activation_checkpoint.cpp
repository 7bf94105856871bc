#include "models/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

#include <mutex>

namespace mft::models {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(BlockFn f) : fn(std::move(f)) {}
  BlockFn fn;
};

at::Tensor cpu_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Autocast settings of the devices the models run on.
struct AutocastState {
  bool cpu = false, cuda = false;
  at::ScalarType cpu_dtype = at::kBFloat16, cuda_dtype = at::kHalf;
  static AutocastState current() {
    return {at::autocast::is_autocast_enabled(at::kCPU), at::autocast::is_autocast_enabled(at::kCUDA),
            at::autocast::get_autocast_dtype(at::kCPU), at::autocast::get_autocast_dtype(at::kCUDA)};
  }
  void apply() const {
    at::autocast::set_autocast_enabled(at::kCPU, cpu);
    at::autocast::set_autocast_enabled(at::kCUDA, cuda);
    at::autocast::set_autocast_dtype(at::kCPU, cpu_dtype);
    at::autocast::set_autocast_dtype(at::kCUDA, cuda_dtype);
  }
};

// Puts back the caller's autocast settings and RNG state (also when the recomputation throws).
struct RestoreOnExit {
  AutocastState outer;
  at::Tensor rng;
  bool clear_autocast_cache;
  ~RestoreOnExit() {
    if (clear_autocast_cache) at::autocast::clear_cache();
    outer.apply();
    set_cpu_rng_state(rng);
  }
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // `anchor` (an empty tensor requiring grad) makes autograd call backward even when h needs no
  // gradient (a frozen embedding feeding LoRA blocks): the blocks' own parameters still do.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const at::Tensor& anchor,
                            c10::intrusive_ptr<BlockHolder> block) {
    (void)anchor;
    const AutocastState autocast = AutocastState::current();
    ctx->saved_data["block"] = c10::IValue::make_capsule(block);
    ctx->saved_data["rng"] = cpu_rng_state();
    ctx->saved_data["autocast"] =
        std::vector<int64_t>{autocast.cpu, autocast.cuda, int64_t(autocast.cpu_dtype), int64_t(autocast.cuda_dtype)};
    ctx->save_for_backward({h});
    return block->fn(h);  // grad mode is off inside Function::forward: nothing is recorded
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "activation checkpointing: double backward (create_graph=True) is not supported");
    auto block = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    const at::Tensor saved = ctx->get_saved_variables()[0];
    const at::Tensor x = saved.detach().requires_grad_(saved.requires_grad());
    const std::vector<int64_t> ac = ctx->saved_data["autocast"].toIntVector();
    const AutocastState forward_autocast{ac[0] != 0, ac[1] != 0, at::ScalarType(ac[2]), at::ScalarType(ac[3])};
    at::Tensor out;
    {
      const RestoreOnExit restore{AutocastState::current(), cpu_rng_state(),
                                  forward_autocast.cpu || forward_autocast.cuda};
      set_cpu_rng_state(ctx->saved_data["rng"].toTensor());
      forward_autocast.apply();
      at::AutoGradMode grad(true);
      out = block->fn(x);
    }
    // Backpropagate through the recomputed block: the blocks' parameters accumulate their gradients
    // here; x's gradient goes on to the previous block.
    torch::autograd::backward({out}, {grads[0]});
    return {x.requires_grad() ? x.grad() : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

at::Tensor checkpoint_block(BlockFn block, const at::Tensor& h) {
  if (!at::GradMode::is_enabled()) return block(h);
  const at::Tensor anchor = at::empty({0}, h.options().dtype(at::kFloat)).requires_grad_(true);
  return CheckpointFunction::apply(h, anchor, c10::make_intrusive<BlockHolder>(std::move(block)));
}

}  // namespace mft::models
