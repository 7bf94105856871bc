// A sweep's tables (aggregate.h): group finished points by configuration (every label but the seed's),
// pair them with their reference / paired-family points of the same seed, summarise over seeds.
#include "sweep/aggregate.h"

#include "eval/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace mft::sweep {
namespace {
using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSpikePoints = 1.0;  // the paper's "large deviation spike": divergence > 1 point
const std::vector<std::string> kIclShots = {"1", "3", "5"};  // the paper's improvement averages these

json ci_json(const std::vector<double>& xs) {
  const eval::MeanCi c = eval::mean_ci(xs);
  return {{"mean", c.mean}, {"ci", c.half_width}, {"n", c.n}};
}

double mean_of(const std::vector<double>& xs) {
  double s = 0;
  for (double x : xs) s += x;
  return xs.empty() ? kNaN : s / double(xs.size());
}

// The "shots" objects of an evaluation, one per few-shot seed.
std::vector<const json*> shot_sets(const json& eval) {
  std::vector<const json*> out;
  if (eval.is_null()) return out;
  if (eval.contains("seeds") && eval["seeds"].is_object()) {
    for (const auto& [seed, v] : eval["seeds"].items())
      if (v.contains("shots")) out.push_back(&v["shots"]);
  } else if (eval.contains("shots")) {
    out.push_back(&eval["shots"]);
  }
  return out;
}

std::vector<std::string> shot_keys(const json& eval) {
  std::vector<std::string> keys;
  for (const json* s : shot_sets(eval))
    for (const auto& [k, v] : s->items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::sort(keys.begin(), keys.end(),
            [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  return keys;
}

std::vector<std::string> task_names(const json& eval) {
  std::set<std::string> names;
  for (const json* s : shot_sets(eval))
    for (const auto& [k, v] : s->items())
      if (v.contains("results"))
        for (const auto& [task, r] : v["results"].items()) names.insert(task);
  return {names.begin(), names.end()};
}

struct Context {
  const recipe::SweepSpec& spec;
  std::vector<recipe::SweepPoint> points;  // all points (reference_point searches them)
  std::map<std::string, const PointOutcome*> by_id;
  std::vector<std::string> configs;                                   // in point order
  std::map<std::string, std::vector<const PointOutcome*>> by_config;  // ok points only
  std::vector<std::string> tasks, shots;

  bool ok(const PointOutcome* o) const {
    return o && o->record.is_object() && o->record.value("status", "") == "ok";  // eval may be absent
  }
  const PointOutcome* outcome(const recipe::SweepPoint* p) const {
    if (!p) return nullptr;
    const auto it = by_id.find(p->id);
    return it == by_id.end() || !ok(it->second) ? nullptr : it->second;
  }
  // The point with `point`'s labels except `axis` = `label`.
  const PointOutcome* sibling(const recipe::SweepPoint& point, const std::string& axis,
                              const std::string& label) const {
    for (const auto& q : points) {
      bool match = true;
      for (const auto& [a, l] : point.axes) match = match && q.label(a) == (a == axis ? label : l);
      if (match) return outcome(&q);
    }
    return nullptr;
  }
  json axes_of(const recipe::SweepPoint& p) const {
    json j = json::object();
    for (const auto& [a, l] : p.axes)
      if (a != spec.seed_axis) j[a] = l;
    return j;
  }
};

// Per task (and "all" = mean over tasks with a value) of f(task) -> value or NaN.
template <typename F>
std::map<std::string, double> per_task(const Context& c, F f) {
  std::map<std::string, double> out;
  std::vector<double> all;
  for (const auto& t : c.tasks) {
    const double v = f(t);
    if (std::isnan(v)) continue;
    out[t] = v;
    all.push_back(v);
  }
  if (!all.empty()) out["all"] = mean_of(all);
  return out;
}

double divergence(const Context& c, const PointOutcome& o, const PointOutcome& ref, const std::string& task) {
  std::vector<double> d;
  for (const auto& k : c.shots) {
    const double a = accuracy(o.eval, task, k), b = accuracy(ref.eval, task, k);
    if (!std::isnan(a) && !std::isnan(b)) d.push_back(std::abs(a - b));
  }
  return mean_of(d);
}

double improvement(const PointOutcome& o, const std::string& task) {
  const double zero = accuracy(o.eval, task, "0");
  std::vector<double> gains;
  for (const auto& k : kIclShots) {
    const double a = accuracy(o.eval, task, k);
    if (!std::isnan(a) && !std::isnan(zero)) gains.push_back(a - zero);
  }
  return mean_of(gains);
}

// The ICL ratio 100 * mean(a) / mean(b) over paired seeds (the paper's ratio of improvements), with a
// delta-method 95 % CI; null when the paired improvement is not distinguishable from 0 (its own 95 % CI
// contains 0): a ratio to noise is not a number anyone should read.
json ratio_json(const std::vector<double>& a, const std::vector<double>& b) {
  const auto n = static_cast<int64_t>(a.size());
  if (n == 0) return json();
  const eval::MeanCi ca = eval::mean_ci(a), cb = eval::mean_ci(b);
  if (cb.mean == 0 || std::abs(cb.mean) <= cb.half_width) return json();
  const double r = ca.mean / cb.mean;
  double half = 0;
  if (n >= 2) {
    double saa = 0, sbb = 0, sab = 0;
    for (int64_t i = 0; i < n; ++i) {
      saa += (a[i] - ca.mean) * (a[i] - ca.mean);
      sbb += (b[i] - cb.mean) * (b[i] - cb.mean);
      sab += (a[i] - ca.mean) * (b[i] - cb.mean);
    }
    const double var_r = (saa - 2 * r * sab + r * r * sbb) / double(n - 1) / (double(n) * cb.mean * cb.mean);
    half = eval::t95(n - 1) * std::sqrt(std::max(0.0, var_r));
  }
  return {{"mean", 100 * r}, {"ci", 100 * half}, {"n", n}};
}

std::vector<std::string> row_tasks(const Context& c) {
  std::vector<std::string> t = c.tasks;
  t.push_back("all");
  return t;
}

std::string metric_of(const std::string& task) {
  return task == "all" ? "headline" : eval::headline_metric(task);
}

json divergence_rows(const Context& c) {
  json rows = json::array();
  for (const auto& config : c.configs) {
    std::map<std::string, std::vector<double>> per_seed;  // task -> divergence per seed
    for (const PointOutcome* o : c.by_config.at(config)) {
      const PointOutcome* ref = c.outcome(recipe::reference_point(c.spec, c.points, *o->point));
      if (!ref) continue;
      for (const auto& [task, v] : per_task(c, [&](const std::string& t) { return divergence(c, *o, *ref, t); }))
        per_seed[task].push_back(v);
    }
    for (const auto& task : row_tasks(c)) {
      const auto it = per_seed.find(task);
      if (it == per_seed.end()) continue;
      json row = ci_json(it->second);
      row["config"] = config;
      row["axes"] = c.axes_of(*c.by_config.at(config).front()->point);
      row["task"] = task;
      row["metric"] = metric_of(task);
      row["spikes"] = std::count_if(it->second.begin(), it->second.end(), [](double v) { return v > kSpikePoints; });
      row["spike"] = row["mean"].get<double>() > kSpikePoints;
      rows.push_back(row);
    }
  }
  return rows;
}

json icl_rows(const Context& c) {
  json rows = json::array();
  const std::string& fam = c.spec.family_axis;
  for (const auto& config : c.configs) {
    const auto& outs = c.by_config.at(config);
    const recipe::SweepPoint& first = *outs.front()->point;
    const auto pair = fam.empty() ? c.spec.pairs.end() : c.spec.pairs.find(first.label(fam));
    for (const auto& task : row_tasks(c)) {
      json shots = json::object();
      for (const auto& k : c.shots) {
        std::vector<double> acc;
        for (const PointOutcome* o : outs) {
          const auto v = per_task(c, [&](const std::string& t) { return accuracy(o->eval, t, k); });
          if (v.count(task)) acc.push_back(v.at(task));
        }
        if (!acc.empty()) shots[k] = ci_json(acc);
      }
      if (shots.empty()) continue;
      std::vector<double> imps, own, paired_imps;  // own / paired_imps: the seeds that have both
      for (const PointOutcome* o : outs) {
        const auto imp = per_task(c, [&](const std::string& t) { return improvement(*o, t); });
        if (!imp.count(task)) continue;
        imps.push_back(imp.at(task));
        if (pair == c.spec.pairs.end()) continue;
        const PointOutcome* paired = c.sibling(*o->point, fam, pair->second);
        if (!paired) continue;
        const auto pimp = per_task(c, [&](const std::string& t) { return improvement(*paired, t); });
        if (pimp.count(task)) {
          own.push_back(imp.at(task));
          paired_imps.push_back(pimp.at(task));
        }
      }
      json row = {{"config", config},
                  {"axes", c.axes_of(first)},
                  {"task", task},
                  {"metric", metric_of(task)},
                  {"shots", shots}};
      row["improvement"] = imps.empty() ? json() : ci_json(imps);
      row["ratio"] = ratio_json(own, paired_imps);
      row["paired_config"] = json();
      if (pair != c.spec.pairs.end()) {
        std::string label;
        for (const auto& [a, l] : first.axes)
          if (a != c.spec.seed_axis) label += (label.empty() ? "" : " ") + (a == fam ? pair->second : l);
        row["paired_config"] = label;
      }
      rows.push_back(row);
    }
  }
  return rows;
}

json lora_spread_rows(const Context& c) {
  std::map<std::string, std::vector<double>> by_family;  // family -> mean accuracy per LoRA configuration
  // family -> seed -> that seed's mean accuracy per LoRA configuration (the spread within each seed)
  std::map<std::string, std::map<std::string, std::vector<double>>> by_family_seed;
  std::vector<std::string> families;
  for (const auto& config : c.configs) {
    const auto& outs = c.by_config.at(config);
    if (!outs.front()->lora) continue;
    const std::string family = c.spec.family_axis.empty() ? "all" : outs.front()->point->label(c.spec.family_axis);
    std::vector<double> per_seed;
    for (const PointOutcome* o : outs) {
      std::vector<double> acc;
      for (const auto& t : c.tasks)
        for (const auto& k : c.shots)
          if (const double a = accuracy(o->eval, t, k); !std::isnan(a)) acc.push_back(a);
      if (acc.empty()) continue;
      per_seed.push_back(mean_of(acc));
      by_family_seed[family][o->point->label(c.spec.seed_axis)].push_back(per_seed.back());
    }
    if (per_seed.empty()) continue;
    if (!by_family.count(family)) families.push_back(family);
    by_family[family].push_back(mean_of(per_seed));
  }
  json rows = json::array();
  for (const auto& f : families) {
    const auto& v = by_family[f];
    const double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
    const double m = mean_of(v);
    double ss = 0;
    for (double x : v) ss += (x - m) * (x - m);
    std::vector<double> seed_ranges;  // max - min over the configurations of one seed
    for (const auto& [seed, accs] : by_family_seed[f])
      if (accs.size() == v.size())
        seed_ranges.push_back(*std::max_element(accs.begin(), accs.end()) -
                              *std::min_element(accs.begin(), accs.end()));
    rows.push_back({{"family", f},
                    {"task", "all"},
                    {"configs", v.size()},
                    {"min", lo},
                    {"max", hi},
                    {"range", hi - lo},
                    {"std", v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0},
                    {"range_per_seed", ci_json(seed_ranges)}});
  }
  return rows;
}

json throughput_rows(const Context& c) {
  std::map<std::string, json> rows_by_config;
  json rows = json::array();
  auto series = [&](const std::vector<const PointOutcome*>& outs, const char* key) {
    std::vector<double> xs;
    for (const PointOutcome* o : outs)
      if (o->record.contains("train") && o->record["train"].is_object())
        xs.push_back(o->record["train"].value(key, kNaN));
    xs.erase(std::remove_if(xs.begin(), xs.end(), [](double x) { return std::isnan(x); }), xs.end());
    return xs;
  };
  for (const auto& config : c.configs) {
    const auto& outs = c.by_config.at(config);
    json row = {{"config", config}, {"axes", c.axes_of(*outs.front()->point)}};
    for (const char* key : {"tokens_per_s", "memory_per_token_kb", "peak_rss_over_load_mb"})
      row[key] = ci_json(series(outs, key));
    rows_by_config[config] = row;
  }
  for (const auto& config : c.configs) {
    json row = rows_by_config[config];
    row["speedup_vs_reference"] = json();
    row["memory_per_token_change_pct"] = json();
    const recipe::SweepPoint* ref = recipe::reference_point(c.spec, c.points, *c.by_config.at(config).front()->point);
    if (ref) {
      // The reference configuration's label: its labels but the seed's.
      std::string label;
      for (const auto& [a, l] : ref->axes)
        if (a != c.spec.seed_axis) label += (label.empty() ? "" : " ") + l;
      if (rows_by_config.count(label)) {
        const json& r = rows_by_config[label];
        const double t = row["tokens_per_s"]["mean"], rt = r["tokens_per_s"]["mean"];
        const double m = row["memory_per_token_kb"]["mean"], rm = r["memory_per_token_kb"]["mean"];
        if (rt > 0) row["speedup_vs_reference"] = t / rt;
        if (rm > 0) row["memory_per_token_change_pct"] = 100.0 * (m / rm - 1.0);
      }
    }
    rows.push_back(row);
  }
  return rows;
}

std::string ci_text(const json& v, int digits = 2) {
  if (v.is_null()) return "";
  if (v.value("n", 0) == 0) return "";
  const double ci = v["ci"];
  return ci > 0 ? fmt::format("{:.{}f} ± {:.{}f}", v["mean"].get<double>(), digits, ci, digits)
                : fmt::format("{:.{}f}", v["mean"].get<double>(), digits);
}

std::string num(const json& v, const char* fmt_spec = "{:.2f}") {
  return v.is_null() ? "" : fmt::format(fmt::runtime(fmt_spec), v.get<double>());
}

std::string csv_ci(const json& v) {
  if (v.is_null() || v.value("n", 0) == 0) return ",,";
  return fmt::format("{:.6g},{:.6g},{}", v["mean"].get<double>(), v["ci"].get<double>(), v["n"].get<int64_t>());
}

}  // namespace

double accuracy(const nlohmann::json& eval, const std::string& task, const std::string& shots) {
  const std::string metric = eval::headline_metric(task) + ",none";
  std::vector<double> xs;
  for (const json* s : shot_sets(eval)) {
    if (!s->contains(shots)) continue;
    const json& results = (*s)[shots]["results"];
    if (!results.contains(task) || !results[task].contains(metric) || !results[task][metric].is_number()) continue;
    xs.push_back(100.0 * results[task][metric].get<double>());
  }
  return mean_of(xs);
}

nlohmann::json aggregate_tables(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes) {
  Context c{spec, {}, {}, {}, {}, {}, {}};
  std::set<std::string> seen;
  for (const auto& o : outcomes)
    if (seen.insert(o.point->id).second) c.points.push_back(*o.point);
  std::set<std::string> tasks, shots;
  for (const auto& o : outcomes) {
    if (!c.ok(&o) || c.by_id.count(o.point->id)) continue;  // one finished outcome per point
    c.by_id[o.point->id] = &o;
    const std::string config = o.point->config();
    if (!c.by_config.count(config)) c.configs.push_back(config);
    c.by_config[config].push_back(&o);
    for (const auto& t : task_names(o.eval)) tasks.insert(t);
    for (const auto& k : shot_keys(o.eval)) shots.insert(k);
  }
  c.tasks.assign(tasks.begin(), tasks.end());
  c.shots.assign(shots.begin(), shots.end());
  std::sort(c.shots.begin(), c.shots.end(),
            [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  return {{"divergence", divergence_rows(c)},
          {"icl", icl_rows(c)},
          {"lora_spread", lora_spread_rows(c)},
          {"throughput", throughput_rows(c)}};
}

std::string table_markdown(const std::string& name, const nlohmann::json& rows) {
  std::string s;
  if (name == "divergence") {
    s = "|Configuration|Task|Divergence (points, mean ± 95 % CI)|Seeds|Seeds with a spike (> 1 "
        "point)|\n|---|---|---:|---:|---:|\n";
    for (const auto& r : rows)
      s += fmt::format("|{}|{}|{}{}|{}|{}|\n", r["config"].get<std::string>(), r["task"].get<std::string>(), ci_text(r),
                       r["spike"].get<bool>() ? " **spike**" : "", r["n"].get<int64_t>(), r["spikes"].get<int64_t>());
  } else if (name == "icl") {
    std::set<std::string> shot_set;
    for (const auto& r : rows)
      for (const auto& [k, v] : r["shots"].items()) shot_set.insert(k);
    std::vector<std::string> shots(shot_set.begin(), shot_set.end());
    std::sort(shots.begin(), shots.end(),
              [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
    s = "|Configuration|Task|";
    for (const auto& k : shots) s += k + "-shot acc (%)|";
    s += "ICL improvement (points)|ICL ratio vs pair (%)|\n|---|---|";
    for (size_t i = 0; i < shots.size(); ++i) s += "---:|";
    s += "---:|---:|\n";
    for (const auto& r : rows) {
      s += fmt::format("|{}|{}|", r["config"].get<std::string>(), r["task"].get<std::string>());
      for (const auto& k : shots) s += (r["shots"].contains(k) ? ci_text(r["shots"][k], 1) : "") + "|";
      s += fmt::format(
          "{}|{}|\n", ci_text(r["improvement"]),
          r["ratio"].is_null() ? "" : ci_text(r["ratio"], 0) + " (vs " + r["paired_config"].get<std::string>() + ")");
    }
  } else if (name == "lora_spread") {
    s = "|Family|LoRA configurations|Lowest mean acc (%)|Highest (%)|Spread of the means (points)|Std (points)|"
        "Spread within a seed (points, mean ± 95 % CI)|\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& r : rows)
      s += fmt::format("|{}|{}|{:.2f}|{:.2f}|{:.2f}|{:.2f}|{}|\n", r["family"].get<std::string>(),
                       r["configs"].get<int64_t>(), r["min"].get<double>(), r["max"].get<double>(),
                       r["range"].get<double>(), r["std"].get<double>(), ci_text(r.value("range_per_seed", json())));
  } else if (name == "throughput") {
    s = "|Configuration|Tokens/s|Max memory/token (KiB)|Peak memory over the loaded model (MiB)|Tokens/s vs reference|"
        "Memory/token vs reference|\n|---|---:|---:|---:|---:|---:|\n";
    for (const auto& r : rows)
      s += fmt::format("|{}|{}|{}|{}|{}|{}|\n", r["config"].get<std::string>(), ci_text(r["tokens_per_s"], 0),
                       ci_text(r["memory_per_token_kb"], 1), ci_text(r["peak_rss_over_load_mb"], 0),
                       num(r["speedup_vs_reference"], "{:.2f}×"), num(r["memory_per_token_change_pct"], "{:+.1f} %"));
  } else {
    throw std::runtime_error("sweep: no table named " + name);
  }
  return s;
}

std::string table_csv(const std::string& name, const nlohmann::json& rows) {
  auto q = [](const std::string& v) { return v.find_first_of(",\"") == std::string::npos ? v : "\"" + v + "\""; };
  std::string s;
  if (name == "divergence") {
    s = "config,task,metric,divergence_points,ci95_half_width,seeds,spikes\n";
    for (const auto& r : rows)
      s += fmt::format("{},{},{},{},{}\n", q(r["config"]), q(r["task"]), r["metric"].get<std::string>(), csv_ci(r),
                       r["spikes"].get<int64_t>());
  } else if (name == "icl") {
    s = "config,task,metric,shots,accuracy_percent,ci95_half_width,seeds,icl_improvement_points,improvement_ci95,"
        "improvement_seeds,icl_ratio_percent,ratio_ci95,ratio_seeds,paired_config\n";
    for (const auto& r : rows)
      for (const auto& [k, v] : r["shots"].items())
        s += fmt::format("{},{},{},{},{},{},{},{}\n", q(r["config"]), q(r["task"]), r["metric"].get<std::string>(), k,
                         csv_ci(v), csv_ci(r["improvement"]), csv_ci(r["ratio"]),
                         r["paired_config"].is_null() ? "" : q(r["paired_config"]));
  } else if (name == "lora_spread") {
    s = "family,lora_configs,min_accuracy_percent,max_accuracy_percent,spread_points,std_points,"
        "spread_within_seed_points,ci95_half_width,seeds\n";
    for (const auto& r : rows)
      s += fmt::format("{},{},{:.6g},{:.6g},{:.6g},{:.6g},{}\n", q(r["family"]), r["configs"].get<int64_t>(),
                       r["min"].get<double>(), r["max"].get<double>(), r["range"].get<double>(), r["std"].get<double>(),
                       csv_ci(r.value("range_per_seed", json())));
  } else if (name == "throughput") {
    s = "config,tokens_per_s,ci95,seeds,memory_per_token_kb,ci95,seeds,peak_rss_over_load_mb,ci95,seeds,"
        "speedup_vs_reference,memory_per_token_change_pct\n";
    for (const auto& r : rows)
      s += fmt::format("{},{},{},{},{},{}\n", q(r["config"]), csv_ci(r["tokens_per_s"]),
                       csv_ci(r["memory_per_token_kb"]), csv_ci(r["peak_rss_over_load_mb"]),
                       num(r["speedup_vs_reference"], "{:.6g}"), num(r["memory_per_token_change_pct"], "{:.6g}"));
  } else {
    throw std::runtime_error("sweep: no table named " + name);
  }
  return s;
}

}  // namespace mft::sweep
