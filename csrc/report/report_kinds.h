#pragma once
// The two kinds of folder `mamba-ft report` renders (internal to csrc/report; html_report.h decides which).
#include <filesystem>
#include <string>

namespace mft::report {

// A `mamba-ft sweep` folder: DIR/summary.json (format mamba-ft-sweep/1) and the files it points to.
std::string sweep_report(const std::filesystem::path& dir);
// A `mamba-ft train` output folder: metrics.jsonl, recipe.yaml, maybe eval.json and stability/*.json.
std::string run_report(const std::filesystem::path& dir);

}  // namespace mft::report
