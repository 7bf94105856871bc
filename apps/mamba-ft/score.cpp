// `mamba-ft score --model MODEL --requests FILE.jsonl [--batch-size N] [--max-length N] [--output FILE]`:
// lm-evaluation-harness loglikelihood requests scored as its HF backend scores them. Each line of FILE is
//   {"context": s, "continuation": s}  ->  {"loglikelihood": x, "is_greedy": b, "num_tokens": n}
//   {"text": s}                        ->  {"loglikelihood": x, "num_tokens": n}   (loglikelihood_rolling)
// (other keys are ignored; blank lines are skipped). Results are written as JSONL in input order to stdout,
// or to --output through a temporary file renamed into place, so a failed run leaves no partial file.
#include "cli_checks.h"
#include "commands.h"
#include "model_args.h"

#include "core/file_io.h"
#include "core/json_parse.h"
#include "eval/loglikelihood.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mft::app {
namespace {
using nlohmann::json;

struct ScoreArgs {
  ModelArgs model;
  std::string requests, output;
  int64_t batch_size = 1;
  int64_t max_length = eval::kDefaultMaxLength;
  bool allow_nonfinite = false;
};

std::string string_field(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_string()) throw std::runtime_error(fmt::format("\"{}\" must be a string; got {}", key, json_excerpt(v)));
  return v.get<std::string>();
}

eval::ScoreRequest parse_request(const std::string& line) {
  json j;
  try {
    j = parse_json(line);
  } catch (const JsonError& e) {
    throw std::runtime_error(e.what());
  }
  const bool is_object = j.is_object();
  const bool has_text = is_object && j.contains("text");
  const bool has_pair = is_object && (j.contains("context") || j.contains("continuation"));
  if (has_text == has_pair) {
    throw std::runtime_error(fmt::format(
        "expected a JSON object with \"context\" and \"continuation\", or with \"text\"; got {}", json_excerpt(j)));
  }
  if (has_text) return eval::RollingRequest{string_field(j, "text")};
  for (const char* key : {"context", "continuation"}) {
    if (!j.contains(key)) throw std::runtime_error(fmt::format("\"{}\" is missing; got {}", key, json_excerpt(j)));
  }
  return eval::LoglikelihoodRequest{string_field(j, "context"), string_field(j, "continuation")};
}

// Every request of the file, and the line each came from (blank lines are skipped).
std::vector<eval::ScoreRequest> read_requests(const std::string& path, std::vector<size_t>& lines) {
  if (std::filesystem::is_directory(path)) {
    throw std::runtime_error(fmt::format("score: --requests {} is a folder (expected a JSONL file)", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("score: cannot read {}: no such file or not readable", path));
  std::vector<eval::ScoreRequest> requests;
  size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      requests.push_back(parse_request(line));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("score: {} line {}: {}", path, number, e.what()));
    }
    lines.push_back(number);
  }
  if (in.bad()) throw std::runtime_error(fmt::format("score: cannot read {}: {}", path, std::strerror(errno)));
  if (requests.empty()) throw std::runtime_error(fmt::format("score: {} holds no requests", path));
  return requests;
}

std::string to_jsonl(const std::vector<eval::ScoreRequest>& requests, const std::vector<eval::ScoreResult>& results) {
  std::string out;
  for (size_t i = 0; i < results.size(); ++i) {
    nlohmann::ordered_json j = {{"loglikelihood", results[i].loglikelihood}};  // keys in the documented order
    if (std::holds_alternative<eval::LoglikelihoodRequest>(requests[i])) j["is_greedy"] = results[i].is_greedy;
    j["num_tokens"] = results[i].num_tokens;
    out += j.dump();
    out += '\n';
  }
  return out;
}

int run_score(const ScoreArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<size_t> lines;
  const std::vector<eval::ScoreRequest> requests = read_requests(a.requests, lines);
  std::unique_ptr<AtomicFile> output;
  if (!a.output.empty()) output = std::make_unique<AtomicFile>(a.output, "score");
  auto loaded = load_model_and_tokenizer(a.model);

  eval::ScoreOptions options;
  options.batch_size = a.batch_size;
  options.max_length = a.max_length;
  options.allow_nonfinite = a.allow_nonfinite;
  options.describe_request = [&](size_t i) { return fmt::format("score: {} line {}", a.requests, lines[i]); };
  // A live count only for a person watching; logs and pipes get the summary line alone.
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (tty) {
    options.progress = [](int64_t done, int64_t total) {
      fmt::print(stderr, "\rscore: {}/{} sequences ({:.0f}%)", done, total, 100.0 * done / total);
      std::fflush(stderr);
    };
  }
  const std::vector<eval::ScoreResult> results = eval::score(*loaded.model, *loaded.tokenizer, requests, options);
  if (tty) fmt::print(stderr, "\n");

  const std::string text = to_jsonl(requests, results);
  if (output) {
    output->write(text);
    output->commit();
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "score: {} requests in {:.2f} s\n", requests.size(), seconds);
  return 0;
}
}  // namespace

Runner add_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  auto* cmd = app.add_subcommand(
      "score", "Loglikelihood of lm-eval requests (JSONL: {context, continuation} or {text}), as lm-eval's HF backend");
  a->model.add_to(cmd);
  cmd->add_option("--requests", a->requests, "JSONL file: {\"context\", \"continuation\"} or {\"text\"} per line")
      ->required();
  cmd->add_option("--batch-size", a->batch_size, "sequences per forward pass")
      ->check(int_in(1, kMaxBatch))
      ->capture_default_str();
  cmd->add_option("--max-length", a->max_length, "longest model input in tokens (longer inputs are left-truncated)")
      ->check(int_in(1, kMaxTokens))
      ->capture_default_str();
  cmd->add_option("--output", a->output, "write the results here instead of stdout");
  cmd->add_flag("--allow-nonfinite", a->allow_nonfinite, "report NaN/Inf loglikelihoods (as null) instead of failing");
  return [a] { return run_score(*a); };
}

}  // namespace mft::app
