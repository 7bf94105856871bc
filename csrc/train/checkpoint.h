#pragma once
// Training checkpoints: OUTPUT/checkpoints/step-00000100/ with params.safetensors (every trainable
// parameter, by module path), trainer_state.pt (optimizer state, RNG state, loss scaler, data position,
// step) and manifest.json (their sizes and CRC32Cs, computed while writing; core/manifest.h). Written into
// a temporary folder put in place whole (core/file_io.h), so a checkpoint folder is complete or absent;
// the newest `keep_last` are kept. Resuming verifies the manifest and falls back to an older intact
// checkpoint when the newest is damaged.
#include "data/batch.h"
#include "train/loss_scaler.h"

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
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

// The newest complete checkpoint folder, if any (not verified).
std::optional<std::string> latest_checkpoint(const std::string& output_dir);

// The newest checkpoint whose manifest verifies; one without a manifest (written by an older mamba-ft) is
// taken with a warning. Damaged ones are skipped, each with a warning. None at all: nullopt. Some, but
// none intact: throws naming each checkpoint and what is wrong with it.
std::optional<std::string> latest_intact_checkpoint(const std::string& output_dir,
                                                    const std::function<void(const std::string&)>& warn);

// Restores what save_checkpoint wrote; every trainable parameter must be present with its shape.
TrainerState load_checkpoint(const std::string& checkpoint_dir, torch::nn::Module& model, torch::optim::Optimizer& opt);

}  // namespace mft::train
