#include "core/memory.h"

#include <fstream>
#include <string>

namespace mft {
namespace {
double status_mb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  }
  return 0.0;
}
}  // namespace

double rss_mb() {
  return status_mb("VmRSS");
}

double peak_rss_mb() {
  return status_mb("VmHWM");
}

void reset_peak_rss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

}  // namespace mft
