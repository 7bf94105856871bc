// Decides what kind of folder a report is for and hands it to the sweep or run renderer.
#include "report/html_report.h"

#include "report/report_kinds.h"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

namespace mft::report {

std::string build_report(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  if (!fs::exists(root)) throw std::runtime_error(fmt::format("report: {} does not exist", dir));
  if (!fs::is_directory(root)) throw std::runtime_error(fmt::format("report: {} is not a folder", dir));
  if (fs::exists(root / "summary.json")) return sweep_report(root);
  if (fs::exists(root / "metrics.jsonl") || fs::exists(root / "eval.json")) return run_report(root);
  throw std::runtime_error(
      fmt::format("report: {} holds no results (expected summary.json of `mamba-ft sweep`, or "
                  "metrics.jsonl / eval.json of a run)",
                  dir));
}

}  // namespace mft::report
