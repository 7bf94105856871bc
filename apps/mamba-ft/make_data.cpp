// `mamba-ft make-data --out DIR [--seed N]`: writes the quickstart's synthetic training data,
// DIR/corpus.txt (plain text) and DIR/instruct.jsonl (Alpaca records); the same seed gives the same bytes.
#include "commands.h"
#include "core/output_lock.h"
#include "data/synthetic.h"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace mft::app {
namespace {
struct MakeDataOptions {
  std::string out;
  uint64_t seed = 0;
};

int run_make_data(const MakeDataOptions& o) {
  const OutputLock lock(o.out, "make-data", [](const std::string& m) { fmt::print(stderr, "make-data: {}\n", m); });
  data::write_quickstart_data(o.out, o.seed);
  for (const char* name : {"corpus.txt", "instruct.jsonl"}) {
    const std::filesystem::path p = std::filesystem::path(o.out) / name;
    fmt::print("{} ({} bytes)\n", p.string(), std::filesystem::file_size(p));
  }
  fmt::print("{}/icl/{{capitals,arithmetic,reverse,recall}}.yaml (few-shot tasks for `mamba-ft eval --tasks`)\n",
             o.out);
  return 0;
}
}  // namespace

Runner add_make_data(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "make-data", "Write synthetic quickstart data: DIR/corpus.txt (text) and DIR/instruct.jsonl (Alpaca)");
  auto opt = std::make_shared<MakeDataOptions>();
  sub->add_option("--out", opt->out, "Folder to write (created if missing)")->required();
  sub->add_option("--seed", opt->seed, "Seed of the generated data")->capture_default_str();
  return [opt] { return run_make_data(*opt); };
}

}  // namespace mft::app
