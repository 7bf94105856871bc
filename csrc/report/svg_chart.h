#pragma once
// Small SVG chart toolkit for `mamba-ft report`: line charts (several series, error bars or bands, linear
// or log10 y, an optional horizontal reference line) and grouped bar charts with error bars. Output is a
// standalone <svg> element with a viewBox (it scales to its container), titles, axis labels and a legend.
//
// Every drawn data mark carries a data attribute (data-series on lines and markers, data-bar on bars) and
// the <svg> carries data-marks="N" (series or bars actually drawn), so tests can check that a chart shows
// data. Non-finite values (and values <= 0 on a log axis) are skipped; a chart with nothing to draw says
// "no data".
#include <limits>
#include <string>
#include <vector>

namespace mft::report {

inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> err;    // half-widths of error bars / bands (empty or NaN entries: none)
  bool markers_only = false;  // points without a connecting line (e.g. eval loss every N steps)
  int colour = -1;            // palette index; -1: the series' position in the chart
};

enum class ErrorStyle { bars, band };

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;
  ErrorStyle errors = ErrorStyle::bars;
  std::vector<double> x_ticks;  // explicit x ticks (e.g. shots 0, 1, 3, 5); empty: nice ticks
  bool has_reference = false;   // horizontal line at y = reference (e.g. a zero exponent)
  double reference = 0;
  std::string reference_label;
};

struct BarChart {
  std::string title, x_label, y_label;
  std::vector<std::string> groups;              // x axis categories
  std::vector<std::string> series;              // one bar per series within each group
  std::vector<std::vector<double>> value, err;  // [series][group]; NaN: no bar
};

std::string render_line_chart(const LineChart& chart);
std::string render_bar_chart(const BarChart& chart);

// Colour-blind-safe palette (Okabe & Ito), cycled; later cycles are drawn dashed.
std::string palette_colour(int index);

// Escapes &, <, >, " and ' for XML/HTML text and attribute values.
std::string xml_escape(const std::string& text);

}  // namespace mft::report
