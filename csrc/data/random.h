#pragma once
// Platform-independent randomness for data order and synthetic data. std::mt19937_64's output sequence
// is fixed by the C++ standard, but std::shuffle and the std::*_distribution classes are
// implementation-defined, so the same seed would give different batches with libstdc++ and libc++.
// These helpers use only the raw 64-bit outputs and integer arithmetic.
#include <cstdint>
#include <random>
#include <vector>

namespace mft::data {

// SplitMix64 finaliser: a bijective mix, used to derive independent seeds from (seed, stream).
uint64_t mix64(uint64_t x);

// The generator for stream `stream` (e.g. an epoch number) of `seed`.
std::mt19937_64 make_rng(uint64_t seed, uint64_t stream);

// Uniform integer in [0, bound) without modulo bias (rejection of the low 2^64 mod bound outputs).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound);

// A permutation of 0..n-1 by Fisher-Yates (Durstenfeld) with `rng`.
std::vector<int64_t> shuffled_indices(int64_t n, std::mt19937_64& rng);

}  // namespace mft::data
