#pragma once
// Python's `random.Random(seed)` (CPython's Mersenne Twister, seeded from an int as random.seed does) with
// the two calls lm-evaluation-harness's few-shot sampler makes: `sample(range(n), k)` and the
// `_randbelow` it is built on, and the `choices` draws of its bootstrap (`random()`). Bit-for-bit the same choices as
// CPython, so few-shot examples equal lm-eval's for the same seed.
#include <array>
#include <cstdint>
#include <vector>

namespace mft::eval {

class PythonRandom {
 public:
  explicit PythonRandom(uint64_t seed);
  uint32_t next_uint32();          // genrand_uint32
  uint64_t getrandbits(int k);     // 0 < k <= 64
  uint64_t randbelow(uint64_t n);  // uniform in [0, n), n >= 1
  double random();                 // random.random(): 53 bits in [0, 1)
  // The indices random.sample(range(n), k) returns, in order (CPython's set or pool algorithm by size).
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  std::array<uint32_t, 624> mt_{};
  int index_ = 625;
};

}  // namespace mft::eval
