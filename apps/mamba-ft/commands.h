#pragma once
// Each subcommand file adds its CLI11 subcommand and returns the function that runs it once parsed.
#include <CLI/CLI.hpp>

#include <functional>

namespace mft::app {

using Runner = std::function<int()>;

Runner add_info(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_generate(CLI::App& app);
Runner add_bench_model(CLI::App& app);
Runner add_bench_train(CLI::App& app);
Runner add_score(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_compare(CLI::App& app);
Runner add_stability(CLI::App& app);
Runner add_merge(CLI::App& app);
Runner add_make_data(CLI::App& app);
Runner add_train(CLI::App& app);
Runner add_sweep(CLI::App& app);
Runner add_report(CLI::App& app);
Runner add_export(CLI::App& app);

}  // namespace mft::app
