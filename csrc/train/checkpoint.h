#pragma once
// Training checkpoints: OUTPUT/checkpoints/step-00000100/ with params.safetensors (every trainable
// parameter, by module path) and trainer_state.pt (optimizer state, RNG state, loss scaler, data
// position, step). Written into a .tmp folder renamed into place, so a checkpoint folder is complete or
// absent; the newest `keep_last` are kept.
#include "data/batch.h"
#include "train/loss_scaler.h"

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <optional>
#include <string>

namespace mft::train {

struct TrainerState {
  int64_t step = 0;
  data::BatchStream::State data;
  LossScaler scaler;
};

void save_checkpoint(const std::string& output_dir, torch::nn::Module& model, torch::optim::Optimizer& opt,
                     const TrainerState& state, int64_t keep_last);

// The newest complete checkpoint folder, if any.
std::optional<std::string> latest_checkpoint(const std::string& output_dir);

// Restores what save_checkpoint wrote; every trainable parameter must be present with its shape.
TrainerState load_checkpoint(const std::string& checkpoint_dir, torch::nn::Module& model,
                             torch::optim::Optimizer& opt);

}  // namespace mft::train
