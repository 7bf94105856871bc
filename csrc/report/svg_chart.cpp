// SVG line and bar charts: scales from chart_scale.h, frame and ticks, data marks, legend.
#include "report/svg_chart.h"

#include "report/chart_scale.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mft::report {
namespace {

// Layout in SVG user units; the viewBox scales the whole chart to its container's width.
constexpr double kWidth = 640;
constexpr double kPlotHeight = 250;
constexpr double kLeft = 74;  // room for y tick labels and the rotated y label
constexpr double kRight = 18;
constexpr double kTop = 34;     // room for the title
constexpr double kBottom = 46;  // x tick labels and the x label
constexpr double kLegendRow = 18;
constexpr double kCharWidth = 6.6;  // average width of a 12 px sans-serif character, to wrap legends
constexpr int kMaxMarkers = 24;     // beyond this many points markers crowd a 550-unit-wide line: draw none

// Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
constexpr const char* kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                    "#D55E00", "#56B4E9", "#000000", "#F0E442"};
constexpr int kPaletteSize = 8;

std::string n(double v) {
  return fmt::format("{:.1f}", v);
}

std::string dash_for(int index) {
  return index / kPaletteSize % 2 == 1 ? " stroke-dasharray=\"6 3\"" : "";
}

struct Frame {
  double height = 0;       // whole SVG
  double plot_bottom = 0;  // y pixel of the x axis
  std::string svg;         // accumulated markup
};

// The <svg> element with its title (no xmlns: an HTML parser puts inline <svg> in the SVG namespace, and the
// report stays free of URLs); data-marks counts the series or bars drawn (0 for "no data").
std::string open_svg(const std::string& kind, double height, const std::string& title, int marks) {
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-marks=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\" font-size=\"12\" "
      "role=\"img\" "
      "aria-label=\"{}\">\n<title>{}</title>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
      "font-weight=\"600\" fill=\"#222\">{}</text>\n",
      kind, marks, n(kWidth), n(height), xml_escape(title), xml_escape(title), n(kWidth / 2), xml_escape(title));
}

// Legend entries laid out in rows under the plot; returns the number of rows it needs.
struct LegendItem {
  std::string name;
  int colour;
  char glyph;  // 'l' line with marker, 'm' marker only, 'b' bar
};

int legend_rows(const std::vector<LegendItem>& items) {
  int rows = items.empty() ? 0 : 1;
  double x = kLeft;
  for (const auto& it : items) {
    const double w = 30 + kCharWidth * static_cast<double>(it.name.size()) + 14;
    if (x + w > kWidth - kRight && x > kLeft) {
      ++rows;
      x = kLeft;
    }
    x += w;
  }
  return rows;
}

std::string legend_svg(const std::vector<LegendItem>& items, double top) {
  std::string s = "<g class=\"legend\">\n";
  double x = kLeft, y = top + kLegendRow / 2;
  for (const auto& it : items) {
    const double w = 30 + kCharWidth * static_cast<double>(it.name.size()) + 14;
    if (x + w > kWidth - kRight && x > kLeft) {
      x = kLeft;
      y += kLegendRow;
    }
    const std::string c = palette_colour(it.colour);
    if (it.glyph == 'b') {
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"{}\"/>", n(x + 4), n(y - 5), c);
    } else {
      if (it.glyph == 'l')
        s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>", n(x),
                         n(y), n(x + 24), n(y), c, dash_for(it.colour));
      s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>", n(x + 12), n(y), c);
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>\n", n(x + 30), n(y + 4), xml_escape(it.name));
    x += w;
  }
  return s + "</g>\n";
}

// Grid lines, tick labels, axis lines and axis labels around the plot area.
std::string axes_svg(const Scale& xs, const Scale* ys, const std::string& x_label, const std::string& y_label,
                     double plot_bottom, double x_label_y) {
  std::string s = "<g class=\"axes\" fill=\"#444\">\n";
  if (ys != nullptr) {
    for (double t : ys->ticks) {
      const double py = (*ys)(t);
      s += fmt::format(
          "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#e3e3e3\"/>"
          "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
          n(kLeft), n(py), n(kWidth - kRight), n(py), n(kLeft - 6), n(py + 4), xml_escape(tick_label(t)));
    }
  }
  for (double t : xs.ticks) {
    const double px = xs(t);
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>"
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        n(px), n(plot_bottom), n(px), n(plot_bottom + 5), n(px), n(plot_bottom + 18), xml_escape(tick_label(t)));
  }
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#666\"/>"
      "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#666\"/>\n",
      n(kLeft), n(plot_bottom), n(kWidth - kRight), n(kTop));
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#222\">{}</text>\n",
                   n((kLeft + kWidth - kRight) / 2), n(x_label_y), xml_escape(x_label));
  const double mid = (kTop + plot_bottom) / 2;
  s += fmt::format(
      "<text x=\"16\" y=\"{0}\" transform=\"rotate(-90 16 {0})\" text-anchor=\"middle\" fill=\"#222\">{1}"
      "</text>\n</g>\n",
      n(mid), xml_escape(y_label));
  return s;
}

std::string no_data_svg(const std::string& kind, const std::string& title) {
  const double h = kTop + 80;
  return open_svg(kind, h, title, 0) +
         fmt::format(
             "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\" font-style=\"italic\">no data</text>"
             "\n</svg>\n",
             n(kWidth / 2), n(kTop + 40));
}

bool usable(double y, bool log) {
  return std::isfinite(y) && (!log || y > 0);
}

double err_at(const Series& s, size_t i) {
  return i < s.err.size() && std::isfinite(s.err[i]) ? std::abs(s.err[i]) : 0.0;
}

}  // namespace

std::string palette_colour(int index) {
  return kPalette[((index % kPaletteSize) + kPaletteSize) % kPaletteSize];
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_line_chart(const LineChart& chart) {
  // Data range over every usable point (with its error extent) and the reference line.
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  auto extend_y = [&](double v) {
    if (!usable(v, chart.log_y)) return;
    y_lo = std::min(y_lo, v);
    y_hi = std::max(y_hi, v);
  };
  size_t drawable = 0;
  for (const auto& s : chart.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !usable(s.y[i], chart.log_y)) continue;
      ++drawable;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      extend_y(s.y[i]);
      extend_y(s.y[i] + err_at(s, i));
      extend_y(s.y[i] - err_at(s, i));
    }
  }
  if (drawable == 0) return no_data_svg("line", chart.title);
  if (chart.has_reference) extend_y(chart.reference);

  std::vector<LegendItem> legend;
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    legend.push_back({s.name, s.colour >= 0 ? s.colour : static_cast<int>(k), s.markers_only ? 'm' : 'l'});
  }
  const double plot_bottom = kTop + kPlotHeight;
  const double height = plot_bottom + kBottom + legend_rows(legend) * kLegendRow + 6;

  Scale xs;
  if (!chart.x_ticks.empty()) {
    xs.lo = std::min(x_lo, *std::min_element(chart.x_ticks.begin(), chart.x_ticks.end()));
    xs.hi = std::max(x_hi, *std::max_element(chart.x_ticks.begin(), chart.x_ticks.end()));
    if (!(xs.hi > xs.lo)) xs.hi = xs.lo + 1;
    xs.ticks = chart.x_ticks;
  } else {
    xs = tight_linear_scale(x_lo, x_hi, 0, 1);
  }
  // Inset the x range a little so that markers at the ends are not cut by the frame.
  xs.px_lo = kLeft + 8;
  xs.px_hi = kWidth - kRight - 8;
  const Scale ys =
      chart.log_y ? log_scale(y_lo, y_hi, plot_bottom, kTop) : nice_linear_scale(y_lo, y_hi, plot_bottom, kTop);
  // Clamp to the axis (a band's lower edge can fall below zero on a log axis).
  auto py = [&](double v) {
    if (chart.log_y && !(v > 0)) return plot_bottom;
    return std::clamp(ys(v), kTop, plot_bottom);
  };

  std::string svg = axes_svg(xs, &ys, chart.x_label, chart.y_label, plot_bottom, plot_bottom + 38);
  if (chart.has_reference) {
    const double ry = py(chart.reference);
    svg += fmt::format(
        "<line class=\"reference\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\" "
        "stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
        n(kLeft), n(ry), n(kWidth - kRight), n(ry), n(kWidth - kRight - 4), n(ry - 4),
        xml_escape(chart.reference_label));
  }
  int marks = 0;
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    const int ci = legend[k].colour;
    const std::string colour = palette_colour(ci), name = xml_escape(s.name);
    std::vector<size_t> idx;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && usable(s.y[i], chart.log_y)) idx.push_back(i);
    if (idx.empty()) continue;
    ++marks;
    if (chart.errors == ErrorStyle::band && !s.markers_only) {
      std::string upper, lower;
      for (size_t i : idx) upper += fmt::format("{},{} ", n(xs(s.x[i])), n(py(s.y[i] + err_at(s, i))));
      for (auto it = idx.rbegin(); it != idx.rend(); ++it)
        lower += fmt::format("{},{} ", n(xs(s.x[*it])), n(py(s.y[*it] - err_at(s, *it))));
      svg +=
          fmt::format("<polygon class=\"band\" data-band=\"{}\" points=\"{}{}\" fill=\"{}\" fill-opacity=\"0.15\"/>\n",
                      name, upper, lower, colour);
    }
    if (!s.markers_only) {
      // Break the line where a point is missing (NaN) rather than bridging the gap.
      std::string d;
      bool pen_down = false;
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!std::isfinite(s.x[i]) || !usable(s.y[i], chart.log_y)) {
          pen_down = false;
          continue;
        }
        d += fmt::format("{}{},{} ", pen_down ? "L" : "M", n(xs(s.x[i])), n(py(s.y[i])));
        pen_down = true;
      }
      svg += fmt::format(
          "<path data-series=\"{}\" data-points=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" "
          "stroke-width=\"2\" stroke-linejoin=\"round\"{}/>\n",
          name, idx.size(), d, colour, dash_for(ci));
    }
    if (chart.errors == ErrorStyle::bars) {
      for (size_t i : idx) {
        const double e = err_at(s, i);
        if (e == 0) continue;
        const double x = xs(s.x[i]), top = py(s.y[i] + e), bottom = py(s.y[i] - e);
        svg += fmt::format(
            "<path class=\"errorbar\" d=\"M{0},{1} L{0},{2} M{3},{1} L{4},{1} M{3},{2} L{4},{2}\" "
            "stroke=\"{5}\" stroke-width=\"1.2\"/>\n",
            n(x), n(top), n(bottom), n(x - 4), n(x + 4), colour);
      }
    }
    if (s.markers_only || idx.size() <= static_cast<size_t>(kMaxMarkers)) {
      svg += fmt::format("<g data-series-markers=\"{}\" fill=\"{}\"{}>", name, colour,
                         s.markers_only ? " stroke=\"#fff\" stroke-width=\"1\"" : "");
      for (size_t i : idx)
        svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\"><title>{}: {} = {}</title></circle>", n(xs(s.x[i])),
                           n(py(s.y[i])), s.markers_only ? "4" : "2.8", name, tick_label(s.x[i]),
                           fmt::format("{:.4g}", s.y[i]));
      svg += "</g>\n";
    }
  }
  svg += legend_svg(legend, plot_bottom + kBottom);
  return open_svg("line", height, chart.title, marks) + svg + "</svg>\n";
}

std::string render_bar_chart(const BarChart& chart) {
  double lo = 0, hi = 0;  // bars start at zero, so zero is always in range
  int drawable = 0;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    for (size_t g = 0; g < chart.groups.size(); ++g) {
      const double v = s < chart.value.size() && g < chart.value[s].size() ? chart.value[s][g] : kNoValue;
      if (!std::isfinite(v)) continue;
      ++drawable;
      double e = s < chart.err.size() && g < chart.err[s].size() ? chart.err[s][g] : 0;
      e = std::isfinite(e) ? std::abs(e) : 0;
      lo = std::min(lo, v - e);
      hi = std::max(hi, v + e);
    }
  }
  if (drawable == 0) return no_data_svg("bar", chart.title);

  std::vector<LegendItem> legend;
  for (size_t s = 0; s < chart.series.size(); ++s) legend.push_back({chart.series[s], static_cast<int>(s), 'b'});
  const double plot_w = kWidth - kLeft - kRight;
  const double group_w = plot_w / static_cast<double>(chart.groups.size());
  size_t longest = 0;
  for (const auto& g : chart.groups) longest = std::max(longest, g.size());
  // Labels wider than their group are rotated; they then need room below the axis.
  const bool rotate = static_cast<double>(longest) * kCharWidth > group_w;
  const double label_room = rotate ? std::min<double>(static_cast<double>(longest), 28) * kCharWidth * 0.6 : 0;
  const double plot_bottom = kTop + kPlotHeight;
  const double height = plot_bottom + kBottom + label_room + legend_rows(legend) * kLegendRow + 6;

  const Scale ys = nice_linear_scale(lo, hi, plot_bottom, kTop);
  Scale xs;  // only for the axes helper: no numeric x ticks on a categorical axis
  xs.px_lo = kLeft;
  xs.px_hi = kWidth - kRight;
  std::string svg = axes_svg(xs, &ys, chart.x_label, chart.y_label, plot_bottom, plot_bottom + 38 + label_room);
  for (size_t g = 0; g < chart.groups.size(); ++g) {
    const double cx = kLeft + group_w * (static_cast<double>(g) + 0.5);
    if (rotate) {
      std::string label = chart.groups[g].size() > 28 ? chart.groups[g].substr(0, 27) + "…" : chart.groups[g];
      svg += fmt::format(
          "<text x=\"{0}\" y=\"{1}\" transform=\"rotate(-30 {0} {1})\" text-anchor=\"end\" "
          "fill=\"#444\">{2}</text>\n",
          n(cx), n(plot_bottom + 14), xml_escape(label));
    } else {
      svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{}</text>\n", n(cx),
                         n(plot_bottom + 18), xml_escape(chart.groups[g]));
    }
  }
  const double zero = ys(0);
  const double bar_w = group_w * 0.8 / static_cast<double>(std::max<size_t>(1, chart.series.size()));
  int marks = 0;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const std::string colour = palette_colour(static_cast<int>(s));
    for (size_t g = 0; g < chart.groups.size(); ++g) {
      const double v = s < chart.value.size() && g < chart.value[s].size() ? chart.value[s][g] : kNoValue;
      if (!std::isfinite(v)) continue;
      ++marks;
      const double x = kLeft + group_w * (static_cast<double>(g) + 0.1) + bar_w * static_cast<double>(s);
      const double top = std::min(ys(v), zero), h = std::abs(ys(v) - zero);
      svg += fmt::format(
          "<rect data-bar=\"{}|{}\" data-value=\"{:.6g}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
          "fill=\"{}\"><title>{} / {}: {:.4g}</title></rect>\n",
          xml_escape(chart.series[s]), xml_escape(chart.groups[g]), v, n(x + 1), n(top), n(std::max(1.0, bar_w - 2)),
          n(std::max(0.5, h)), colour, xml_escape(chart.groups[g]), xml_escape(chart.series[s]), v);
      double e = s < chart.err.size() && g < chart.err[s].size() ? chart.err[s][g] : 0;
      if (std::isfinite(e) && e != 0) {
        e = std::abs(e);
        const double mx = x + bar_w / 2, y1 = ys(v + e), y2 = ys(v - e);
        svg += fmt::format(
            "<path class=\"errorbar\" d=\"M{0},{1} L{0},{2} M{3},{1} L{4},{1} M{3},{2} L{4},{2}\" "
            "stroke=\"#222\" stroke-width=\"1.2\"/>\n",
            n(mx), n(y1), n(y2), n(mx - 4), n(mx + 4));
      }
    }
  }
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#666\"/>\n", n(kLeft), n(zero),
                     n(kWidth - kRight));
  svg += legend_svg(legend, plot_bottom + kBottom + label_room);
  return open_svg("bar", height, chart.title, marks) + svg + "</svg>\n";
}

}  // namespace mft::report
