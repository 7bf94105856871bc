// The report of a `mamba-ft sweep` folder, rendered from summary.json: overview, training curves (mean over
// seeds), divergence, ICL by shots, LoRA spread, throughput, and the stability analyses it points to.
#include "report/html.h"
#include "report/report_data.h"
#include "report/report_kinds.h"
#include "report/stability_report.h"
#include "report/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace mft::report {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Sweep {
  fs::path dir;
  json summary;
  std::string family_axis, seed_axis;   // "" when the sweep has none
  std::vector<std::string> axis_names;  // in summary order
  std::vector<std::string> families;    // in the family axis's order ("all" without a family axis)

  std::string family_of(const json& axes) const { return family_axis.empty() ? "all" : str(axes, family_axis, "all"); }
  // The configuration without its family: what distinguishes bars and lines within one family's chart.
  std::string variant_of(const json& axes) const {
    std::string s;
    for (const auto& a : axis_names) {
      if (a == family_axis || a == seed_axis || !axes.contains(a)) continue;
      s += (s.empty() ? "" : " ") + str(axes, a);
    }
    return s.empty() ? "all" : s;
  }
  const json& table(const char* name) const {
    static const json empty = json::array();
    const auto t = summary.find("tables");
    if (t == summary.end() || !t->is_object() || !t->contains(name) || !(*t)[name].is_array()) return empty;
    return (*t)[name];
  }
};

// Adds s to v unless it is there already, keeping first-seen order.
void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

size_t index_of(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

Sweep load_sweep(const fs::path& dir) {
  Sweep s;
  s.dir = dir;
  s.summary = read_json(dir / "summary.json");
  if (!s.summary.is_object())
    throw std::runtime_error(fmt::format("report: {} is not a JSON object", (dir / "summary.json").string()));
  s.family_axis = str(s.summary, "family_axis");
  s.seed_axis = str(s.summary, "seed_axis");
  for (const auto& a : s.summary.value("axes", json::array())) {
    s.axis_names.push_back(str(a, "name"));
    if (s.axis_names.back() == s.family_axis)
      for (const auto& v : a.value("values", json::array()))
        add_unique(s.families, v.is_string() ? v.get<std::string>() : v.dump());
  }
  if (s.family_axis.empty()) s.families = {"all"};
  return s;
}

std::string status_span(const std::string& status) {
  const char* cls = status == "ok" ? "ok" : status == "failed" ? "warn" : "note";
  return fmt::format("<span class=\"{}\">{}</span>", cls, xml_escape(status));
}

std::string overview(const Sweep& s) {
  const json& points = s.summary.value("points", json::array());
  int ok = 0, failed = 0, pending = 0;
  std::string failures;
  Table table{{"Point", "Status", "Time", "Steps", "Last loss", "Last eval loss", "Tokens/s", "Memory/token (KB)"},
              {},
              {false, false, true, true, true, true, true, true}};
  for (const auto& p : points) {
    const std::string status = str(p, "status", "pending");
    (status == "ok" ? ok : status == "failed" ? failed : pending) += 1;
    if (status == "failed")
      failures += fmt::format("<li><code>{}</code>: {}</li>\n", xml_escape(str(p, "id")),
                              xml_escape(str(p, "error", "(no message)")));
    const json train = p.value("train", json());
    table.rows.push_back({xml_escape(str(p, "id")), status_span(status), duration(num(p, "seconds")),
                          number(num(train, "steps")), number(num(train, "last_loss")),
                          number(num(train, "last_eval_loss")), number(num(train, "tokens_per_s")),
                          number(num(train, "memory_per_token_kb"))});
  }
  std::string body = fmt::format(
      "<p class=\"meta\">Sweep file <code>{}</code> · summary written {} · elapsed {} · folder <code>{}</code></p>\n"
      "<p>Points: <span class=\"ok\">{} ok</span>, <span class=\"{}\">{} failed</span>, {} pending (of {}).</p>\n",
      xml_escape(str(s.summary, "sweep_file", "?")), xml_escape(file_date(s.dir / "summary.json")),
      duration(num(s.summary, "elapsed_s")), xml_escape(s.dir.string()), ok, failed > 0 ? "warn" : "note", failed,
      pending, points.size());
  if (!failures.empty()) body += "<h3>Failed points</h3>\n<ul class=\"failures\">\n" + failures + "</ul>\n";
  body += "<details><summary>All points</summary>\n" + render_table(table) + "</details>\n";
  body +=
      "<nav><a href=\"#training\">Training</a><a href=\"#divergence\">Divergence</a><a href=\"#icl\">ICL</a>"
      "<a href=\"#lora-spread\">LoRA spread</a><a href=\"#throughput\">Throughput</a>"
      "<a href=\"#stability-perturbation\">Perturbation</a><a href=\"#stability-lyapunov\">Lyapunov</a>"
      "<a href=\"#stability-precision\">Precision</a></nav>\n";
  return fmt::format("<header id=\"overview\">\n<h1>Sweep report: {}</h1>\n{}</header>\n",
                     xml_escape(str(s.summary, "name", s.dir.filename().string())), body);
}

// Loss per step, averaged over the points (seeds) of one configuration.
struct MeanCurve {
  std::map<double, std::pair<double, int>> loss, eval;  // step -> (sum, count)
  void add(std::map<double, std::pair<double, int>>& m, double step, double v) {
    if (!std::isfinite(step) || !std::isfinite(v)) return;
    m[step].first += v;
    m[step].second += 1;
  }
  static Series series(const std::map<double, std::pair<double, int>>& m, std::string name, bool markers, int colour) {
    Series s{std::move(name), {}, {}, {}, markers, colour};
    for (const auto& [step, sum] : m) {
      s.x.push_back(step);
      s.y.push_back(sum.first / sum.second);
    }
    return s;
  }
};

std::string training(const Sweep& s) {
  std::map<std::string, std::vector<std::string>> configs;  // family -> configs in order
  std::map<std::string, MeanCurve> curves;                  // config -> curve
  std::map<std::string, int> seeds;
  for (const auto& p : s.summary.value("points", json::array())) {
    const fs::path metrics = s.dir / str(p, "dir") / "metrics.jsonl";
    if (str(p, "dir").empty() || !fs::exists(metrics)) continue;
    const std::string config = str(p, "config", str(p, "id"));
    add_unique(configs[s.family_of(p.value("axes", json::object()))], config);
    const TrainingLog log = read_training_log(metrics);
    auto& c = curves[config];
    for (size_t i = 0; i < log.step.size(); ++i) c.add(c.loss, log.step[i], log.loss[i]);
    for (size_t i = 0; i < log.eval_step.size(); ++i) c.add(c.eval, log.eval_step[i], log.eval_loss[i]);
    seeds[config] += 1;
  }
  std::vector<std::string> charts;
  for (const auto& family : s.families) {
    if (!configs.count(family)) continue;
    LineChart chart;
    chart.title = fmt::format("{}: training loss{}", family, s.seed_axis.empty() ? "" : " (mean over seeds)");
    chart.x_label = "step";
    chart.y_label = "loss";
    const auto& names = configs[family];
    for (size_t k = 0; k < names.size(); ++k) {
      const auto& c = curves[names[k]];
      chart.series.push_back(MeanCurve::series(c.loss, names[k], false, static_cast<int>(k)));
      if (!c.eval.empty())
        chart.series.push_back(MeanCurve::series(c.eval, names[k] + " (eval)", true, static_cast<int>(k)));
    }
    charts.push_back(render_line_chart(chart));
  }
  std::string body = note("Training loss of each configuration per logged step; dots: eval loss.");
  if (charts.empty()) body += note("No point has a metrics.jsonl yet.");
  return section("training", "Training curves", body + chart_grid(charts));
}

std::string divergence(const Sweep& s) {
  const json& rows = s.table("divergence");
  if (rows.empty())
    return section("divergence", "Divergence from the reference",
                   note("No divergence table (the sweep has no reference point or no evaluations)."));
  std::vector<std::string> configs, tasks;
  std::map<std::pair<std::string, std::string>, const json*> cell;
  for (const auto& r : rows) {
    add_unique(configs, str(r, "config"));
    add_unique(tasks, str(r, "task"));
    cell[{str(r, "config"), str(r, "task")}] = &r;
  }
  // "all" (the mean over tasks) last.
  std::stable_partition(tasks.begin(), tasks.end(), [](const std::string& t) { return t != "all"; });
  Table table;
  table.header = {"Config"};
  table.numeric = {false};
  for (const auto& t : tasks) {
    table.header.push_back(t);
    table.numeric.push_back(true);
  }
  for (const auto& c : configs) {
    std::vector<std::string> row{xml_escape(c)};
    for (const auto& t : tasks) {
      const auto it = cell.find({c, t});
      if (it == cell.end()) {
        row.push_back("–");
        continue;
      }
      const json& r = *it->second;
      const bool spike = r.value("spike", false);
      const double spikes = num(r, "spikes");
      row.push_back(fmt::format("<span class=\"{}\">{}</span>{}", spike ? "warn" : "",
                                mean_pm(num(r, "mean"), num(r, "ci")),
                                std::isfinite(spikes) && spikes > 0
                                    ? fmt::format(" <small>({:g} spike{})</small>", spikes, spikes == 1 ? "" : "s")
                                    : ""));
    }
    table.rows.push_back(std::move(row));
  }
  // Bar chart of the mean over tasks, grouped by family.
  BarChart chart;
  chart.title = "Divergence from the reference, mean over tasks (95% CI)";
  chart.x_label = s.family_axis.empty() ? "" : s.family_axis;
  chart.y_label = "divergence (points)";
  for (const auto& r : rows) {
    if (str(r, "task") != "all") continue;
    add_unique(chart.series, s.variant_of(r.value("axes", json::object())));
    add_unique(chart.groups, s.family_of(r.value("axes", json::object())));
  }
  std::stable_sort(chart.groups.begin(), chart.groups.end(), [&](const std::string& a, const std::string& b) {
    return index_of(s.families, a) < index_of(s.families, b);
  });
  chart.value.assign(chart.series.size(), std::vector<double>(chart.groups.size(), kNoValue));
  chart.err = chart.value;
  for (const auto& r : rows) {
    if (str(r, "task") != "all") continue;
    const json axes = r.value("axes", json::object());
    const size_t si = index_of(chart.series, s.variant_of(axes)), gi = index_of(chart.groups, s.family_of(axes));
    chart.value[si][gi] = num(r, "mean");
    chart.err[si][gi] = num(r, "ci");
  }
  const std::string metric = str(rows[0], "metric", "acc");
  return section(
      "divergence", "Divergence from the reference",
      note(fmt::format(
          "Mean over shots of |{0} − {0} of the reference| in percentage points, ± 95% CI over "
          "seeds; orange: a spike (the mean exceeds one point, as the paper counts them), with the number of "
          "seeds whose own divergence exceeds one point.",
          metric)) +
          render_table(table) + chart_grid({render_bar_chart(chart)}));
}

std::string icl(const Sweep& s) {
  const json& rows = s.table("icl");
  if (rows.empty())
    return section("icl", "In-context learning", note("No ICL table (no point has evaluation results)."));
  // Charts show the mean over tasks ("all") when the sweep has it, else the first task.
  std::string task = str(rows[0], "task");
  for (const auto& r : rows)
    if (str(r, "task") == "all") task = "all";
  std::map<std::string, LineChart> charts;
  std::vector<double> shot_ticks;
  for (const auto& r : rows) {
    if (str(r, "task") != task) continue;
    const json axes = r.value("axes", json::object());
    Series line{str(r, "config"), {}, {}, {}, false, -1};
    const json shots = r.value("shots", json::object());  // a named copy: items() must not outlive it
    for (const auto& [k, v] : shots.items()) {
      line.x.push_back(std::atof(k.c_str()));
      line.y.push_back(num(v, "mean"));
      line.err.push_back(num(v, "ci"));
    }
    // Shot keys are strings ("0", "1", "3", "5", "10"): order numerically.
    std::vector<size_t> order(line.x.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return line.x[a] < line.x[b]; });
    Series sorted{line.name, {}, {}, {}, false, -1};
    for (size_t i : order) {
      sorted.x.push_back(line.x[i]);
      sorted.y.push_back(line.y[i]);
      sorted.err.push_back(line.err[i]);
      if (std::find(shot_ticks.begin(), shot_ticks.end(), line.x[i]) == shot_ticks.end())
        shot_ticks.push_back(line.x[i]);
    }
    charts[s.family_of(axes)].series.push_back(std::move(sorted));
  }
  std::sort(shot_ticks.begin(), shot_ticks.end());
  std::vector<std::string> svgs;
  for (const auto& family : s.families) {
    auto it = charts.find(family);
    if (it == charts.end()) continue;
    LineChart& c = it->second;
    c.title =
        fmt::format("{}: ICL accuracy by shots{}", family, task == "all" ? " (mean over tasks)" : " (" + task + ")");
    c.x_label = "shots";
    c.y_label = fmt::format("{} (%)", str(rows[0], "metric", "acc"));
    c.x_ticks = shot_ticks;
    c.errors = ErrorStyle::band;
    svgs.push_back(render_line_chart(c));
  }
  Table table{{"Config", "Task"}, {}, {false, false}};
  for (double k : shot_ticks) {
    table.header.push_back(fmt::format("{:g}-shot", k));
    table.numeric.push_back(true);
  }
  for (const char* h : {"Improvement", "Ratio (%)", "Paired with"}) table.header.push_back(h);
  table.numeric.insert(table.numeric.end(), {true, true, false});
  for (const auto& r : rows) {
    std::vector<std::string> row{xml_escape(str(r, "config")), xml_escape(str(r, "task"))};
    const json shots = r.value("shots", json::object());
    for (double k : shot_ticks) {
      const json v = shots.value(fmt::format("{:g}", k), json());
      row.push_back(mean_pm(num(v, "mean"), num(v, "ci"), 1));
    }
    const json imp = r.value("improvement", json()), ratio = r.value("ratio", json());
    row.push_back(mean_pm(num(imp, "mean"), num(imp, "ci")));
    row.push_back(mean_pm(num(ratio, "mean"), num(ratio, "ci"), 1));
    row.push_back(xml_escape(str(r, "paired_config", "–")));
    table.rows.push_back(std::move(row));
  }
  return section("icl", "In-context learning",
                 note("Accuracy by number of shots, mean ± 95% CI over seeds (bands). Improvement: mean over k = 1, 3, "
                      "5 of acc_k − acc_0 (points); ratio: the improvement relative to the paired Transformer's (%).") +
                     chart_grid(svgs) + render_table(table));
}

std::string lora_spread(const Sweep& s) {
  const json& rows = s.table("lora_spread");
  if (rows.empty()) return section("lora-spread", "LoRA spread", note("No LoRA spread table in this sweep."));
  Table table{{"Family", "Task", "Configs", "Min", "Max", "Range", "Std", "Range within a seed"},
              {},
              {false, false, true, true, true, true, true, true}};
  for (const auto& r : rows) {
    const json per_seed = r.value("range_per_seed", json::object());
    table.rows.push_back({xml_escape(str(r, "family")), xml_escape(str(r, "task")), number(num(r, "configs")),
                          number(num(r, "min")), number(num(r, "max")), number(num(r, "range")), number(num(r, "std")),
                          mean_pm(num(per_seed, "mean"), num(per_seed, "ci"))});
  }
  return section("lora-spread", "LoRA spread",
                 note("Spread of ICL accuracy (%) across the LoRA configurations of each family: of the means over "
                      "seeds, and within each seed (mean ± 95% CI over seeds).") +
                     render_table(table));
}

BarChart family_bars(const Sweep& s, const json& rows, const char* field, std::string title, std::string y_label) {
  BarChart chart;
  chart.title = std::move(title);
  chart.y_label = std::move(y_label);
  chart.x_label = s.family_axis;
  for (const auto& r : rows) {
    const json axes = r.value("axes", json::object());
    add_unique(chart.series, s.variant_of(axes));
    add_unique(chart.groups, s.family_of(axes));
  }
  std::stable_sort(chart.groups.begin(), chart.groups.end(), [&](const std::string& a, const std::string& b) {
    return index_of(s.families, a) < index_of(s.families, b);
  });
  chart.value.assign(chart.series.size(), std::vector<double>(chart.groups.size(), kNoValue));
  chart.err = chart.value;
  for (const auto& r : rows) {
    const json axes = r.value("axes", json::object()), v = r.value(field, json());
    const size_t si = index_of(chart.series, s.variant_of(axes)), gi = index_of(chart.groups, s.family_of(axes));
    chart.value[si][gi] = num(v, "mean");
    chart.err[si][gi] = num(v, "ci");
  }
  return chart;
}

std::string throughput(const Sweep& s) {
  const json& rows = s.table("throughput");
  if (rows.empty())
    return section("throughput", "Throughput and memory", note("No throughput table (no point finished training)."));
  Table table{{"Config", "Tokens/s", "Memory/token (KB)", "Peak RSS over load (MB)", "Speed-up vs reference",
               "Memory/token change"},
              {},
              {false, true, true, true, true, true}};
  for (const auto& r : rows) {
    const json t = r.value("tokens_per_s", json()), m = r.value("memory_per_token_kb", json()),
               p = r.value("peak_rss_over_load_mb", json());
    const double speedup = num(r, "speedup_vs_reference"), change = num(r, "memory_per_token_change_pct");
    table.rows.push_back({xml_escape(str(r, "config")), mean_pm(num(t, "mean"), num(t, "ci"), 0),
                          mean_pm(num(m, "mean"), num(m, "ci"), 1), mean_pm(num(p, "mean"), num(p, "ci"), 1),
                          std::isfinite(speedup) ? fmt::format("{:.2f}×", speedup) : "–",
                          std::isfinite(change) ? fmt::format("{:+.1f}%", change) : "–"});
  }
  return section("throughput", "Throughput and memory",
                 note("Training throughput (non-padding tokens per second) and memory per token, mean ± 95% CI over "
                      "seeds; changes are relative to the reference configuration.") +
                     render_table(table) +
                     chart_grid({render_bar_chart(family_bars(s, rows, "tokens_per_s", "Training throughput (95% CI)",
                                                              "tokens / s")),
                                 render_bar_chart(family_bars(s, rows, "memory_per_token_kb",
                                                              "Memory per token (95% CI)", "KB / token"))}));
}

std::vector<StabilityInput> stability_inputs(const Sweep& s) {
  std::vector<StabilityInput> inputs;
  const json st = s.summary.value("stability", json::object());
  if (!st.is_object()) return inputs;
  // Families in axis order first, then any others the sweep analysed.
  std::vector<std::string> order = s.families;
  for (const auto& [family, _] : st.items()) add_unique(order, family);
  for (const auto& family : order) {
    if (!st.contains(family)) continue;
    for (const char* kind : {"perturbation", "lyapunov", "precision"}) {
      const std::string rel = str(st[family], kind);
      if (!rel.empty()) inputs.push_back({family, kind, s.dir / rel});
    }
  }
  return inputs;
}

}  // namespace

std::string sweep_report(const fs::path& dir) {
  const Sweep s = load_sweep(dir);
  const std::string body = overview(s) + training(s) + divergence(s) + icl(s) + lora_spread(s) + throughput(s) +
                           stability_sections(stability_inputs(s));
  return page("mamba-ft sweep: " + str(s.summary, "name", dir.filename().string()), body);
}

}  // namespace mft::report
