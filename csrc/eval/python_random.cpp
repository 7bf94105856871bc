// CPython Modules/_randommodule.c (init_genrand, init_by_array, genrand_uint32, random_seed for ints,
// getrandbits) and Lib/random.py (_randbelow_with_getrandbits, sample), transcribed from their published
// algorithms (MT19937 by Matsumoto and Nishimura).
#include "eval/python_random.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <set>

namespace mft::eval {
namespace {
constexpr int kN = 624, kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU, kUpperMask = 0x80000000U, kLowerMask = 0x7fffffffU;

void init_genrand(std::array<uint32_t, 624>& mt, uint32_t s) {
  mt[0] = s;
  for (int i = 1; i < kN; ++i) mt[i] = 1812433253U * (mt[i - 1] ^ (mt[i - 1] >> 30)) + uint32_t(i);
}

void init_by_array(std::array<uint32_t, 624>& mt, const std::vector<uint32_t>& key) {
  init_genrand(mt, 19650218U);
  int i = 1;
  size_t j = 0;
  const size_t n = key.size();
  for (size_t k = std::max<size_t>(kN, n); k > 0; --k) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + uint32_t(j);
    ++i;
    ++j;
    if (i >= kN) {
      mt[0] = mt[kN - 1];
      i = 1;
    }
    if (j >= n) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - uint32_t(i);
    ++i;
    if (i >= kN) {
      mt[0] = mt[kN - 1];
      i = 1;
    }
  }
  mt[0] = 0x80000000U;  // MSB is 1, assuring a non-zero initial array
}

int bit_length(uint64_t n) {
  int k = 0;
  while (n) {
    ++k;
    n >>= 1;
  }
  return k;
}
}  // namespace

PythonRandom::PythonRandom(uint64_t seed) {
  // random.seed(int): the absolute value as little-endian 32-bit words (at least one).
  std::vector<uint32_t> key;
  do {
    key.push_back(uint32_t(seed & 0xffffffffU));
    seed >>= 32;
  } while (seed);
  init_by_array(mt_, key);
  index_ = kN;
}

uint32_t PythonRandom::next_uint32() {
  if (index_ >= kN) {
    for (int kk = 0; kk < kN; ++kk) {
      const uint32_t y = (mt_[kk] & kUpperMask) | (mt_[(kk + 1) % kN] & kLowerMask);
      mt_[kk] = mt_[(kk + kM) % kN] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

uint64_t PythonRandom::getrandbits(int k) {
  TORCH_CHECK(k > 0 && k <= 64, "getrandbits: k must be in (0, 64]; got ", k);
  if (k <= 32) return next_uint32() >> (32 - k);
  // Words least significant first, the last one keeping only its top bits (as CPython fills a long).
  const uint64_t low = next_uint32();
  const uint64_t high = next_uint32() >> (64 - k);
  return low | (high << 32);
}

double PythonRandom::random() {
  const uint32_t a = next_uint32() >> 5, b = next_uint32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

uint64_t PythonRandom::randbelow(uint64_t n) {
  TORCH_CHECK(n >= 1, "randbelow: n must be >= 1");
  const int k = bit_length(n);
  uint64_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

std::vector<int64_t> PythonRandom::sample(int64_t n, int64_t k) {
  TORCH_CHECK(k >= 0 && k <= n, "sample: need 0 <= k <= n; got k ", k, ", n ", n);
  std::vector<int64_t> result(static_cast<size_t>(k));
  int64_t setsize = 21;  // size of a small set minus size of an empty list
  if (k > 5) setsize += int64_t(std::pow(4.0, std::ceil(std::log(double(k * 3)) / std::log(4.0))));
  if (n <= setsize) {
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[i] = i;
    for (int64_t i = 0; i < k; ++i) {
      const auto j = static_cast<int64_t>(randbelow(uint64_t(n - i)));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      auto j = static_cast<int64_t>(randbelow(uint64_t(n)));
      while (selected.count(j)) j = static_cast<int64_t>(randbelow(uint64_t(n)));
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

}  // namespace mft::eval
