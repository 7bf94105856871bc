// One sweep point (point_run.h): [skip | resume | start over] -> train -> evaluate -> point.json.
#include "sweep/point_run.h"

#include "core/file_io.h"
#include "core/json_parse.h"
#include "eval/evaluator.h"
#include "models/registry.h"
#include "peft/lora.h"
#include "train/model_setup.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <fstream>

namespace mft::sweep {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

std::vector<int64_t> integers(const std::vector<std::string>& items) {
  std::vector<int64_t> out;
  for (const auto& s : items) out.push_back(std::stoll(s));
  return out;
}

// The largest memory/token any logged step saw (the paper's "maximum memory per token").
double max_memory_per_token(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  double best = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json j = try_parse_json(line);
    if (j.is_object()) best = std::max(best, j.value("memory_per_token_kb", 0.0));
  }
  return best;
}

json evaluate_point(const recipe::Recipe& r) {
  const auto& e = r.eval;
  eval::EvalOptions o;
  o.tasks = e.tasks;
  o.data_dir = e.data_dir;
  o.shots = integers(e.shots);
  for (const auto s : integers(e.seeds)) o.seeds.push_back(static_cast<uint64_t>(s));
  o.limit = e.limit;
  o.bootstrap_iters = e.bootstrap_iters;
  o.score.batch_size = e.batch_size;
  o.score.max_length = e.max_length;
  const std::vector<eval::Task> tasks = eval::load_tasks(o.tasks, o.data_dir);
  TunedModel m = load_tuned_model(r);
  // Evaluated in the precision it was tuned in, as `mamba-ft eval RECIPE` does.
  models::cast_model(*m.model, models::parse_dtype(r.precision.dtype));
  m.model->eval();
  json results = eval::evaluate(*m.model, *m.tokenizer, tasks, o);
  results["config"] = {{"model", m.path},  {"dtype", r.precision.dtype}, {"tasks", o.tasks}, {"data_dir", o.data_dir},
                       {"shots", o.shots}, {"seeds", o.seeds},           {"limit", o.limit}};
  return results;
}

}  // namespace

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomically(path, text, "sweep");
}

json read_point_record(const std::string& point_dir) {
  const json j = try_load_json_file((fs::path(point_dir) / "point.json").string());
  return j.is_discarded() ? json() : j;
}

TunedModel load_tuned_model(const recipe::Recipe& r) {
  TunedModel m;
  const fs::path final_dir = fs::path(r.output.dir) / "final";
  const fs::path adapter = fs::path(r.output.dir) / "adapter";
  if (fs::exists(final_dir / "config.json")) {
    m.path = final_dir.string();
    m.model = models::load_model(m.path);
  } else {
    TORCH_CHECK(fs::exists(adapter / "adapter_config.json"), "sweep: ", r.output.dir,
                " holds neither final/ nor adapter/: nothing was trained there");
    m.path = r.model.path;
    m.model = models::load_model(m.path, r.model.init_seed);
    peft::load_peft_adapter(*m.model, adapter.string());
  }
  m.model->eval();
  m.tokenizer = train::load_tokenizer_for(m.path, r.model.tokenizer);
  return m;
}

PointRunResult run_point(const recipe::SweepSpec& spec, const recipe::SweepPoint& point,
                         const TrainRunner& run_training, const std::function<void(const std::string&)>& say) {
  const auto start = std::chrono::steady_clock::now();
  recipe::Recipe r = recipe::point_recipe(spec, point);
  const std::string recipe_yaml = recipe::to_yaml(r);
  PointRunResult out;
  json& rec = out.record;
  rec = {{"id", point.id}, {"axes", json::object()}, {"config", point.config()}, {"status", "failed"}, {"error", ""},
         {"seconds", 0.0}, {"recipe", recipe_yaml},  {"train", nullptr},         {"eval", nullptr}};
  for (const auto& [axis, label] : point.axes) rec["axes"][axis] = label;

  const json before = read_point_record(r.output.dir);
  const bool same_recipe = before.is_object() && before.value("recipe", "") == recipe_yaml;
  if (same_recipe && before.value("status", "") == "ok") {
    out.record = before;
    out.skipped = true;
    return out;
  }
  const bool resume =
      same_recipe && before.value("status", "") == "interrupted" && fs::exists(fs::path(r.output.dir) / "checkpoints");
  r.output.resume = resume;
  r.output.overwrite = !resume;
  try {
    const train::TrainResult t = run_training(r);
    rec["train"] = {{"steps", t.steps},
                    {"last_loss", t.last_loss},
                    {"last_eval_loss", t.last_eval_loss},
                    {"tokens_per_s", t.tokens_per_s},
                    {"peak_rss_over_load_mb", t.peak_rss_over_load_mb},
                    {"memory_per_token_kb", max_memory_per_token(r.output.dir)}};
    if (t.interrupted) {
      rec["status"] = "interrupted";
      out.interrupted = true;
    } else {
      if (!r.eval.tasks.empty()) {
        if (say)
          say(fmt::format("evaluating {} task(s) at {} shot count(s)", r.eval.tasks.size(), r.eval.shots.size()));
        write_text_atomic((fs::path(r.output.dir) / "eval.json").string(), evaluate_point(r).dump(1) + "\n");
        rec["eval"] = "eval.json";
      }
      rec["status"] = "ok";
    }
  } catch (const c10::Error& e) {
    rec["error"] = first_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    rec["error"] = first_line(e.what());
  }
  rec["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fs::create_directories(r.output.dir);
  write_text_atomic((fs::path(r.output.dir) / "point.json").string(), rec.dump(1) + "\n");
  return out;
}

}  // namespace mft::sweep
