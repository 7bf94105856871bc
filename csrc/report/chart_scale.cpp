// Nice-number tick selection (the classic 1-2-5 rule) and log10 decades for chart axes.
#include "report/chart_scale.h"

#include <fmt/format.h>

#include <cmath>

namespace mft::report {

double Scale::operator()(double v) const {
  const double x = log ? std::log10(v) : v;
  const double span = hi - lo;
  return px_lo + (x - lo) / span * (px_hi - px_lo);
}

namespace {
// Smallest of 1, 2, 5 x 10^k that is >= raw: tick steps that give round labels.
double nice_step(double raw) {
  const double decade = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / decade;
  const double mult = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return mult * decade;
}
}  // namespace

Scale nice_linear_scale(double lo, double hi, double px_lo, double px_hi, int target_ticks) {
  if (!(hi > lo)) {  // one value (or none): centre it in a unit-wide range
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double step = nice_step((hi - lo) / std::max(1, target_ticks));
  Scale s;
  s.lo = std::floor(lo / step) * step;
  s.hi = std::ceil(hi / step) * step;
  s.px_lo = px_lo;
  s.px_hi = px_hi;
  // Half a step of tolerance so that rounding never drops the last tick.
  const int n = static_cast<int>(std::lround((s.hi - s.lo) / step));
  for (int i = 0; i <= n; ++i) {  // by index: repeated addition would drift off the round values
    const double t = s.lo + i * step;
    s.ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return s;
}

Scale log_scale(double lo, double hi, double px_lo, double px_hi) {
  const double la = std::log10(lo), lb = std::log10(hi);
  if (lb - la < 1) {
    // Less than a decade of data: widening to whole decades would squash it into a thin strip, so keep
    // the data range (padded) and label it with round linear ticks.
    const double pad = lb > la ? 0.05 * (lb - la) : 0.02;  // 5% margins; a single value gets about ±5%
    Scale s;
    s.log = true;
    s.lo = la - pad;
    s.hi = lb + pad;
    s.px_lo = px_lo;
    s.px_hi = px_hi;
    for (double t : nice_linear_scale(lo, hi, 0, 1).ticks)
      if (t > 0 && std::log10(t) >= s.lo && std::log10(t) <= s.hi) s.ticks.push_back(t);
    return s;
  }
  double a = std::floor(la), b = std::ceil(lb);
  if (b <= a) b = a + 1;
  Scale s;
  s.log = true;
  s.lo = a;
  s.hi = b;
  s.px_lo = px_lo;
  s.px_hi = px_hi;
  const bool few_decades = b - a < 2;
  // Long ranges: label every k-th decade so that at most ~8 labels fit.
  const int every = static_cast<int>(std::ceil((b - a) / 8.0));
  for (double e = a; e <= b; e += every) {
    s.ticks.push_back(std::pow(10.0, e));
    if (few_decades && e < b) {
      s.ticks.push_back(2 * std::pow(10.0, e));
      s.ticks.push_back(5 * std::pow(10.0, e));
    }
  }
  return s;
}

Scale tight_linear_scale(double lo, double hi, double px_lo, double px_hi, int target_ticks) {
  Scale nice = nice_linear_scale(lo, hi, px_lo, px_hi, target_ticks);
  if (!(hi > lo)) return nice;  // a single value: keep the padded range
  Scale s = nice;
  s.lo = lo;
  s.hi = hi;
  s.ticks.clear();
  const double tol = (hi - lo) * 1e-9;
  for (double t : nice.ticks)
    if (t >= lo - tol && t <= hi + tol) s.ticks.push_back(t);
  return s;
}

std::string tick_label(double v) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e-4 && a < 1e6) return fmt::format("{:.6g}", v);
  return fmt::format("{:.0e}", v);
}

}  // namespace mft::report
