#pragma once
// Test helpers: temporary folders and small hand-written tokenizer.json files.
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mft::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/mft-tokenizer-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// The GPT-2 byte table character of each byte, as UTF-8 ("Ġ" for ' ').
std::string table_chars(const std::string& bytes);

// A tokenizer.json with the GPT-NeoX-20B structure (formats.md §4.1): NFC, ByteLevel, BPE; vocab =
// <|endoftext|> 0, <|padding|> 1, the 256 byte symbols, then for each of `words` (plain text, e.g.
// " world") the tokens of a left-to-right merge chain ("Ġw", "Ġwo", ...) so that a piece equal to a word
// becomes one token; added tokens: the two specials and runs of 24 down to 2 spaces.
nlohmann::json neox_like_json(const std::vector<std::string>& words, bool merges_as_pairs);

void write_json(const std::string& path, const nlohmann::json& j);

}  // namespace mft::test
