// Page skeleton, stylesheet, tables and number formatting for the HTML report.
#include "report/html.h"

#include "report/svg_chart.h"

#include <fmt/format.h>

#include <cmath>

namespace mft::report {
namespace {
// Inline stylesheet: the report is one file with no network access, so nothing is linked.
constexpr const char* kStyle = R"css(
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       background: #fafafa; margin: 0; line-height: 1.45; font-size: 15px; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 0 0 12px; border-bottom: 2px solid #0072B2; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
section { background: #fff; border: 1px solid #e2e2e2; border-radius: 8px; padding: 16px 20px; margin: 18px 0; }
nav a { margin-right: 14px; color: #0072B2; text-decoration: none; }
.meta { color: #555; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 14px; }
.charts figure { margin: 0; }
svg.chart { width: 100%; height: auto; background: #fff; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border-bottom: 1px solid #e6e6e6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f2f5f8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:hover td { background: #f7fbff; }
.table-wrap { overflow-x: auto; }
.warn { color: #B34700; font-weight: 600; }
.ok { color: #00734F; font-weight: 600; }
.note { color: #555; font-size: 14px; }
pre { background: #f4f4f4; padding: 10px; overflow-x: auto; font-size: 12.5px; }
details summary { cursor: pointer; color: #0072B2; }
@media (max-width: 700px) { main { padding: 12px; } .charts { grid-template-columns: 1fr; } }
)css";
}  // namespace

std::string render_table(const Table& table) {
  std::string s = "<div class=\"table-wrap\"><table>\n<thead><tr>";
  for (const auto& h : table.header) s += "<th>" + xml_escape(h) + "</th>";
  s += "</tr></thead>\n<tbody>\n";
  for (const auto& row : table.rows) {
    s += "<tr>";
    for (size_t c = 0; c < row.size(); ++c) {
      const bool numeric = c < table.numeric.size() && table.numeric[c];
      s += (numeric ? "<td class=\"num\">" : "<td>") + row[c] + "</td>";
    }
    s += "</tr>\n";
  }
  return s + "</tbody></table></div>\n";
}

std::string section(const std::string& id, const std::string& title, const std::string& body_html) {
  return fmt::format("<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n", xml_escape(id), xml_escape(title), body_html);
}

std::string chart_grid(const std::vector<std::string>& svgs) {
  std::string s = "<div class=\"charts\">\n";
  for (const auto& svg : svgs) s += "<figure>" + svg + "</figure>\n";
  return s + "</div>\n";
}

std::string note(const std::string& text) {
  return "<p class=\"note\">" + xml_escape(text) + "</p>\n";
}

std::string page(const std::string& title, const std::string& body_html) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n"
      "<style>{}</style>\n</head>\n<body>\n<main>\n{}</main>\n</body>\n</html>\n",
      xml_escape(title), kStyle, body_html);
}

std::string number(double v, int significant) {
  if (!std::isfinite(v)) return "–";
  return fmt::format("{:.{}g}", v, significant);
}

std::string mean_pm(double mean, double ci, int decimals) {
  if (!std::isfinite(mean)) return "–";
  if (!std::isfinite(ci)) return fmt::format("{:.{}f}", mean, decimals);
  return fmt::format("{:.{}f} ± {:.{}f}", mean, decimals, ci, decimals);
}

}  // namespace mft::report
