// `mamba-ft tokenize --tokenizer PATH [--decode] [--skip-special] [--bench]`: JSONL in on stdin, JSONL out on
// stdout, one line for each line: {"text": ...} -> {"ids": [...]}, or with --decode {"ids": [...]} ->
// {"text": ...}. PATH is a tokenizer.json, a folder holding one, or `bytes` (the byte tokenizer).
#include "commands.h"
#include "core/json_parse.h"
#include "tokenizer/tokenizer.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mft::app {
namespace {
using nlohmann::json;

// Lines read, converted in parallel and written per batch: output keeps up with a slow producer, and
// the threads get enough work to share.
constexpr size_t kBatchLines = 4096;
// Lines per parallel task: enough to amortise the task (a line is ~1 us to parse or print, several to
// encode), few enough that 2..16 threads share a batch evenly.
constexpr int64_t kLinesPerTask = 16;

struct TokenizeOptions {
  std::string tokenizer;
  bool decode = false;
  bool skip_special = false;
  bool bench = false;
};

struct Stats {
  size_t lines = 0, bytes = 0, tokens = 0;
  double seconds = 0;  // in encode/decode only
};

// One line's input, parsed; `error` says what is wrong with the line instead.
struct Item {
  std::string text;
  std::vector<int64_t> ids;
  std::string output, error;
};

void parse_line(const std::string& line, bool decode, Item& item) {
  json j;
  try {
    j = parse_json(line);
  } catch (const JsonError& e) {
    item.error = e.what();
    return;
  }
  const char* key = decode ? "ids" : "text";
  if (!j.is_object() || !j.contains(key)) {
    item.error = fmt::format("expected a JSON object with \"{}\"; got {}", key, json_excerpt(j));
    return;
  }
  const json& v = j[key];
  if (!decode) {
    if (!v.is_string()) {
      item.error = "\"text\" must be a string; got " + json_excerpt(v);
      return;
    }
    item.text = v.get<std::string>();
    return;
  }
  if (!v.is_array()) {
    item.error = "\"ids\" must be an array of integers; got " + json_excerpt(v);
    return;
  }
  item.ids.reserve(v.size());
  for (const json& id : v) {
    if (!id.is_number_integer()) {
      item.error = "\"ids\" must be an array of integers; found " + json_excerpt(id);
      return;
    }
    const bool out_of_range =
        id.is_number_unsigned() ? id.get<uint64_t>() > uint64_t(INT64_MAX) : id.get<int64_t>() < 0;
    if (out_of_range) {
      item.error = "\"ids\" must be token ids (>= 0); found " + json_excerpt(id);
      return;
    }
    item.ids.push_back(id.get<int64_t>());
  }
}

// Converts one batch; writes its output lines up to the first bad line, then throws naming that line.
void run_batch(const Tokenizer& tok, const TokenizeOptions& o, const std::vector<std::string>& lines, size_t first_line,
               Stats& stats) {
  std::vector<Item> items(lines.size());
  const auto n = static_cast<int64_t>(lines.size());
  at::parallel_for(0, n, kLinesPerTask, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) parse_line(lines[i], o.decode, items[i]);
  });
  const auto start = std::chrono::steady_clock::now();
  at::parallel_for(0, n, kLinesPerTask, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      Item& it = items[i];
      if (!it.error.empty()) continue;
      try {
        if (o.decode) {
          it.text = tok.decode(it.ids, o.skip_special);
        } else {
          it.ids = tok.encode(it.text);
        }
      } catch (const std::exception& ex) {
        it.error = ex.what();
      }
    }
  });
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  at::parallel_for(0, n, kLinesPerTask, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      Item& it = items[i];
      if (it.error.empty()) it.output = o.decode ? json{{"text", it.text}}.dump() : json{{"ids", it.ids}}.dump();
    }
  });
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].error.empty()) {
      std::fflush(stdout);
      throw std::runtime_error(fmt::format("tokenize: line {}: {}", first_line + i, items[i].error));
    }
    std::fwrite(items[i].output.data(), 1, items[i].output.size(), stdout);
    std::fputc('\n', stdout);
    stats.bytes += items[i].text.size();
    stats.tokens += items[i].ids.size();
  }
  stats.lines += items.size();
}

int run_tokenize(const TokenizeOptions& o) {
  const std::unique_ptr<Tokenizer> tok = o.tokenizer == "bytes" ? make_byte_tokenizer() : load_tokenizer(o.tokenizer);
  std::ios::sync_with_stdio(false);
  Stats stats;
  std::vector<std::string> lines;
  size_t next_line = 1;
  // --bench converts all the input as one batch so that the timing covers only the tokenizer.
  const size_t batch = o.bench ? SIZE_MAX : kBatchLines;
  for (std::string line; std::getline(std::cin, line);) {
    lines.push_back(std::move(line));
    if (lines.size() == batch) {
      run_batch(*tok, o, lines, next_line, stats);
      next_line += lines.size();
      lines.clear();
    }
  }
  if (!lines.empty()) run_batch(*tok, o, lines, next_line, stats);
  std::fflush(stdout);
  if (o.bench) {
    fmt::print(
        stderr,
        "tokenize: {} lines, {} bytes of text, {} tokens, {} in {:.4f} s on {} threads: {:.0f} tokens/s, {:.2f} MB/s\n",
        stats.lines, stats.bytes, stats.tokens, o.decode ? "decoded" : "encoded", stats.seconds, at::get_num_threads(),
        stats.tokens / stats.seconds, stats.bytes / stats.seconds / 1e6);
  }
  return 0;
}
}  // namespace

Runner add_tokenize(CLI::App& app) {
  auto* sub =
      app.add_subcommand("tokenize", "Encode (or decode) JSONL from stdin: {\"text\"} -> {\"ids\"}, one line each");
  auto opt = std::make_shared<TokenizeOptions>();
  sub->add_option("--tokenizer", opt->tokenizer, "tokenizer.json, a folder holding one, or `bytes`")->required();
  auto* decode = sub->add_flag("--decode", opt->decode, "Decode {\"ids\": [...]} lines to {\"text\": ...}");
  sub->add_flag("--skip-special", opt->skip_special, "With --decode: leave out special tokens such as <|endoftext|>")
      ->needs(decode);
  // Hidden: times the conversion alone (after reading all input) and prints the rate on stderr.
  sub->add_flag("--bench", opt->bench)->group("");
  return [opt] { return run_tokenize(*opt); };
}

}  // namespace mft::app
