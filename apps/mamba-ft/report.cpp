// `mamba-ft report DIR [--output FILE]`: a self-contained HTML report (inline SVG charts, no scripts or network)
// of a sweep folder or a training run folder (csrc/report); written atomically to DIR/report.html by default.
#include "commands.h"
#include "core/file_io.h"

#include "report/html_report.h"

#include <fmt/format.h>

#include <filesystem>

namespace mft::app {
namespace {

struct ReportArgs {
  std::string dir, output;
};

int run_report(const ReportArgs& a) {
  // Build first: a folder without results fails before anything is written into it.
  const std::string html = report::build_report(a.dir);
  const std::string output = a.output.empty() ? (std::filesystem::path(a.dir) / "report.html").string() : a.output;
  write_file_atomically(output, html, "report");
  fmt::print(stderr, "report: {}\n", output);
  return 0;
}
}  // namespace

Runner add_report(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand("report", "Self-contained HTML report (SVG charts) of a sweep or training run folder");
  cmd->add_option("dir", a->dir, "a `mamba-ft sweep` output folder (summary.json) or a `mamba-ft train` output folder")
      ->required();
  cmd->add_option("--output", a->output, "HTML file to write (default: DIR/report.html)");
  return [a] { return run_report(*a); };
}

}  // namespace mft::app
