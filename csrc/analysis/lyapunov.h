#pragma once
// Lyapunov exponents of recurrent language models (../shared/reference/paper.md §3):
//  - exact: Mamba and Mamba-2 layers run a diagonal recurrence h_t = exp(Δ_t A) h_{t-1} + ..., whose
//    exponents are (1/T) Σ_t Δ_t A[c, s] for every channel c and state s; λ̂ = their maximum, from the Δ the
//    model computes on the given text (≤ 0 whenever A < 0 and Δ > 0);
//  - general (Benettin / QR): the top exponents of any state map x_t = f_t(x_{t-1}), from k orthonormal
//    directions pushed through Jacobian-vector products (central differences) and re-orthonormalised by QR
//    each step: λ_i = (1/T) Σ_t log |R_t[i, i]|. For a model, the state is its layers' recurrent (SSM)
//    states and f_t is one decode step on token t (forward_cached), so stacked layers are covered too.
// All exponents are per step, natural log.
#include "models/causal_lm.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace mft::analysis {

// x (n,) fp64 -> f_t(x) (n,) for step t. For Jacobian-vector products the map is evaluated at many points
// per step: it receives them batched, X (m, n) -> (m, n).
using StateMap = std::function<at::Tensor(const at::Tensor& X, int64_t t)>;

struct Spectrum {
  std::vector<double> exponents;  // the k largest, descending
  int64_t steps = 0;
};

// Benettin's algorithm from x0 over `steps` steps with k directions (k <= n); eps: the central-difference
// step along each unit direction, relative to max(1, max|x|) (the map is linear in the state for Mamba's
// SSM states, so a large eps is exact there). Seeded random initial directions, or the identity frame when
// k = n (then a diagonal Jacobian, such as one Mamba layer's, gives every exponent exactly at any T).
// The first `warmup` steps only align the directions (they are not averaged): with near-degenerate spectra
// (Mamba's slow modes) a random start needs them.
Spectrum benettin(const StateMap& f, const at::Tensor& x0, int64_t steps, int64_t k, double eps, uint64_t seed,
                  int64_t warmup = 0);

struct LayerExponent {
  int64_t layer = 0;
  double exact = 0;      // λ̂ = max over channels and states of mean_t Δ_t A (over the measured steps)
  double estimated = 0;  // Benettin's top exponent of this layer's SSM state alone
};

struct ModelLyapunov {
  std::vector<LayerExponent> layers;
  Spectrum stack;  // top exponents of all layers' SSM states together (the whole model's state map)
};

// Exact λ̂ per layer from recurrence_decays on input_ids (1, T), and Benettin estimates per layer and for
// the stack (k directions, at most each state map's size; 0 skips the estimates; more than the whole
// recurrent state is an error), both over steps warmup..T-1 (the estimates' directions align during the
// first `warmup` steps). The model must have a recurrent state (Mamba, Mamba-2).
ModelLyapunov model_lyapunov(models::CausalLM& model, const at::Tensor& input_ids, int64_t k, int64_t warmup = 0,
                             double eps = 1.0, uint64_t seed = 0);

// Per layer λ̂ over steps first..T-1 (cheap).
std::vector<double> exact_lambda(models::CausalLM& model, const at::Tensor& input_ids, int64_t first = 0);

}  // namespace mft::analysis
