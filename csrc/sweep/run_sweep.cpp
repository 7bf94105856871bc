// `mamba-ft sweep` end to end (run_sweep.h).
#include "sweep/run_sweep.h"

#include "core/json_parse.h"
#include "sweep/aggregate.h"
#include "sweep/point_run.h"
#include "sweep/stability_stage.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace mft::sweep {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const std::vector<std::string> kTables = {"divergence", "icl", "lora_spread", "throughput"};
const char* kPreparedMarker = "prepared.json";  // in a prepare run's output folder once it finished

json read_json(const fs::path& path) {
  const json j = try_load_json_file(path.string());
  return j.is_discarded() ? json() : j;
}

void say(const SweepHooks& hooks, const std::string& m) {
  if (hooks.on_message) hooks.on_message(m);
}

// Prepare runs are done once: skipped when their folder holds the marker with the same recipe.
void prepare(const recipe::SweepSpec& spec, const SweepHooks& hooks, const TrainRunner& run_training) {
  for (recipe::Recipe r : recipe::prepare_recipes(spec)) {
    const std::string yaml = recipe::to_yaml(r);
    const fs::path marker = fs::path(r.output.dir) / kPreparedMarker;
    const json done = read_json(marker);
    if (done.is_object() && done.value("recipe", "") == yaml) {
      say(hooks, fmt::format("prepare {}: done earlier ({})", r.name, r.output.dir));
      continue;
    }
    say(hooks, fmt::format("prepare {}: {} {} {} steps -> {}", r.name, r.model.path, r.peft.method, r.trainer.max_steps,
                           r.output.dir));
    r.output.overwrite = true;
    r.output.resume = false;
    const train::TrainResult t = run_training(r);
    if (t.interrupted) throw std::runtime_error("sweep: interrupted while preparing " + r.name);
    write_text_atomic(marker.string(), json{{"recipe", yaml}, {"final", t.final_dir}}.dump(1) + "\n");
  }
}

std::vector<PointOutcome> collect(const recipe::SweepSpec& spec, const std::vector<recipe::SweepPoint>& points) {
  std::vector<PointOutcome> out;
  for (const auto& p : points) {
    PointOutcome o;
    o.point = &p;
    const recipe::Recipe r = recipe::point_recipe(spec, p);
    o.lora = r.peft.method == "lora";
    o.record = read_point_record(r.output.dir);
    // A record of another recipe (the sweep file changed since) does not count.
    if (o.record.is_object() && o.record.value("recipe", "") != recipe::to_yaml(r)) o.record = nullptr;
    if (o.record.is_object() && o.record["eval"].is_string())
      o.eval = read_json(fs::path(r.output.dir) / o.record["eval"].get<std::string>());
    out.push_back(std::move(o));
  }
  return out;
}

json point_entry(const PointOutcome& o) {
  const std::string dir = (fs::path("points") / o.point->id).string();
  json axes = json::object();
  for (const auto& [a, l] : o.point->axes) axes[a] = l;
  json j = {{"id", o.point->id},   {"dir", dir},  {"axes", axes},   {"config", o.point->config()},
            {"status", "pending"}, {"error", ""}, {"seconds", 0.0}, {"train", nullptr},
            {"eval", nullptr}};
  if (o.record.is_object()) {
    for (const char* k : {"status", "error", "seconds", "train"}) j[k] = o.record.value(k, json());
    if (o.record["eval"].is_string()) j["eval"] = dir + "/" + o.record["eval"].get<std::string>();
  }
  return j;
}

SweepResult write_summary(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes,
                          const json& stability, double elapsed_s) {
  SweepResult res;
  json summary = {{"format", "mamba-ft-sweep/1"}, {"name", spec.name}, {"sweep_file", spec.source}};
  summary["axes"] = json::array();
  for (const auto& a : spec.axes) {
    json values = json::array();
    for (const auto& v : a.values) values.push_back(v.label);
    summary["axes"].push_back({{"name", a.name}, {"values", values}});
  }
  summary["family_axis"] = spec.family_axis.empty() ? json() : json(spec.family_axis);
  summary["seed_axis"] = spec.seed_axis.empty() ? json() : json(spec.seed_axis);
  summary["reference"] = spec.reference.empty() ? json() : json(spec.reference);
  summary["pairs"] = json(spec.pairs);
  summary["points"] = json::array();
  for (const auto& o : outcomes) {
    summary["points"].push_back(point_entry(o));
    const std::string status = summary["points"].back()["status"];
    if (status == "ok")
      ++res.ok;
    else if (status == "failed")
      ++res.failed;
    else
      ++res.pending;
  }
  summary["tables"] = aggregate_tables(spec, outcomes);
  summary["stability"] = stability;
  summary["elapsed_s"] = elapsed_s;

  const fs::path tables = fs::path(spec.output_dir) / "tables";
  fs::create_directories(tables);
  std::string md = fmt::format("# Sweep {}\n\n{} points: {} ok, {} failed, {} pending.\n", spec.name, outcomes.size(),
                               res.ok, res.failed, res.pending);
  const std::map<std::string, std::string> titles = {{"divergence", "Divergence from the reference configuration"},
                                                     {"icl", "ICL accuracy by shots, improvement and ratio"},
                                                     {"lora_spread", "Spread over LoRA configurations"},
                                                     {"throughput", "Training throughput and memory"}};
  for (const auto& name : kTables) {
    const json& rows = summary["tables"][name];
    write_text_atomic((tables / (name + ".md")).string(), table_markdown(name, rows));
    write_text_atomic((tables / (name + ".csv")).string(), table_csv(name, rows));
    md += fmt::format("\n## {}\n\n{}", titles.at(name), rows.empty() ? "(no rows)\n" : table_markdown(name, rows));
  }
  for (const auto& p : summary["points"])
    if (p["status"] == "failed")
      md += fmt::format("\nFailed: {}: {}\n", p["id"].get<std::string>(), p["error"].get<std::string>());
  write_text_atomic((fs::path(spec.output_dir) / "summary.md").string(), md);
  res.summary_path = (fs::path(spec.output_dir) / "summary.json").string();
  write_text_atomic(res.summary_path, summary.dump(1) + "\n");
  res.summary = std::move(summary);
  return res;
}

}  // namespace

SweepResult run_sweep(const recipe::SweepSpec& spec, const std::string& sweep_file_text, const SweepHooks& hooks) {
  const auto start = std::chrono::steady_clock::now();
  fs::create_directories(spec.output_dir);
  std::string header = "# " + spec.source + " as run by `mamba-ft sweep`";
  for (const auto& o : spec.base_overrides) header += " " + o;
  for (const auto& o : spec.prepare_overrides) header += " prepare." + o;
  write_text_atomic((fs::path(spec.output_dir) / "sweep.yaml").string(), header + "\n" + sweep_file_text);
  const TrainRunner run_training =
      hooks.run_training ? TrainRunner(hooks.run_training)
                         : TrainRunner([&](const recipe::Recipe& r) { return train::train(r, hooks.train); });
  prepare(spec, hooks, run_training);

  const std::vector<recipe::SweepPoint> points = recipe::sweep_points(spec);
  size_t skipped = 0;
  bool interrupted = false;
  for (size_t i = 0; i < points.size() && !interrupted; ++i) {
    if (hooks.train.stop && hooks.train.stop->load()) {
      interrupted = true;
      break;
    }
    const recipe::Recipe r = recipe::point_recipe(spec, points[i]);
    const json before = read_point_record(r.output.dir);
    const bool same = before.is_object() && before.value("recipe", "") == recipe::to_yaml(r);
    const std::string what = !same                                         ? "run"
                             : before.value("status", "") == "ok"          ? "skip"
                             : before.value("status", "") == "interrupted" ? "resume"
                                                                           : "run";
    if (hooks.on_point) hooks.on_point(i + 1, points.size(), points[i], what);
    const PointRunResult res = run_point(spec, points[i], run_training, hooks.on_message);
    skipped += res.skipped ? 1 : 0;
    if (hooks.on_point_done) hooks.on_point_done(res.record, res.skipped);
    if (res.record.value("status", "") == "failed")
      say(hooks, fmt::format("point {} failed: {}", points[i].id, res.record.value("error", "")));
    interrupted = res.interrupted;
  }
  std::vector<PointOutcome> outcomes = collect(spec, points);
  json stability = json::object();
  const bool any_ok = std::any_of(outcomes.begin(), outcomes.end(), [](const PointOutcome& o) {
    return o.record.is_object() && o.record.value("status", "") == "ok";
  });
  if (!interrupted && any_ok) stability = run_stability(spec, outcomes, [&](const std::string& m) { say(hooks, m); });
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SweepResult result = write_summary(spec, outcomes, stability, elapsed);
  result.skipped = skipped;
  result.interrupted = interrupted;
  return result;
}

SweepResult summarize_sweep(const recipe::SweepSpec& spec) {
  const std::vector<recipe::SweepPoint> points = recipe::sweep_points(spec);
  std::vector<PointOutcome> outcomes = collect(spec, points);
  // Stability results already written (their files, whatever their settings).
  json stability = json::object();
  for (const auto& a : spec.axes) {
    if (a.name != spec.family_axis) continue;
    for (const auto& v : a.values) {
      for (const auto& [key, file] : std::map<std::string, std::string>{
               {"perturbation", "perturb.json"}, {"lyapunov", "lyapunov.json"}, {"precision", "precision.json"}}) {
        const fs::path rel = fs::path("stability") / v.label / file;
        if (fs::exists(fs::path(spec.output_dir) / rel)) stability[v.label][key] = rel.string();
      }
    }
  }
  fs::create_directories(spec.output_dir);
  // The time the sweep took to run stays what its last run recorded.
  const json before = read_json(fs::path(spec.output_dir) / "summary.json");
  return write_summary(spec, outcomes, stability, before.is_object() ? before.value("elapsed_s", 0.0) : 0.0);
}

}  // namespace mft::sweep
