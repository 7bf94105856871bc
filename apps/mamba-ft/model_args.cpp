#include "model_args.h"

#include "models/memory_estimate.h"
#include "models/registry.h"
#include "train/model_setup.h"

#include <ATen/ATen.h>

namespace mft::app {

void ModelArgs::add_to(CLI::App* cmd) {
  cmd->add_option("--model", model, "HF model folder (Mamba, Mamba-2, GPT-NeoX) or preset:NAME")->required();
  cmd->add_option("--dtype", dtype, "weights and activations: fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--seed", seed, "random seed (preset initialisation, sampling)")->capture_default_str();
  cmd->add_option("--tokenizer", tokenizer, "tokenizer.json, a folder holding one, or 'bytes' (default: the model's)");
}

LoadedModel load_model_and_tokenizer(const ModelArgs& args, int64_t batch, int64_t tokens, const std::string& lower) {
  LoadedModel out;
  const at::ScalarType dtype = models::parse_dtype(args.dtype);
  const c10::Device device(args.device);
  TORCH_CHECK(!device.is_cuda() || at::hasCUDA(), "--device ", args.device,
              ": this build or machine has no CUDA device");
  if (tokens > 0) {
    models::check_memory(models::estimate_inference(models::model_footprint(args.model), batch, tokens, dtype),
                         "model " + args.model, lower);
  }
  out.model = models::load_model(args.model, args.seed);
  models::cast_model(*out.model, dtype, device);
  out.model->eval();
  out.tokenizer_source = train::resolve_tokenizer_path(args.model, args.tokenizer);
  out.tokenizer = train::load_tokenizer_for(args.model, args.tokenizer);
  TORCH_CHECK(out.tokenizer->vocab_size() <= out.model->vocab_size(), "tokenizer ", out.tokenizer_source, " has ",
              out.tokenizer->vocab_size(), " ids but the model's output layer only ", out.model->vocab_size());
  return out;
}

}  // namespace mft::app
