#pragma once
// HTML building blocks of `mamba-ft report`: the page with its inline stylesheet, sections, tables, chart
// grids and number formatting. Arguments named *_html are inserted as they are; everything else is escaped.
#include <string>
#include <vector>

namespace mft::report {

// A table; cells are HTML (escape text with xml_escape). Columns flagged in `numeric` are right-aligned.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> numeric;  // per column; missing entries: text
};
std::string render_table(const Table& table);

// <section id=ID> with an <h2>; tests find the report's parts by these ids.
std::string section(const std::string& id, const std::string& title, const std::string& body_html);
// Charts (SVG strings) side by side, wrapping to one column on narrow screens.
std::string chart_grid(const std::vector<std::string>& svgs);
// A paragraph of explanatory text (escaped).
std::string note(const std::string& text);
// The whole document: <head> with the stylesheet, then the body.
std::string page(const std::string& title, const std::string& body_html);

// Numbers for tables: 4 significant digits; NaN and infinities as "–".
std::string number(double v, int significant = 4);
// "mean ± ci" with `decimals` fixed decimals ("–" when the mean is not finite; no "±" when ci is not).
std::string mean_pm(double mean, double ci, int decimals = 2);

}  // namespace mft::report
