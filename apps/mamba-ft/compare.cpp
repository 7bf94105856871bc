// `mamba-ft compare [--reference REF.json] RUN.json ... [--pair MODEL.json=TRANSFORMER.json ...] [--metric M]
//  [--csv-dir DIR]`: the paper's metrics over `mamba-ft eval` results (eval/compare.h): divergence of each run
// from the reference with spike counts, ICL improvement per run and the ICL ratio of paired models; markdown
// on stdout, CSV files in DIR.
#include "commands.h"
#include "core/file_io.h"

#include "eval/compare.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>

namespace mft::app {
namespace {

struct CompareArgs {
  std::string reference, metric, csv_dir;
  std::vector<std::string> runs, pairs;
};

int run_compare(const CompareArgs& a) {
  if (a.runs.empty()) throw std::runtime_error("compare: give at least one results file");
  std::vector<eval::RunResults> runs;
  for (const auto& path : a.runs) runs.push_back(eval::read_results(path));
  std::map<std::string, eval::RunResults> paired;  // run path -> its paired Transformer's results
  for (const auto& p : a.pairs) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == p.size())
      throw std::runtime_error(fmt::format("compare: --pair expects MODEL.json=TRANSFORMER.json; got \"{}\"", p));
    const std::string model = p.substr(0, eq);
    if (std::find(a.runs.begin(), a.runs.end(), model) == a.runs.end())
      throw std::runtime_error(fmt::format("compare: --pair {}: {} is not one of the results files given", p, model));
    paired.emplace(model, eval::read_results(p.substr(eq + 1)));
  }
  std::vector<eval::DivergenceRow> div;
  if (!a.reference.empty()) {
    div = eval::divergence(eval::read_results(a.reference), runs, a.metric);
    fmt::print("## Divergence from {}\n\n{}\n", a.reference, eval::divergence_markdown(div));
  }
  std::vector<eval::IclRow> icl;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto it = paired.find(a.runs[i]);
    const auto rows = eval::icl(runs[i], it == paired.end() ? nullptr : &it->second, a.metric);
    icl.insert(icl.end(), rows.begin(), rows.end());
  }
  if (!icl.empty()) {
    fmt::print("## ICL improvement (mean over k = 1, 3, 5 of acc_k - acc_0){}\n\n{}",
               paired.empty() ? "" : " and ratio", eval::icl_markdown(icl));
  } else {
    fmt::print("(no ICL table: the runs lack 0-shot plus 1-, 3- or 5-shot results)\n");
  }
  if (!a.csv_dir.empty()) {
    std::filesystem::create_directories(a.csv_dir);
    if (!div.empty()) {
      write_file_atomically((std::filesystem::path(a.csv_dir) / "divergence.csv").string(), eval::divergence_csv(div),
                            "compare");
    }
    write_file_atomically((std::filesystem::path(a.csv_dir) / "icl.csv").string(), eval::icl_csv(icl), "compare");
    fmt::print(stderr, "compare: CSV in {}\n", a.csv_dir);
  }
  return 0;
}
}  // namespace

Runner add_compare(CLI::App& app) {
  auto a = std::make_shared<CompareArgs>();
  auto* cmd = app.add_subcommand("compare", "Divergence, spikes, ICL improvement and ICL ratio over `eval` results");
  cmd->add_option("runs", a->runs, "results JSON files of `mamba-ft eval`")->required();
  cmd->add_option("--reference", a->reference, "results the runs diverge from (e.g. fp32 full fine-tuning)");
  cmd->add_option("--pair", a->pairs, "MODEL.json=TRANSFORMER.json: ICL ratio of a run against its paired model");
  cmd->add_option("--metric", a->metric,
                  "acc, acc_norm or acc_bytes (default: acc_norm for hellaswag and "
                  "arc_challenge, acc otherwise, as the paper)");
  cmd->add_option("--csv-dir", a->csv_dir, "write divergence.csv and icl.csv here");
  return [a] { return run_compare(*a); };
}

}  // namespace mft::app
