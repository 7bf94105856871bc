#include "tokenizer_files.h"

#include "tokenizer/byte_level.h"

#include <set>

namespace mft::test {
using nlohmann::json;

std::string table_chars(const std::string& bytes) {
  return tok::bytes_to_table_chars(bytes);
}

json neox_like_json(const std::vector<std::string>& words, bool merges_as_pairs) {
  json vocab = json::object();
  int64_t next = 0;
  vocab["<|endoftext|>"] = next++;
  vocab["<|padding|>"] = next++;
  for (int b = 0; b < 256; ++b) vocab[table_chars(std::string(1, static_cast<char>(b)))] = next++;
  json merges = json::array();
  std::set<std::pair<std::string, std::string>> seen;
  for (const std::string& word : words) {
    // Merge chain over the table characters of the word: ((c1 c2) c3) ...
    std::vector<std::string> symbols;
    for (size_t i = 0; i < word.size(); ++i) symbols.push_back(table_chars(word.substr(i, 1)));
    std::string left = symbols.empty() ? "" : symbols[0];
    for (size_t i = 1; i < symbols.size(); ++i) {
      if (seen.insert({left, symbols[i]}).second) {
        merges.push_back(merges_as_pairs ? json::array({left, symbols[i]}) : json(left + " " + symbols[i]));
        if (!vocab.contains(left + symbols[i])) vocab[left + symbols[i]] = next++;
      }
      left += symbols[i];
    }
  }
  json added = json::array();
  const auto add = [&](int64_t id, const std::string& content, bool special) {
    added.push_back({{"id", id},
                     {"special", special},
                     {"content", content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", !special}});
  };
  add(0, "<|endoftext|>", true);
  add(1, "<|padding|>", true);
  for (int n = 24; n >= 2; --n) add(next + (24 - n), std::string(n, ' '), false);
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer", byte_level},
          {"post_processor", byte_level},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

void write_json(const std::string& path, const json& j) {
  std::ofstream(path) << j.dump(2);
}

}  // namespace mft::test
