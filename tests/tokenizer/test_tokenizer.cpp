// Tokenizer unit tests: the pre-tokenisation facts of formats.md §4.4 on a hand-written GPT-NeoX-like
// tokenizer.json (each expected piece is one token there, so the tokens show the pieces), BPE merge order,
// UTF-8 handling, the byte tokenizer, and errors that name the file and the field.
#include "tokenizer_files.h"

#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nlohmann::json;

namespace {
// Words of the hand-written tokenizer. Order matters: a word whose chain shares a pair with an earlier
// word's chain may not merge fully (the chain of "hello" listed before " hello" would take "he" first
// and leave "Ġ" alone), so space-prefixed and longer words come first.
const std::vector<std::string> kWords = {" world", " hello",   " \n",   " \n\n", " y",    " 678", " I",    " we",
                                         " naïve", " cat",     " sat",  " on",   " the",  " mat", "The",   "trailing",
                                         "line",   "indented", "Hello", "hello", "world", "four", "World", "12345",
                                         "don",    "'t",       "'m",    "'ll",   "IT",    "café", "\u00a0"};

struct Fixture {
  mft::test::TempDir dir;
  std::unique_ptr<mft::Tokenizer> tok;
  explicit Fixture(bool merges_as_pairs = false) {
    mft::test::write_json(dir.file("tokenizer.json"), mft::test::neox_like_json(kWords, merges_as_pairs));
    tok = mft::load_tokenizer(dir.path.string());
  }
  std::vector<std::string> tokens(const std::string& text) const {
    std::vector<std::string> out;
    for (const int64_t id : tok->encode(text)) out.push_back(tok->token_to_string(id));
    return out;
  }
};

using Tokens = std::vector<std::string>;
std::string sp(int n) {
  return std::string(n, ' ');
}

std::string with_field(const json& base, const std::function<void(json&)>& edit, const mft::test::TempDir& dir) {
  json j = base;
  edit(j);
  const std::string path = dir.file("tokenizer.json");
  mft::test::write_json(path, j);
  return path;
}
}  // namespace

TEST_CASE("pre-tokenisation follows the GPT-2 regex and added tokens (formats.md 4.4)", "[tokenizer]") {
  for (const bool pairs : {false, true}) {
    INFO("merges as " << (pairs ? "pairs" : "\"a b\" strings"));
    const Fixture f(pairs);
    CHECK(f.tokens("Hello, world!") == Tokens{"Hello", ",", "Ġworld", "!"});
    CHECK(f.tokens("hello  world") == Tokens{"hello", sp(2), "world"});  // `world` without Ġ
    CHECK(f.tokens("    four") == Tokens{sp(4), "four"});
    CHECK(f.tokens("a \nb") == Tokens{"a", "Ġ", "Ċ", "b"});
    CHECK(f.tokens(" \n") == Tokens{"ĠĊ"});
    CHECK(f.tokens("x \n\n y") == Tokens{"x", "ĠĊĊ", "Ġy"});
    CHECK(f.tokens("line1\n  indented") == Tokens{"line", "1", "Ċ", sp(2), "indented"});
    CHECK(f.tokens("Hello\r\nWorld") == Tokens{"Hello", "č", "Ċ", "World"});
    CHECK(f.tokens("12345 678") == Tokens{"12345", "Ġ678"});
    CHECK(f.tokens("don't I'm we'll") == Tokens{"don", "'t", "ĠI", "'m", "Ġwe", "'ll"});
    CHECK(f.tokens("IT'S") == Tokens{"IT", "'", "S"});  // contractions are case-sensitive
    CHECK(f.tokens("café naïve") == Tokens{"cafÃ©", "ĠnaÃ¯ve"});
    CHECK(f.tokens("cafe\u0301 nai\u0308ve") == Tokens{"cafÃ©", "ĠnaÃ¯ve"});  // NFC first
    CHECK(f.tokens("a\u00a0b") == Tokens{"a", "Âł", "b"});
    CHECK(f.tokens("<|endoftext|>The") == Tokens{"<|endoftext|>", "The"});
    CHECK(f.tokens("The cat sat on the mat.") == Tokens{"The", "Ġcat", "Ġsat", "Ġon", "Ġthe", "Ġmat", "."});
    CHECK(f.tokens(" hello") == Tokens{"Ġhello"});
    CHECK(f.tokens("hello") == Tokens{"hello"});       // add_prefix_space is false
    CHECK(f.tokens(sp(30)) == Tokens{sp(24), sp(6)});  // greedy space runs
    CHECK(f.tokens("trailing   ") == Tokens{"trailing", sp(3)});
    CHECK(f.tokens("a\t  b") == Tokens{"a", "ĉ", sp(2), "b"});  // tabs never join the space-run tokens
    CHECK(f.tokens("x<|padding|><|endoftext|>") == Tokens{"x", "<|padding|>", "<|endoftext|>"});
    const auto unfinished = f.tok->encode("<|endoftext|");  // plain text, not the special token
    CHECK(std::find(unfinished.begin(), unfinished.end(), 0) == unfinished.end());
    CHECK(f.tok->decode(unfinished) == "<|endoftext|");
    CHECK(f.tokens("").empty());
  }
}

TEST_CASE("BPE merges the lowest-ranked pair first, all occurrences left to right", "[tokenizer]") {
  // formats.md 4.5: vocab {specials, bytes, Ġt, he, Ġthe, ĠĠ}, merges [Ġ t, h e, Ġt he, Ġ Ġ].
  mft::test::TempDir dir;
  json j = mft::test::neox_like_json({}, false);
  auto& vocab = j["model"]["vocab"];
  int64_t next = 258;
  for (const char* t : {"Ġt", "he", "Ġthe", "ĠĠ"}) vocab[t] = next++;
  j["model"]["merges"] = {"Ġ t", "h e", "Ġt he", "Ġ Ġ"};
  j["added_tokens"] = json::array({j["added_tokens"][0], j["added_tokens"][1]});
  mft::test::write_json(dir.file("tokenizer.json"), j);
  const auto tok = mft::load_tokenizer(dir.file("tokenizer.json"));
  const auto strings = [&](const std::string& text) {
    Tokens out;
    for (const int64_t id : tok->encode(text)) out.push_back(tok->token_to_string(id));
    return out;
  };
  CHECK(strings("the the<|endoftext|>") == Tokens{"t", "he", "Ġthe", "<|endoftext|>"});
  CHECK(strings("  the") == Tokens{"Ġ", "Ġthe"});
  CHECK(strings("hehehe") == Tokens{"he", "he", "he"});
  CHECK(tok->vocab_size() == 262);

  // ignore_merges: a piece that is in the vocab is one token even when the merges cannot reach it.
  j["model"]["vocab"]["Ġtthe"] = next++;
  mft::test::write_json(dir.file("tokenizer.json"), j);
  CHECK(mft::load_tokenizer(dir.path.string())->encode(" tthe").size() == 3);  // Ġt t he
  j["model"]["ignore_merges"] = true;
  mft::test::write_json(dir.file("tokenizer.json"), j);
  const auto ignoring = mft::load_tokenizer(dir.path.string());
  CHECK(ignoring->encode(" tthe") == std::vector<int64_t>{next - 1});
}

TEST_CASE("bytes missing from the vocab: unk token (fused or not) or dropped, as HF", "[tokenizer]") {
  mft::test::TempDir dir;
  json j = mft::test::neox_like_json({}, false);
  j["model"]["vocab"].erase(mft::test::table_chars("\xC3"));  // "é" is C3 A9
  j["model"]["vocab"].erase(mft::test::table_chars("\xA9"));
  const auto encode = [&](const json& unk, bool fuse) {
    j["model"]["unk_token"] = unk;
    j["model"]["fuse_unk"] = fuse;
    mft::test::write_json(dir.file("tokenizer.json"), j);
    return mft::load_tokenizer(dir.path.string())->encode("aé");
  };
  const int64_t a = 2 + 'a';
  CHECK(encode(nullptr, false) == std::vector<int64_t>{a});
  CHECK(encode("<|padding|>", false) == std::vector<int64_t>{a, 1, 1});
  CHECK(encode("<|padding|>", true) == std::vector<int64_t>{a, 1});
}

TEST_CASE("ids, vocabulary size, special tokens and decoding", "[tokenizer]") {
  const Fixture f;
  CHECK(f.tok->eos_token_id() == 0);
  CHECK(f.tok->bos_token_id() == 0);
  CHECK(f.tok->token_to_id("<|padding|>") == 1);
  CHECK(f.tok->token_to_id("Ġworld").has_value());
  CHECK_FALSE(f.tok->token_to_id("no such token").has_value());
  // Byte symbols start at 2 (in byte order); the space runs follow the BPE vocab: 24 spaces first.
  CHECK(f.tok->token_to_id("!") == 2 + '!');
  const int64_t base = f.tok->vocab_size() - 23;
  CHECK(f.tok->token_to_id(sp(24)) == base);
  CHECK(f.tok->token_to_id(sp(2)) == base + 22);
  CHECK_THROWS_WITH(f.tok->token_to_string(f.tok->vocab_size()), Contains("is not in the vocabulary"));

  const std::string text = "<|endoftext|>Hello,  wörld 日本語 🙂\r\n\tx<|padding|>";
  const auto ids = f.tok->encode(text);
  CHECK(f.tok->decode(ids) == text);
  CHECK(f.tok->decode(ids, /*skip_special_tokens=*/true) == "Hello,  wörld 日本語 🙂\r\n\tx");  // spaces stay
  // Ids outside the vocabulary are left out; a lone byte of a multi-byte character becomes U+FFFD.
  const int64_t first_byte_of_smiley = *f.tok->token_to_id(mft::test::table_chars("\xF0"));
  CHECK(f.tok->decode({first_byte_of_smiley}) == "\uFFFD");
  CHECK(f.tok->decode({*f.tok->token_to_id("hello"), f.tok->vocab_size() + 7, -1}) == "hello");
}

TEST_CASE("encode is thread-safe and the cache does not change results", "[tokenizer]") {
  const Fixture f;
  std::mt19937 rng(7);
  std::vector<std::string> texts;
  const std::vector<std::string> parts = {"Hello", " world", "  ", "日本", "🙂", "\n", "don't", "12345", "e\u0301"};
  for (int i = 0; i < 300; ++i) {
    std::string t;
    for (int k = 0; k < 12; ++k) t += parts[rng() % parts.size()];
    texts.push_back(t);
  }
  std::vector<std::vector<int64_t>> first;
  for (const auto& t : texts) first.push_back(f.tok->encode(t));  // fills the cache
  std::vector<std::vector<std::vector<int64_t>>> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results) {
    threads.emplace_back([&] {
      for (const auto& t : texts) r.push_back(f.tok->encode(t));
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) CHECK(r == first);
}

TEST_CASE("UTF-8: invalid input is refused, lossy decoding replaces maximal subparts", "[tokenizer]") {
  const Fixture f;
  CHECK_THROWS_WITH(f.tok->encode("abc\xFF"),
                    Contains("tokenizer.json: encode: the text is not valid UTF-8 (byte 3 is 0xFF)"));
  CHECK_THROWS_WITH(f.tok->encode("\xED\xA0\x80"), Contains("not valid UTF-8 (byte 0 is 0xED)"));  // a surrogate
  CHECK_THROWS_WITH(f.tok->encode("\xC0\xAF"), Contains("not valid UTF-8"));                       // overlong
  using mft::tok::to_utf8_lossy;
  const std::string r = "\uFFFD";
  CHECK(to_utf8_lossy("ok \xF0\x9F\x99\x82") == "ok 🙂");
  CHECK(to_utf8_lossy("\xF0\x9F\x99") == r);  // truncated 4-byte sequence: one U+FFFD
  CHECK(to_utf8_lossy("\xF0\x9F\x99x") == r + "x");
  CHECK(to_utf8_lossy("\xE0\x80") == r + r);                  // E0 needs A0..BF next
  CHECK(to_utf8_lossy("\xED\xA0\x80") == r + r + r);          // surrogates
  CHECK(to_utf8_lossy("\xF4\x90\x80\x80") == r + r + r + r);  // above U+10FFFF
  CHECK(to_utf8_lossy("\xC0\xAF") == r + r);
  CHECK(to_utf8_lossy("a\x80"
                      "b") == "a" + r + "b");
  CHECK(mft::tok::nfc("A\u030a o\u0323\u0302") == "\u00c5 \u1ed9");
}

TEST_CASE("byte tokenizer: bytes as ids, specials after them, lossy decode", "[tokenizer]") {
  const auto tok = mft::make_byte_tokenizer();
  CHECK(tok->vocab_size() == 258);
  CHECK(tok->eos_token_id() == 256);
  CHECK(tok->bos_token_id() == 256);
  CHECK(tok->token_to_id("<|padding|>") == 257);
  CHECK(tok->token_to_id("A") == 65);
  CHECK(tok->token_to_string(256) == "<|endoftext|>");
  CHECK(tok->encode("hé") == std::vector<int64_t>{'h', 0xC3, 0xA9});
  CHECK(tok->encode("a<|endoftext|>b<|padding|>") == std::vector<int64_t>{'a', 256, 'b', 257});
  const std::string text = "Hello, 世界 🙂\n<|endoftext|>\tend";
  CHECK(tok->decode(tok->encode(text)) == text);
  CHECK(tok->decode(tok->encode(text), true) == "Hello, 世界 🙂\n\tend");
  CHECK(tok->decode({0xF0, 0x9F, 'x', 999}) == "\uFFFDx");
  std::mt19937 rng(3);
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes += static_cast<char>(rng() % 256);
  const auto ids = tok->encode(bytes);
  CHECK(ids.size() == bytes.size());
  CHECK(tok->decode(ids) == mft::tok::to_utf8_lossy(bytes));
  CHECK_THROWS_WITH(tok->token_to_string(258), Contains("not in the vocabulary"));
}

TEST_CASE("bad tokenizer files: errors name the file, the field and the value", "[tokenizer]") {
  mft::test::TempDir dir;
  const json base = mft::test::neox_like_json({"ab"}, false);
  const auto load_with = [&](const std::function<void(json&)>& edit) {
    return mft::load_tokenizer(with_field(base, edit, dir));
  };
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["type"] = "WordPiece"; }),
                    Contains("tokenizer.json: model.type \"WordPiece\" is not supported (expected \"BPE\")"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"].erase("vocab"); }),
                    Contains("tokenizer.json: model.vocab is missing"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["merges"].push_back("a zz"); }),
                    Contains("tokenizer.json: model.merges[1] \"a zz\": \"zz\" is not in model.vocab"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["merges"].push_back("a b c"); }),
                    Contains("model.merges[1] \"a b c\" must be two tokens separated by one space"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["vocab"]["x"] = "seven"; }),
                    Contains("model.vocab[\"x\"] must be an id in [0, 16777216); got \"seven\""));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["normalizer"] = {{"type", "Lowercase"}};
                    }),
                    Contains("normalizer.type \"Lowercase\" is not supported (expected \"NFC\" or null)"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
                    }),
                    Contains("normalizer.normalizers[0].type \"NFKC\" is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["pre_tokenizer"] = {{"type", "Whitespace"}};
                    }),
                    Contains("pre_tokenizer.type \"Whitespace\" is not supported (expected \"ByteLevel\")"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["post_processor"] = {{"type", "TemplateProcessing"}};
                    }),
                    Contains("post_processor.type \"TemplateProcessing\" is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) { j.erase("decoder"); }), Contains("tokenizer.json: decoder is missing"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["decoder"] = {{"type", "Sequence"}, {"decoders", json::array()}};
                    }),
                    Contains("tokenizer.json: decoder must hold exactly one ByteLevel step; got 0"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["truncation"] = {{"max_length", 8}};
                    }),
                    Contains("truncation is set to {\"max_length\":8}"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["dropout"] = 0.1; }),
                    Contains("model.dropout 0.1 is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["added_tokens"][0].erase("content"); }),
                    Contains("added_tokens[0].content is missing"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["unk_token"] = "<unk>"; }),
                    Contains("model.unk_token \"<unk>\" is not in model.vocab"));
  // Null normaliser, Sequence of NFC, absent use_regex: accepted.
  CHECK_NOTHROW(load_with([](json& j) { j["normalizer"] = nullptr; }));
  CHECK_NOTHROW(load_with([](json& j) {
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  }));

  std::ofstream(dir.file("tokenizer.json")) << "{\"model\": [1, 2";
  CHECK_THROWS_WITH(mft::load_tokenizer(dir.file("tokenizer.json")), Contains("tokenizer.json: not valid JSON"));
  CHECK_THROWS_WITH(mft::load_tokenizer(dir.file("missing.json")),
                    StartsWith(dir.file("missing.json")) && Contains("no such file"));
  mft::test::TempDir empty;
  CHECK_THROWS_WITH(mft::load_tokenizer(empty.path.string()),
                    Contains(empty.file("tokenizer.json") + ": no such file"));
}

TEST_CASE("tokenizer_config.json names BOS and EOS", "[tokenizer]") {
  mft::test::TempDir dir;
  mft::test::write_json(dir.file("tokenizer.json"), mft::test::neox_like_json({}, false));
  mft::test::write_json(dir.file("tokenizer_config.json"),
                        {{"bos_token", {{"content", "<|padding|>"}}}, {"eos_token", "<|endoftext|>"}});
  auto tok = mft::load_tokenizer(dir.path.string());
  CHECK(tok->bos_token_id() == 1);
  CHECK(tok->eos_token_id() == 0);
  mft::test::write_json(dir.file("tokenizer_config.json"), {{"eos_token", "</s>"}});
  CHECK_THROWS_WITH(mft::load_tokenizer(dir.path.string()),
                    Contains("tokenizer_config.json: special token \"</s>\" is not in the vocabulary"));
}

TEST_CASE("tokenizer.json from an untrusted source: nesting is bounded, bad values quoted briefly", "[tokenizer]") {
  mft::test::TempDir dir;
  {
    std::ofstream out(dir.file("deep.json"));
    out << "{\"version\": \"1.0\", \"x\": " << std::string(70000, '[') << std::string(70000, ']') << "}";
  }
  CHECK_THROWS_WITH(mft::load_tokenizer(dir.file("deep.json")),
                    StartsWith(dir.file("deep.json") + ": JSON nested deeper than 512 levels"));
  json j = mft::test::neox_like_json({" hello"}, false);
  j["model"]["type"] = std::string(10000, 'W');
  mft::test::write_json(dir.file("long.json"), j);
  try {
    mft::load_tokenizer(dir.file("long.json"));
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).size() < 300);  // the 10,000-character value is cut
  }
}
