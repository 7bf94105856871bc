#include "eval/compare.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include "core/json_parse.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace mft::eval {
namespace {
// Accuracy (0..1) of `task` at `shots` in one seed's results, or nullopt when not evaluated.
std::optional<double> value(const nlohmann::json& shots, const std::string& k, const std::string& task,
                            const std::string& metric) {
  if (!shots.contains(k) || !shots[k]["results"].contains(task)) return std::nullopt;
  const nlohmann::json& r = shots[k]["results"][task];
  const std::string key = metric + ",none";
  if (!r.contains(key) || !r[key].is_number()) return std::nullopt;
  return r[key].get<double>();
}

std::set<std::string> tasks_of(const RunResults& r) {
  std::set<std::string> tasks;
  for (const auto& [seed, shots] : r.shots_by_seed) {
    for (const auto& [k, s] : shots.items()) {
      for (const auto& [task, v] : s["results"].items()) tasks.insert(task);
    }
  }
  return tasks;
}

std::string ci_text(const MeanCi& c) {
  return c.n > 1 ? fmt::format("{:.2f} ± {:.2f}", c.mean, c.half_width) : fmt::format("{:.2f}", c.mean);
}
}  // namespace

// Two-sided 95 % Student t critical values for 1..30 degrees of freedom; 1.96 beyond.
double t95(int64_t df) {
  static const double t[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                             2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                             2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  return df >= 1 && df <= 30 ? t[df - 1] : 1.96;
}

MeanCi mean_ci(const std::vector<double>& xs) {
  MeanCi c;
  c.n = static_cast<int64_t>(xs.size());
  if (xs.empty()) return c;
  for (const double x : xs) c.mean += x;
  c.mean /= double(xs.size());
  if (xs.size() < 2) return c;
  double ss = 0;
  for (const double x : xs) ss += (x - c.mean) * (x - c.mean);
  c.half_width = t95(c.n - 1) * std::sqrt(ss / double(c.n - 1)) / std::sqrt(double(c.n));
  return c;
}

std::string headline_metric(const std::string& task) {
  return task == "hellaswag" || task == "arc_challenge" ? "acc_norm" : "acc";
}

RunResults read_results(const std::string& path, const std::string& label) {
  std::ifstream in(path);
  TORCH_CHECK(in.good(), path, ": no such results file");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = parse_json(text.str());
  } catch (const JsonError& e) {
    TORCH_CHECK(false, path, ": ", e.what());
  }
  TORCH_CHECK(j.is_object() && j.contains("shots"), path, ": not a `mamba-ft eval` results file (no \"shots\")");
  RunResults r;
  r.label = label.empty() ? std::filesystem::path(path).stem().string() : label;
  if (j.contains("seeds")) {
    for (const auto& [seed, s] : j["seeds"].items()) r.shots_by_seed[seed] = s["shots"];
  } else {
    const std::string seed =
        j.contains("config") && j["config"].contains("seeds") ? j["config"]["seeds"][0].dump() : "1234";
    r.shots_by_seed[seed] = j["shots"];
  }
  return r;
}

std::vector<DivergenceRow> divergence(const RunResults& reference, const std::vector<RunResults>& runs,
                                      const std::string& metric) {
  std::vector<DivergenceRow> rows;
  const std::set<std::string> ref_tasks = tasks_of(reference);
  for (const RunResults& run : runs) {
    for (const std::string& task : tasks_of(run)) {
      if (!ref_tasks.count(task)) continue;
      const std::string m = metric.empty() ? headline_metric(task) : metric;
      std::vector<double> per_seed;
      for (const auto& [seed, shots] : run.shots_by_seed) {
        // The reference's same seed, else its first.
        const nlohmann::json& ref = reference.shots_by_seed.count(seed) ? reference.shots_by_seed.at(seed)
                                                                        : reference.shots_by_seed.begin()->second;
        double sum = 0;
        int n = 0;
        for (const auto& [k, s] : shots.items()) {
          const auto a = value(shots, k, task, m), b = value(ref, k, task, m);
          if (!a || !b) continue;
          sum += std::abs(*a - *b) * 100.0;
          ++n;
        }
        if (n > 0) per_seed.push_back(sum / n);
      }
      if (per_seed.empty()) continue;
      DivergenceRow row{run.label, task, m, mean_ci(per_seed), false};
      row.spike = row.divergence.mean > 1.0;
      rows.push_back(row);
    }
  }
  return rows;
}

std::vector<IclRow> icl(const RunResults& run, const RunResults* paired, const std::string& metric) {
  auto improvement = [&](const nlohmann::json& shots, const std::string& task,
                         const std::string& m) -> std::optional<double> {
    const auto zero = value(shots, "0", task, m);
    if (!zero) return std::nullopt;
    double sum = 0;
    int n = 0;
    for (const char* k : {"1", "3", "5"}) {
      if (const auto v = value(shots, k, task, m)) sum += (*v - *zero) * 100.0, ++n;
    }
    return n > 0 ? std::optional<double>(sum / n) : std::nullopt;
  };
  std::vector<IclRow> rows;
  for (const std::string& task : tasks_of(run)) {
    const std::string m = metric.empty() ? headline_metric(task) : metric;
    std::vector<double> imps, ratios;
    bool ratio_defined = paired != nullptr;
    for (const auto& [seed, shots] : run.shots_by_seed) {
      const auto imp = improvement(shots, task, m);
      if (!imp) continue;
      imps.push_back(*imp);
      if (!paired) continue;
      const nlohmann::json& other =
          paired->shots_by_seed.count(seed) ? paired->shots_by_seed.at(seed) : paired->shots_by_seed.begin()->second;
      const auto pimp = improvement(other, task, m);
      if (!pimp || std::abs(*pimp) < 1e-9) {
        ratio_defined = false;
      } else {
        ratios.push_back(100.0 * *imp / *pimp);
      }
    }
    if (imps.empty()) continue;
    IclRow row{run.label, task, m, mean_ci(imps), std::nullopt};
    if (ratio_defined && !ratios.empty()) row.ratio = mean_ci(ratios);
    rows.push_back(row);
  }
  return rows;
}

std::string divergence_markdown(const std::vector<DivergenceRow>& rows) {
  std::string s = "|Run|Task|Metric|Divergence (points)|Spike|\n|---|---|---|---:|---|\n";
  std::map<std::string, int> spikes;
  for (const auto& r : rows) {
    s += fmt::format("|{}|{}|{}|{}|{}|\n", r.run, r.task, r.metric, ci_text(r.divergence), r.spike ? "yes" : "");
    spikes[r.run] += r.spike;
  }
  int total = 0;
  for (const auto& [run, n] : spikes) total += n;
  s += fmt::format("\nSpikes (divergence > 1 point): {} of {} (task, run) pairs\n", total, rows.size());
  return s;
}

std::string divergence_csv(const std::vector<DivergenceRow>& rows) {
  std::string s = "run,task,metric,divergence_points,ci95_half_width,seeds,spike\n";
  for (const auto& r : rows) {
    s += fmt::format("{},{},{},{:.6f},{:.6f},{},{}\n", r.run, r.task, r.metric, r.divergence.mean,
                     r.divergence.half_width, r.divergence.n, int(r.spike));
  }
  return s;
}

std::string icl_markdown(const std::vector<IclRow>& rows) {
  std::string s = "|Run|Task|Metric|ICL improvement (points)|ICL ratio (%)|\n|---|---|---|---:|---:|\n";
  for (const auto& r : rows) {
    s += fmt::format("|{}|{}|{}|{}|{}|\n", r.run, r.task, r.metric, ci_text(r.improvement),
                     r.ratio ? ci_text(*r.ratio) : "");
  }
  return s;
}

std::string icl_csv(const std::vector<IclRow>& rows) {
  std::string s =
      "run,task,metric,icl_improvement_points,ci95_half_width,seeds,icl_ratio_percent,ratio_ci95_half_width\n";
  for (const auto& r : rows) {
    s += fmt::format("{},{},{},{:.6f},{:.6f},{},{},{}\n", r.run, r.task, r.metric, r.improvement.mean,
                     r.improvement.half_width, r.improvement.n, r.ratio ? fmt::format("{:.6f}", r.ratio->mean) : "",
                     r.ratio ? fmt::format("{:.6f}", r.ratio->half_width) : "");
  }
  return s;
}

}  // namespace mft::eval
