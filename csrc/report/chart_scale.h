#pragma once
// Axis scales for the SVG charts: data range -> pixels, and "nice" tick values (1, 2, 5 x 10^k steps on
// linear axes, powers of ten on log10 axes) so that tick labels read as round numbers.
#include <string>
#include <vector>

namespace mft::report {

struct Scale {
  double lo = 0, hi = 1;        // domain (data units; log10 of the data on a log axis)
  double px_lo = 0, px_hi = 1;  // range in pixels (px_lo maps lo)
  bool log = false;
  std::vector<double> ticks;  // tick positions in data units (not log10)

  // Pixel of data value v (v must be > 0 on a log axis).
  double operator()(double v) const;
};

// A linear scale covering [lo, hi] widened to nice tick boundaries, with about `target_ticks` ticks.
Scale nice_linear_scale(double lo, double hi, double px_lo, double px_hi, int target_ticks = 5);

// A log10 scale over the positive [lo, hi], widened to whole decades; adds 2 and 5 x 10^k ticks when the
// range spans fewer than two decades so that the axis never has just one label.
Scale log_scale(double lo, double hi, double px_lo, double px_hi);

// A linear scale over exactly [lo, hi] (no widening) with the nice ticks that fall inside: for x axes,
// where widening would leave empty space after the last step.
Scale tight_linear_scale(double lo, double hi, double px_lo, double px_hi, int target_ticks = 6);

// Tick label: short, round ("0.5", "1e-06", "12k" is not used: exact values read better in reports).
std::string tick_label(double v);

}  // namespace mft::report
