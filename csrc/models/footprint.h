#pragma once
// What a model will need, known from its config alone: each family's config computes it (footprint()),
// so memory can be checked before a single weight is allocated (models/memory_estimate.h).
#include <cstdint>
#include <string>

namespace mft::models {

struct ModelFootprint {
  std::string family;
  int64_t parameters = 0;  // as the built model holds them (a test compares with every preset)
  int64_t layers = 0, vocab = 0;
  // Bytes per token and layer a training step keeps for the backward pass and its own transients (fp32
  // activations; each family's footprint() states the measurement behind its number).
  double train_bytes_per_token_layer = 0;
  // Bytes per token and layer inference keeps: attention keys and values (0 for recurrent models).
  double cache_bytes_per_token_layer = 0;
  // Bytes per sequence and layer of a recurrent decoding state (conv inputs and SSM state).
  double state_bytes_per_sequence_layer = 0;
  // LoRA parameters per unit of rank with the family's default targets (sum of in + out features).
  double lora_features = 0;
};

}  // namespace mft::models
