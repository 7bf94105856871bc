// The data pipeline without LibTorch: prompt templates (Alpaca verbatim from formats.md 6.1), loss masks,
// splits, truncation, bad-record reporting, ShareGPT / messages rendering, plain text chunking and the
// synthetic quickstart data (batching: tests/data/test_batch.cpp). All with the byte tokenizer (ids 0..255 =
// bytes, 256 = <|endoftext|>), so no files are needed.
#include "data/dataset.h"
#include "data/random.h"
#include "data/synthetic.h"
#include "data/templates.h"
#include "numbered_examples.h"
#include "tokenizer/tokenizer.h"

#include <unistd.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

using Catch::Matchers::Contains;
using mft::data::DataOptions;
using mft::data::Example;
using mft::data::kIgnoreIndex;
using mft::data::LoadReport;
namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;
using mft::test::numbered_examples;

namespace {
constexpr int64_t kEos = 256;  // the byte tokenizer's <|endoftext|>

Ids bytes(const std::string& s) {
  Ids out;
  for (unsigned char c : s) out.push_back(c);
  return out;
}

Ids concat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A fresh temporary folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path =
        fs::temp_directory_path() / ("mft_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::string kAlpacaNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nSay hi.\n\n### Response:";
const std::string kAlpacaInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
    "response that appropriately completes the request.\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n2 and "
    "3\n\n### Response:";
}  // namespace

TEST_CASE("templates: Alpaca verbatim, chatml, zephyr, none", "[data]") {
  CHECK(mft::data::render_prompt("alpaca", "Say hi.", "") == kAlpacaNoInput);
  CHECK(mft::data::render_prompt("alpaca", "Add the numbers.", "2 and 3") == kAlpacaInput);
  CHECK(mft::data::render_prompt("chatml", "Q", "x") == "<|im_start|>user\nQ\n\nx<|im_end|>\n<|im_start|>assistant\n");
  CHECK(mft::data::render_prompt("zephyr", "Q", "") == "<|user|>\nQ<|endoftext|>\n<|assistant|>\n");
  CHECK(mft::data::render_prompt("none", "Q", "") == "Q\n");
  CHECK_THROWS_WITH(mft::data::render_prompt("alpacca", "Q", ""), Contains("unknown template 'alpacca'"));
}

TEST_CASE("alpaca: response-only mask, EOS, JSON array = JSONL, full loss", "[data]") {
  const auto tok = mft::make_byte_tokenizer();
  TempDir dir;
  const std::string rec1 = R"({"instruction": "Say hi.", "input": "", "output": " Hello!"})";
  const std::string rec2 = R"({"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"})";
  const std::string jsonl = dir.write("a.jsonl", rec1 + "\n\n" + rec2 + "\n");
  const std::string array = dir.write("a.json", "[\n  " + rec1 + ",\n  " + rec2 + "\n]\n");
  DataOptions opt;
  LoadReport report;
  const auto ex = mft::data::load_examples(jsonl, *tok, opt, &report);
  REQUIRE(ex.size() == 2);
  CHECK(report.records == 2);
  CHECK(report.skipped == 0);
  CHECK(report.truncated == 0);
  CHECK(ex[0].ids == concat(concat(bytes(kAlpacaNoInput), bytes(" Hello!")), {kEos}));
  CHECK(ex[0].labels == concat(Ids(kAlpacaNoInput.size(), kIgnoreIndex), concat(bytes(" Hello!"), {kEos})));
  CHECK(ex[1].ids == concat(concat(bytes(kAlpacaInput), bytes("5")), {kEos}));
  CHECK(ex[1].labels == concat(Ids(kAlpacaInput.size(), kIgnoreIndex), {'5', kEos}));

  const auto from_array = mft::data::load_examples(array, *tok, opt);
  REQUIRE(from_array.size() == 2);
  CHECK(from_array[0].ids == ex[0].ids);
  CHECK(from_array[1].labels == ex[1].labels);

  opt.response_only_loss = false;
  const auto full = mft::data::load_examples(jsonl, *tok, opt);
  CHECK(full[0].labels == full[0].ids);

  opt.response_only_loss = true;
  opt.template_name = "chatml";
  const auto chat = mft::data::load_examples(jsonl, *tok, opt);
  const std::string prompt = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n";
  CHECK(chat[0].ids == concat(concat(bytes(prompt), bytes(" Hello!<|im_end|>")), {kEos}));
  CHECK(chat[0].labels == concat(Ids(prompt.size(), kIgnoreIndex), concat(bytes(" Hello!<|im_end|>"), {kEos})));
}

TEST_CASE("random: Fisher-Yates on mt19937_64 is fixed across platforms", "[data]") {
  // Golden permutation: depends only on mt19937_64's standard output sequence and our integer code.
  std::mt19937_64 rng = mft::data::make_rng(42, 0);
  const Ids perm = mft::data::shuffled_indices(10, rng);
  CHECK(perm == Ids{2, 0, 4, 7, 8, 3, 5, 1, 9, 6});
  std::mt19937_64 r2(5);
  for (uint64_t bound : {1ull, 2ull, 3ull, 1000ull, (1ull << 63) + 1}) {
    for (int i = 0; i < 100; ++i) CHECK(mft::data::uniform_below(r2, bound) < bound);
  }
}

TEST_CASE("split: deterministic, disjoint, sized by the fraction", "[data]") {
  const std::vector<Example> all = numbered_examples(50, 10);
  auto [train, val] = mft::data::split(all, 0.1, 5);
  auto [train2, val2] = mft::data::split(all, 0.1, 5);
  auto [train3, val3] = mft::data::split(all, 0.1, 6);
  CHECK(val.size() == 5);
  CHECK(train.size() == 45);
  std::set<int64_t> ids;
  for (const auto& e : train) ids.insert(e.ids[0]);
  for (const auto& e : val) ids.insert(e.ids[0]);
  CHECK(ids.size() == 50);
  auto firsts = [](const std::vector<Example>& v) {
    Ids out;
    for (const auto& e : v) out.push_back(e.ids[0]);
    return out;
  };
  CHECK(firsts(val) == firsts(val2));
  CHECK(firsts(train) == firsts(train2));
  CHECK(firsts(val) != firsts(val3));
  const Ids train_firsts = firsts(train);
  CHECK(std::is_sorted(train_firsts.begin(), train_firsts.end()));
  CHECK(mft::data::split(numbered_examples(3, 10), 0.01, 1).second.size() == 1);
  CHECK(mft::data::split(all, 0.0, 1).second.empty());
  CHECK_THROWS_WITH(mft::data::split(all, 1.0, 1), Contains("val_fraction"));
}

TEST_CASE("alpaca: truncation and dropped examples are counted", "[data]") {
  const auto tok = mft::make_byte_tokenizer();
  TempDir dir;
  const std::string path =
      dir.write("t.jsonl", R"({"instruction": "Say hi.", "output": "short"})"
                           "\n"
                           R"({"instruction": "Say hi.", "output": ")" +
                               std::string(300, 'x') + "\"}\n" + R"({"instruction": ")" + std::string(300, 'y') +
                               R"(", "output": "z"})"
                               "\n");
  DataOptions opt;
  opt.max_length = 200;
  LoadReport report;
  const auto ex = mft::data::load_examples(path, *tok, opt, &report);
  CHECK(report.records == 3);
  CHECK(report.truncated == 2);
  CHECK(report.dropped == 1);  // its prompt alone is longer than max_length
  REQUIRE(ex.size() == 2);
  CHECK(ex[1].ids.size() == 200);
  CHECK(ex[1].labels.back() == 'x');
}

TEST_CASE("bad records: file:line errors, or counted when skipped", "[data]") {
  const auto tok = mft::make_byte_tokenizer();
  TempDir dir;
  const std::string good = R"({"instruction": "a", "input": "", "output": "b"})";
  const std::string path = dir.write("bad.jsonl", good + "\n" + R"({"instruction": "a", "output": )" + "\n" + good +
                                                      "\n" + R"({"instruction": "a", "input": ""})" + "\n" +
                                                      R"({"instruction": 5, "output": "b"})" + "\n[1, 2]\n" + good);
  DataOptions opt;
  CHECK_THROWS_WITH(mft::data::load_examples(path, *tok, opt), Contains(path + ":2: not valid JSON"));
  const std::string missing = dir.write("m.jsonl", good + "\n" + R"({"instruction": "a", "input": ""})");
  CHECK_THROWS_WITH(mft::data::load_examples(missing, *tok, opt), Contains(missing + ":2: missing field \"output\""));
  const std::string number = dir.write("n.jsonl", R"({"instruction": 5, "output": "b"})");
  CHECK_THROWS_WITH(mft::data::load_examples(number, *tok, opt),
                    Contains(number + ":1: field \"instruction\" must be a string; got 5"));
  const std::string array =
      dir.write("bad.json", "[\n" + good + ",\n" + good + ",\n  {\"instruction\": \"a\",\n \"input\": \"\"}\n]");
  CHECK_THROWS_WITH(mft::data::load_examples(array, *tok, opt), Contains(array + ":4: missing field \"output\""));
  const std::string open = dir.write("open.json", "[\n" + good + ",\n" + good);
  CHECK_THROWS_WITH(mft::data::load_examples(open, *tok, opt), Contains(open + ":3: unterminated JSON array"));
  CHECK_THROWS_WITH(mft::data::load_examples((dir.path / "nope.jsonl").string(), *tok, opt),
                    Contains("nope.jsonl' does not exist"));
  CHECK_THROWS_WITH(mft::data::load_examples(dir.path.string(), *tok, opt), Contains("is a folder"));

  opt.skip_bad_records = true;
  LoadReport report;
  const auto ex = mft::data::load_examples(path, *tok, opt, &report);
  CHECK(ex.size() == 3);
  CHECK(report.records == 3);
  CHECK(report.skipped == 4);
}

TEST_CASE("sharegpt / messages: templates, assistant-only loss, weights", "[data]") {
  const auto tok = mft::make_byte_tokenizer();
  TempDir dir;
  const std::string sharegpt = dir.write(
      "s.jsonl",
      R"({"conversations": [{"from": "system", "value": "SYS"}, {"from": "human", "value": "Hi"},)"
      R"( {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Ciao", "weight": null}]})"
      "\n");
  const std::string messages = dir.write(
      "m.json",
      R"([{"messages": [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Hi"},)"
      R"( {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]}])");
  DataOptions opt;
  opt.format = "sharegpt";
  opt.template_name = "chatml";
  const auto a = mft::data::load_examples(sharegpt, *tok, opt);
  const auto b = mft::data::load_examples(messages, *tok, opt);
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  CHECK(a[0].ids == b[0].ids);
  CHECK(a[0].labels == b[0].labels);
  CHECK(tok->decode(a[0].ids) ==
        "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>"
        "<|endoftext|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nCiao<|im_end|><|endoftext|>");
  Ids trained;
  for (int64_t l : a[0].labels)
    if (l != kIgnoreIndex) trained.push_back(l);
  CHECK(tok->decode(trained) == "Hello<|im_end|><|endoftext|>Ciao<|im_end|><|endoftext|>");

  opt.template_name = "zephyr";
  CHECK(tok->decode(mft::data::load_examples(messages, *tok, opt)[0].ids) ==
        "<|system|>\nSYS<|endoftext|>\n<|user|>\nHi<|endoftext|>\n<|assistant|>\nHello<|endoftext|>\n<|user|>\nBye"
        "<|endoftext|>\n<|assistant|>\nCiao<|endoftext|>");

  // One turn in the alpaca template is the Alpaca no-input example.
  opt.template_name = "alpaca";
  const std::string one = dir.write(
      "one.jsonl",
      R"({"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": " Hello!"}]})");
  const std::string rec = dir.write("rec.jsonl", R"({"instruction": "Say hi.", "input": "", "output": " Hello!"})");
  const auto chat = mft::data::load_examples(one, *tok, opt);
  DataOptions alpaca;
  const auto plain = mft::data::load_examples(rec, *tok, alpaca);
  CHECK(chat[0].ids == plain[0].ids);
  CHECK(chat[0].labels == plain[0].labels);

  // weight 0: that turn is context, not a target.
  const std::string weighted = dir.write(
      "w.jsonl", R"({"conversations": [{"from": "human", "value": "A"}, {"from": "gpt", "value": "B", "weight": 0},)"
                 R"( {"from": "human", "value": "C"}, {"from": "gpt", "value": "D", "weight": 1}]})");
  trained.clear();
  const Example w = mft::data::load_examples(weighted, *tok, opt)[0];
  for (int64_t l : w.labels)
    if (l != kIgnoreIndex) trained.push_back(l);
  INFO(tok->decode(w.ids));
  CHECK(tok->decode(trained) == "D<|endoftext|>");

  const std::string bad = dir.write("b.jsonl", R"({"conversations": [{"from": "bot", "value": "A"}]})"
                                               "\n"
                                               R"({"messages": [{"role": "user", "content": "A"}]})"
                                               "\n");
  CHECK_THROWS_WITH(mft::data::load_examples(bad, *tok, opt), Contains(bad + ":1: unknown role \"bot\""));
  opt.skip_bad_records = true;
  LoadReport report;
  CHECK(mft::data::load_examples(bad, *tok, opt, &report).empty());
  CHECK(report.skipped == 2);
}

TEST_CASE("text: paragraphs chunked with one-token overlap, every token a target once", "[data]") {
  const auto tok = mft::make_byte_tokenizer();
  TempDir dir;
  const std::string p1 = "The quick brown fox jumps over the lazy dog.\nSecond line.", p2 = "Short.";
  const std::string path = dir.write("c.txt", "\n\n" + p1 + "\n \n\n" + p2 + "\n");
  DataOptions opt;
  opt.format = "text";
  opt.max_length = 16;
  LoadReport report;
  const auto ex = mft::data::load_examples(path, *tok, opt, &report);
  CHECK(report.records == 2);
  // Targets after the shift (positions 1.. of each window), in order, are each document + EOS minus its
  // first token.
  const Ids b1 = bytes(p1), b2 = bytes(p2);
  Ids targets,
      expected = concat(concat(Ids(b1.begin() + 1, b1.end()), {kEos}), concat(Ids(b2.begin() + 1, b2.end()), {kEos}));
  for (const Example& e : ex) {
    CHECK(e.ids.size() <= 16);
    for (size_t i = 1; i < e.labels.size(); ++i)
      if (e.labels[i] != kIgnoreIndex) targets.push_back(e.labels[i]);
  }
  CHECK(targets == expected);
  CHECK(ex.back().ids == concat(bytes(p2), {kEos}));

  TempDir folder;
  folder.write("b.txt", "two\n\nparagraphs");
  folder.write("a.txt", "one");
  folder.write("skip.md", "not text");
  const auto docs = mft::data::load_examples(folder.path.string(), *tok, opt);
  REQUIRE(docs.size() == 2);
  CHECK(docs[0].ids == concat(bytes("one"), {kEos}));
  CHECK(docs[1].ids == concat(bytes("two\n\nparagraphs"), {kEos}));
}

TEST_CASE("synthetic quickstart data: same bytes for a seed, consistent facts, loadable", "[data]") {
  TempDir a, b, c;
  mft::data::write_quickstart_data(a.path.string(), 1);
  mft::data::write_quickstart_data(b.path.string(), 1);
  mft::data::write_quickstart_data(c.path.string(), 2);
  const std::string corpus = read(a.path / "corpus.txt"), instruct = read(a.path / "instruct.jsonl");
  CHECK(corpus == read(b.path / "corpus.txt"));
  CHECK(instruct == read(b.path / "instruct.jsonl"));
  CHECK(corpus != read(c.path / "corpus.txt"));
  CHECK(corpus.size() >= 300'000);
  CHECK(corpus.size() <= 500'000);
  CHECK(std::count(instruct.begin(), instruct.end(), '\n') == 2000);

  // Every capital question is answered as the corpus states it.
  std::istringstream lines(instruct);
  int capitals = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    const std::string q = j["instruction"];
    if (q.rfind("What is the capital of ", 0) == 0) {
      ++capitals;
      CHECK_THAT(corpus, Contains(j["output"].get<std::string>()));
    }
  }
  CHECK(capitals > 50);

  const auto tok = mft::make_byte_tokenizer();
  DataOptions opt;
  LoadReport report;
  CHECK(mft::data::load_examples((a.path / "instruct.jsonl").string(), *tok, opt, &report).size() == 2000);
  CHECK(report.skipped == 0);
  opt.format = "text";
  CHECK(mft::data::load_examples((a.path / "corpus.txt").string(), *tok, opt, &report).size() > 1000);
}
