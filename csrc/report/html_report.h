#pragma once
// `mamba-ft report DIR`: one self-contained HTML page (inline CSS and SVG charts; no scripts, no network)
// describing a sweep folder (summary.json of `mamba-ft sweep`) or a training run folder (metrics.jsonl,
// eval.json, stability/*.json of `mamba-ft train`).
#include <string>

namespace mft::report {

// The HTML document for DIR. Throws std::runtime_error naming DIR when it does not exist, is not a folder
// or holds neither kind of results, and naming the file when one cannot be read.
std::string build_report(const std::string& dir);

}  // namespace mft::report
