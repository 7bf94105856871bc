#include "data/random.h"

#include <stdexcept>
#include <utility>

namespace mft::data {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::mt19937_64 make_rng(uint64_t seed, uint64_t stream) {
  return std::mt19937_64(mix64(mix64(seed) ^ stream));
}

uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  if (bound == 0) throw std::invalid_argument("uniform_below: bound must be positive");
  // 2^64 mod bound, computed in 64 bits: outputs below it would make the low residues more likely.
  const uint64_t reject = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = rng();
    if (r >= reject) return r % bound;
  }
}

std::vector<int64_t> shuffled_indices(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace mft::data
