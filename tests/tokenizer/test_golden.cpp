// Golden check against HF `tokenizers`: tests/tokenizer/make_tokenizer_cases.py trains GPT-NeoX-like and
// GPT-2-like tokenizers and writes HF's ids and decoded text for >= 10,000 random strings (and random id
// sequences for decoding); every one must match byte for byte.
// Environment: MFT_PYTHON (the .venv python; set by ctest) runs the script; MFT_TOKENIZER_CASES changes the
// number of strings (default 10000) and MFT_TOKENIZER_SEED the seed (default 1234);
// MFT_NEOX20B_TOKENIZER=path/to/20B_tokenizer.json also checks the real GPT-NeoX-20B file (EleutherAI/pythia
// utils/20B_tokenizer.json), with formats.md §4.4's ids.
#include "tokenizer_files.h"

#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

using nlohmann::json;

namespace {
const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? v : nullptr;
}

std::string show(const std::vector<int64_t>& ids) {
  std::ostringstream s;
  for (const int64_t id : ids) s << id << ' ';
  return s.str();
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
  return rows;
}

// Compares one tokenizer with HF on its cases; returns the number of strings checked.
size_t check_tokenizer(const std::string& dir, const json& entry) {
  const std::string name = entry["name"];
  INFO("tokenizer " << name << " (" << entry["tokenizer"].get<std::string>() << ")");
  const auto tok = mft::load_tokenizer(entry["tokenizer"]);
  CHECK(tok->vocab_size() == entry["vocab_size"].get<int64_t>());
  size_t id_mismatches = 0;
  for (int64_t id = 0; id < tok->vocab_size(); ++id) {
    id_mismatches += tok->token_to_string(id) != entry["id_to_token"][id].get<std::string>();
  }
  CHECK(id_mismatches == 0);
  for (const auto& [content, id] : entry["added"].items()) CHECK(tok->token_to_id(content) == id.get<int64_t>());

  size_t encode_bad = 0, decode_bad = 0, shown = 0;
  const auto cases = read_jsonl(dir + "/" + name + ".cases.jsonl");
  for (const json& c : cases) {
    const std::string text = c["text"];
    const auto want = c["ids"].get<std::vector<int64_t>>();
    const auto got = tok->encode(text);
    const bool decode_ok = tok->decode(want) == c["decoded"].get<std::string>() &&
                           tok->decode(want, true) == c["decoded_skip"].get<std::string>();
    encode_bad += got != want;
    decode_bad += !decode_ok;
    if ((got != want || !decode_ok) && shown++ < 5) {
      UNSCOPED_INFO("text " << json(text).dump() << "\n  HF   " << show(want) << "\n  ours " << show(got));
    }
  }
  for (const json& c : read_jsonl(dir + "/" + name + ".decode.jsonl")) {
    const auto ids = c["ids"].get<std::vector<int64_t>>();
    const bool ok = tok->decode(ids) == c["decoded"].get<std::string>() &&
                    tok->decode(ids, true) == c["decoded_skip"].get<std::string>();
    decode_bad += !ok;
    if (!ok && shown++ < 10) UNSCOPED_INFO("decode " << show(ids) << " HF " << c["decoded"].dump());
  }
  std::printf("tokenizer.golden: %-12s %6zu strings: %zu encode mismatches, %zu decode mismatches\n", name.c_str(),
              cases.size(), encode_bad, decode_bad);
  CHECK(encode_bad == 0);
  CHECK(decode_bad == 0);
  return cases.size();
}
}  // namespace

TEST_CASE("tokenizers match HF tokenizers byte for byte on random text", "[golden]") {
  const char* python = env("MFT_PYTHON");
  if (python == nullptr) {
    WARN("skipped: MFT_PYTHON (the .venv python with tokenizers) is not set; ctest sets it");
    return;
  }
  mft::test::TempDir dir;
  std::string cmd = std::string(python) + " " + MFT_TESTS_DIR + "/tokenizer/make_tokenizer_cases.py " +
                    dir.path.string() + " --count " +
                    (env("MFT_TOKENIZER_CASES") ? env("MFT_TOKENIZER_CASES") : "10000");
  if (const char* seed = env("MFT_TOKENIZER_SEED")) cmd += std::string(" --seed ") + seed;
  if (const char* neox = env("MFT_NEOX20B_TOKENIZER")) cmd += std::string(" --extra neox20b=") + neox;
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(dir.file("manifest.json"));
  const json manifest = json::parse(in);
  size_t total = 0;
  for (const json& entry : manifest) total += check_tokenizer(dir.path.string(), entry);
  std::printf("tokenizer.golden: %zu strings checked over %zu tokenizers\n", total, manifest.size());
}

TEST_CASE("the real GPT-NeoX-20B tokenizer gives formats.md's verified ids", "[golden]") {
  const char* path = env("MFT_NEOX20B_TOKENIZER");
  if (path == nullptr) {
    WARN("skipped: set MFT_NEOX20B_TOKENIZER to EleutherAI/pythia's utils/20B_tokenizer.json");
    return;
  }
  const auto tok = mft::load_tokenizer(path);
  CHECK(tok->vocab_size() == 50277);
  CHECK(tok->eos_token_id() == 0);
  using Ids = std::vector<int64_t>;
  const std::vector<std::pair<std::string, Ids>> table = {
      {"Hello, world!", {12092, 13, 1533, 2}},
      {"Hey how are you doing?", {8262, 849, 403, 368, 2509, 32}},
      {"hello  world", {25521, 50276, 10186}},
      {"    four", {50274, 12496}},
      {"a \nb", {66, 209, 187, 67}},
      {" \n", {2490}},
      {"x \n\n y", {89, 15267, 340}},
      {"line1\n  indented", {1282, 18, 187, 50276, 527, 8006}},
      {"Hello\r\nWorld", {12092, 190, 187, 14947}},
      {"12345 678", {42594, 721, 3141}},
      {"123456789", {42594, 43784}},
      {"3.14159", {20, 15, 1047, 17220}},
      {"don't I'm we'll", {9903, 626, 309, 1353, 359, 1833}},
      {"café naïve", {68, 2320, 860, 36060}},
      {"e\u0301", {860}},
      {"日本語", {49868, 19119, 241}},
      {"🙂 ok", {14931, 18713, 8718}},
      {"a\u00a0b", {66, 575, 67}},
      {"<|endoftext|>The", {0, 510}},
      {"The cat sat on the mat.", {510, 5798, 2206, 327, 253, 1111, 15}},
      {" hello", {23120}},
      {std::string(30, ' '), {50254, 50272}},
  };
  for (const auto& [text, ids] : table) {
    INFO(json(text).dump());
    CHECK(tok->encode(text) == ids);
  }
  CHECK(tok->decode({14931}) == "\uFFFD");
}
