#pragma once
// Process memory from /proc/self/status (Linux), in MiB: what benchmarks and training metrics report.
namespace mft {

double rss_mb();        // VmRSS now
double peak_rss_mb();   // VmHWM: the peak since start or since the last reset_peak_rss()
void reset_peak_rss();  // sets the peak to the current RSS (Linux >= 4.0; no-op elsewhere)

}  // namespace mft
