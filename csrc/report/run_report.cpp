// The report of one `mamba-ft train` output folder: what it holds among metrics.jsonl (training curves),
// eval.json (ICL accuracy by shots) and stability/*.json (the stability sections).
#include "report/html.h"
#include "report/report_data.h"
#include "report/report_kinds.h"
#include "report/stability_report.h"
#include "report/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace mft::report {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// 95% normal-approximation interval half-width from a standard error (lm-eval reports standard errors).
constexpr double kZ95 = 1.96;

std::string overview(const fs::path& dir, const TrainingLog* log) {
  std::string body = fmt::format("<p class=\"meta\">Folder <code>{}</code>", xml_escape(dir.string()));
  if (log != nullptr && !log->step.empty()) {
    body += fmt::format(" · metrics written {} · {} logged steps (last step {}) · last loss {}",
                        xml_escape(file_date(dir / "metrics.jsonl")), log->step.size(), number(log->step.back()),
                        number(log->loss.back()));
    if (!log->eval_loss.empty()) body += " · last eval loss " + number(log->eval_loss.back());
  }
  body += "</p>\n";
  std::ifstream recipe(dir / "recipe.yaml", std::ios::binary);
  if (recipe) {
    std::stringstream text;
    text << recipe.rdbuf();
    body += "<details><summary>Resolved recipe (recipe.yaml)</summary>\n<pre>" + xml_escape(text.str()) +
            "</pre></details>\n";
  }
  return fmt::format("<header id=\"overview\">\n<h1>Run report: {}</h1>\n{}</header>\n",
                     xml_escape(fs::absolute(dir).lexically_normal().filename().string()), body);
}

std::string training(const TrainingLog& log) {
  LineChart loss{"Training loss", "step", "loss", {}, false, ErrorStyle::bars, {}, false, 0, ""};
  loss.series.push_back({"train loss", log.step, log.loss, {}, false, 0});
  if (!log.eval_loss.empty()) loss.series.push_back({"eval loss", log.eval_step, log.eval_loss, {}, true, 1});
  LineChart lr{"Learning rate", "step", "learning rate", {}, false, ErrorStyle::bars, {}, false, 0, ""};
  lr.series.push_back({"lr", log.step, log.lr, {}, false, 2});
  LineChart grad{"Gradient norm (before clipping)", "step", "grad norm", {}, false, ErrorStyle::bars, {}, false, 0, ""};
  grad.series.push_back({"grad norm", log.step, log.grad_norm, {}, false, 3});
  LineChart speed{"Throughput", "step", "tokens / s", {}, false, ErrorStyle::bars, {}, false, 0, ""};
  speed.series.push_back({"tokens/s", log.step, log.tokens_per_s, {}, false, 4});
  return section(
      "training", "Training curves",
      chart_grid({render_line_chart(loss), render_line_chart(lr), render_line_chart(grad), render_line_chart(speed)}));
}

std::string icl(const fs::path& path) {
  const json results = read_json(path);
  const json shots = results.value("shots", json::object());
  std::vector<std::pair<double, std::string>> order;  // shot keys sorted numerically
  for (const auto& [k, _] : shots.items()) order.emplace_back(std::atof(k.c_str()), k);
  std::sort(order.begin(), order.end());
  std::vector<std::string> tasks;
  for (const auto& [_, k] : order) {
    const json results_k = shots[k].value("results", json::object());  // named: items() must not outlive it
    for (const auto& [task, __] : results_k.items())
      if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) tasks.push_back(task);
  }
  LineChart chart{"ICL accuracy by shots", "shots", "acc (%)", {}, false, ErrorStyle::band, {}, false, 0, ""};
  Table table{{"Task"}, {}, {false}};
  for (const auto& [x, k] : order) {
    chart.x_ticks.push_back(x);
    table.header.push_back(k + "-shot");
    table.numeric.push_back(true);
  }
  for (const auto& task : tasks) {
    Series line{task, {}, {}, {}, false, -1};
    std::vector<std::string> row{xml_escape(task)};
    for (const auto& [x, k] : order) {
      const json r = shots[k].value("results", json::object()).value(task, json());
      const double acc = 100 * num(r, "acc,none"), ci = 100 * kZ95 * num(r, "acc_stderr,none");
      line.x.push_back(x);
      line.y.push_back(acc);
      line.err.push_back(ci);
      row.push_back(mean_pm(acc, ci, 1));
    }
    chart.series.push_back(std::move(line));
    table.rows.push_back(std::move(row));
  }
  return section("icl", "In-context learning",
                 note(fmt::format("{}: accuracy (acc) per task and number of shots; bands and ± are 95% normal "
                                  "intervals from lm-eval's standard errors.",
                                  path.filename().string())) +
                     chart_grid({render_line_chart(chart)}) + render_table(table));
}

// stability/*.json of the run, labelled by the model or preset they analysed.
std::vector<StabilityInput> stability_inputs(const fs::path& dir) {
  std::vector<StabilityInput> inputs;
  if (!fs::is_directory(dir / "stability")) return inputs;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir / "stability"))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const json j = read_json(f);
    const std::string kind = str(j, "kind");
    std::string label = kind == "perturbation" ? str(j.value("result", json::object()), "preset") : str(j, "model");
    if (label.empty()) label = f.stem().string();
    if (kind == "perturbation" || kind == "lyapunov" || kind == "precision") inputs.push_back({label, kind, f});
  }
  return inputs;
}

}  // namespace

std::string run_report(const fs::path& dir) {
  std::string body;
  const bool has_metrics = fs::exists(dir / "metrics.jsonl");
  TrainingLog log;
  if (has_metrics) log = read_training_log(dir / "metrics.jsonl");
  body += overview(dir, has_metrics ? &log : nullptr);
  if (has_metrics) body += training(log);
  if (fs::exists(dir / "eval.json")) body += icl(dir / "eval.json");
  const auto stability = stability_inputs(dir);
  if (!stability.empty()) body += stability_sections(stability);
  return page("mamba-ft run: " + fs::absolute(dir).lexically_normal().filename().string(), body);
}

}  // namespace mft::report
