// Stability sections: perturbation deviation curves (log y) with rate tables, Lyapunov exponents per layer
// against zero, and precision divergence by layer and by position.
#include "report/stability_report.h"

#include "report/html.h"
#include "report/report_data.h"
#include "report/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mft::report {
namespace {

using nlohmann::json;

std::vector<double> numbers(const json& j) {
  std::vector<double> v;
  if (!j.is_array()) return v;
  for (const auto& x : j) v.push_back(x.is_number() ? x.get<double>() : kNoValue);
  return v;
}

std::vector<double> iota(size_t n, double first) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = first + static_cast<double>(i);
  return v;
}

constexpr size_t kMaxLayerTicks = 16;  // more layer labels than this crowd a 640-unit-wide axis

// The note of a section that has no input of its kind.
std::string none(const std::vector<const StabilityInput*>& inputs, const char* what) {
  return inputs.empty() ? note(fmt::format("No {} results in this folder.", what)) : "";
}

std::string missing(const StabilityInput& in) {
  return note(fmt::format("{}: {} not found (the analysis did not run or failed).", in.label, in.path.string()));
}

std::string perturbation_section(const std::vector<const StabilityInput*>& inputs) {
  std::vector<std::string> charts;
  Table table{{"Model", "ε", "median rate", "mean rate", "blocks decaying", "deviation/ε at last step"},
              {},
              {false, true, true, true, true, true}};
  std::string notes = none(inputs, "perturbation");
  for (const auto* in : inputs) {
    if (!std::filesystem::exists(in->path)) {
      notes += missing(*in);
      continue;
    }
    const json r = read_json(in->path).value("result", json::object());
    LineChart chart;
    chart.log_y = true;
    chart.x_label = "step";
    bool state = false;
    for (const auto& c : r.value("curves", json::array())) {
      auto dev = numbers(c.value("median_state_deviation", json::array()));
      state = !dev.empty();
      if (dev.empty()) dev = numbers(c.value("median_output_deviation", json::array()));
      const double eps = num(c, "eps");
      chart.series.push_back({fmt::format("ε = {:g}", eps), iota(dev.size(), 1), dev, {}, false, -1});
      table.rows.push_back({xml_escape(in->label), fmt::format("{:g}", eps), number(num(c, "median_rate")),
                            number(num(c, "mean_rate")), fmt::format("{:.0f}%", 100 * num(c, "fraction_decaying")),
                            dev.empty() ? "–" : number(dev.back(), 3)});
    }
    chart.title = fmt::format("{}: perturbation growth ({} blocks of {})", in->label, str(r, "blocks", "?"),
                              str(r, "preset", "?"));
    chart.y_label = state ? "median state deviation / ε" : "median output deviation / ε";
    charts.push_back(render_line_chart(chart));
  }
  return section(
      "stability-perturbation", "Stability: perturbation growth",
      note("A perturbation of size ε is added to a block's input; the curves show the median (over blocks) "
           "deviation it causes at each later step, divided by ε. Rate: slope of log(max deviation) per "
           "step; negative rates mean perturbations decay. Steps where the median deviation is exactly zero are "
           "not drawn on the log axis.") +
          notes + chart_grid(charts) + render_table(table));
}

std::string lyapunov_section(const std::vector<const StabilityInput*>& inputs) {
  std::vector<std::string> charts;
  Table table{{"Model", "layers", "max λ̂ exact", "max Benettin", "stack exponents", "all ≤ 0"},
              {},
              {false, true, true, true, false, false}};
  std::string notes = none(inputs, "Lyapunov");
  for (const auto* in : inputs) {
    if (!std::filesystem::exists(in->path)) {
      notes += missing(*in);
      continue;
    }
    const json j = read_json(in->path);
    std::vector<double> layer, exact, estimated;
    for (const auto& l : j.value("layers", json::array())) {
      layer.push_back(num(l, "layer"));
      exact.push_back(num(l, "exact"));
      estimated.push_back(num(l, "estimated"));
    }
    const auto stack = numbers(j.value("stack", json::array()));
    double max_exact = -INFINITY, max_est = -INFINITY;
    for (double v : exact) max_exact = std::max(max_exact, v);
    for (double v : estimated) max_est = std::max(max_est, v);
    double max_all = std::max(max_exact, max_est);
    for (double v : stack) max_all = std::max(max_all, v);
    const bool stable = max_all <= 0;
    LineChart chart;
    chart.title = fmt::format("{}: Lyapunov exponents per layer", in->label);
    chart.x_label = "layer";
    chart.y_label = "exponent";
    chart.x_ticks = layer;
    chart.has_reference = true;
    chart.reference_label = "0";
    chart.series.push_back({"λ̂ exact (max mean Δ·A)", layer, exact, {}, false, 0});
    chart.series.push_back({"Benettin estimate", layer, estimated, {}, false, 1});
    charts.push_back(render_line_chart(chart));
    std::string stack_text;
    for (double v : stack) stack_text += (stack_text.empty() ? "" : ", ") + number(v, 3);
    table.rows.push_back({xml_escape(in->label), std::to_string(layer.size()), number(max_exact), number(max_est),
                          stack_text.empty() ? "–" : stack_text,
                          stable ? "<span class=\"ok\">yes (stable)</span>" : "<span class=\"warn\">no</span>"});
  }
  return section("stability-lyapunov", "Stability: Lyapunov exponents",
                 note("λ̂ exact: the largest mean Δ·A of each layer's state transition (≤ 0 means the recurrence is "
                      "Lyapunov-stable); Benettin: the top exponent estimated from the Jacobian products. "
                      "Transformers have no recurrent state and no exponents.") +
                     notes + chart_grid(charts) + render_table(table));
}

std::string precision_section(const std::vector<const StabilityInput*>& inputs) {
  std::vector<std::string> charts;
  Table table{{"Model", "mode", "max relative deviation", "mean KL (nats)"}, {}, {false, false, true, true}};
  std::string notes = none(inputs, "precision-divergence");
  for (const auto* in : inputs) {
    if (!std::filesystem::exists(in->path)) {
      notes += missing(*in);
      continue;
    }
    const json r = read_json(in->path).value("result", json::object());
    LineChart by_layer, by_position;
    by_layer.title = fmt::format("{}: deviation from fp32 by layer", in->label);
    by_layer.x_label = "layer (0 = embeddings)";
    by_layer.y_label = "relative deviation (max over positions)";
    by_layer.log_y = true;
    by_position.title = fmt::format("{}: KL of next-token distribution vs fp32", in->label);
    by_position.x_label = "position";
    by_position.y_label = "KL (nats)";
    by_position.log_y = true;
    for (const auto& m : r.value("modes", json::array())) {
      const std::string mode = str(m, "mode", "?");
      std::vector<double> worst;
      for (const auto& per_layer : m.value("relative_deviation", json::array())) {
        double w = kNoValue;
        for (double v : numbers(per_layer))
          if (std::isfinite(v)) w = std::isfinite(w) ? std::max(w, v) : v;
        worst.push_back(w);
      }
      by_layer.series.push_back({mode, iota(worst.size(), 0), worst, {}, false, -1});
      const auto kl = numbers(m.value("kl", json::array()));
      by_position.series.push_back({mode, iota(kl.size(), 0), kl, {}, false, -1});
      table.rows.push_back({xml_escape(in->label), xml_escape(mode), number(num(m, "max_relative_deviation")),
                            number(num(m, "mean_kl"))});
    }
    // One tick per layer while they fit (a few dozen layers get nice ticks instead).
    const size_t layers = by_layer.series.empty() ? 0 : by_layer.series[0].x.size();
    if (layers > 0 && layers <= kMaxLayerTicks) by_layer.x_ticks = iota(layers, 0);
    charts.push_back(render_line_chart(by_layer));
    charts.push_back(render_line_chart(by_position));
  }
  return section("stability-precision", "Stability: precision divergence",
                 note("Each mode runs the same input as the fp32 model: bf16/fp16 under autocast, -pure with half "
                      "weights. Relative deviation of the residual stream after each layer (worst position), and the "
                      "KL divergence of the next-token distribution per position (log axes: exact zeros and "
                      "rounding-level negative KLs are not drawn).") +
                     notes + chart_grid(charts) + render_table(table));
}

}  // namespace

std::string stability_sections(const std::vector<StabilityInput>& inputs) {
  std::vector<const StabilityInput*> perturbation, lyapunov, precision;
  for (const auto& in : inputs) {
    if (in.kind == "perturbation")
      perturbation.push_back(&in);
    else if (in.kind == "lyapunov")
      lyapunov.push_back(&in);
    else if (in.kind == "precision")
      precision.push_back(&in);
  }
  return perturbation_section(perturbation) + lyapunov_section(lyapunov) + precision_section(precision);
}

}  // namespace mft::report
