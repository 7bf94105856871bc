#include "eval/metrics.h"

#include "eval/python_random.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

namespace mft::eval {

int64_t python_len(const std::string& s) {
  int64_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // count lead bytes
  return n;
}

int64_t argmax(const std::vector<double>& values, const std::vector<double>& divisors) {
  TORCH_CHECK(!values.empty(), "argmax of no values");
  int64_t best = 0;
  double best_value = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < values.size(); ++i) {
    const double v = divisors.empty() ? values[i] : values[i] / divisors[i];
    if (i == 0 || v > best_value) {
      best = static_cast<int64_t>(i);
      best_value = v;
    }
  }
  return best;
}

double mean(const std::vector<double>& xs) {
  TORCH_CHECK(!xs.empty(), "mean of no values");
  double s = 0;
  for (const double x : xs) s += x;
  return s / double(xs.size());
}

double sample_stddev(const std::vector<double>& xs) {
  if (xs.size() < 2) return std::nan("");
  const double mu = mean(xs);
  double s = 0;
  for (const double x : xs) s += (x - mu) * (x - mu);
  return std::sqrt(s / double(xs.size() - 1));
}

double perplexity(const std::vector<double>& lls) {
  return std::exp(-mean(lls));
}

double bootstrap_perplexity_stderr(const std::vector<double>& lls, int64_t iters) {
  if (lls.size() < 2 || iters <= 0) return std::nan("");
  const int64_t chunk = std::min<int64_t>(1000, iters);
  const auto n = static_cast<int64_t>(lls.size());
  std::vector<double> replicates;
  replicates.reserve(static_cast<size_t>(iters));
  for (int64_t i = 0; i < iters / chunk; ++i) {
    PythonRandom rnd(static_cast<uint64_t>(i));
    for (int64_t r = 0; r < chunk; ++r) {
      // rnd.choices(xs, k=len(xs)): population[floor(random() * n)], k times.
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += lls[static_cast<size_t>(std::floor(rnd.random() * double(n)))];
      replicates.push_back(std::exp(-(s / double(n))));
    }
  }
  return sample_stddev(replicates);
}

void put_metric(nlohmann::json& out, const std::string& name, const MetricValue& m) {
  out[name + ",none"] = m.value;
  if (std::isnan(m.stderr_value)) {
    out[name + "_stderr,none"] = "N/A";
  } else {
    out[name + "_stderr,none"] = m.stderr_value;
  }
}

MetricValue mean_metric(const std::vector<double>& xs) {
  return {mean(xs), sample_stddev(xs) / std::sqrt(double(xs.size()))};
}

MetricValue pooled(const std::vector<MetricValue>& parts, const std::vector<int64_t>& sizes) {
  TORCH_CHECK(parts.size() == sizes.size() && !parts.empty(), "pooled: one size per part");
  double total = 0, weighted = 0, var = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    total += double(sizes[i]);
    weighted += parts[i].value * double(sizes[i]);
    var += double(sizes[i] - 1) * parts[i].stderr_value * parts[i].stderr_value * double(sizes[i]);
  }
  const double pooled_var = var / (total - double(parts.size()));
  return {weighted / total, std::sqrt(pooled_var / total)};
}

}  // namespace mft::eval
