#pragma once
// CLI11 validators with plain messages: "--threads: must be an integer from 1 to 8; got 0" (CLI11's own
// ranges print their bounds as 309-digit doubles). Sizes have upper bounds too: far above any real use,
// low enough that a typo cannot ask for terabytes or hang on a million threads.
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

namespace mft::app {

// Token counts (sequence lengths, new tokens): 2^20, far beyond any model's context here.
constexpr int64_t kMaxTokens = int64_t(1) << 20;
// Sequences per batch and repeats.
constexpr int64_t kMaxBatch = 65536;
constexpr int64_t kMaxRepeats = 100000;

// An integer option in [lo, hi].
inline CLI::Validator int_in(int64_t lo, int64_t hi) {
  const std::string expect = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, expect](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || v < lo || v > hi) {
          return "must be " + expect + "; got '" + s.substr(0, 40) + "'";
        }
        return std::string();
      },
      "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// A finite number option in [lo, hi] (bounds printed as given).
inline CLI::Validator number_in(double lo, double hi, const std::string& lo_text, const std::string& hi_text) {
  const std::string expect = "a number from " + lo_text + " to " + hi_text;
  return CLI::Validator(
      [lo, hi, expect](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < lo || v > hi) {
          return "must be " + expect + "; got '" + s.substr(0, 40) + "'";
        }
        return std::string();
      },
      "NUMBER in [" + lo_text + ", " + hi_text + "]");
}

}  // namespace mft::app
