#pragma once
// Added tokens (tokenizer.json "added_tokens"): found in the text before the model sees it, the way HF
// `tokenizers` does (AddedVocabulary::find_matches): leftmost-longest matches over all token strings,
// then single_word / lstrip / rstrip adjustments. Tokens with normalized=false are matched in the raw
// text, those with normalized=true in the normalised text (two passes, done by the caller).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mft::tok {

struct AddedToken {
  std::string content;
  bool special = false;
  bool single_word = false;  // only where not preceded or followed by a \w character
  bool lstrip = false;       // also takes the whitespace before it
  bool rstrip = false;       // also takes the whitespace after it
  bool normalized = true;    // matched in the normalised text (pattern = normalised content)
};

// A slice [begin, end) of the searched text: an added token (id >= 0) or text for the model (id < 0).
struct Segment {
  size_t begin = 0, end = 0;
  int64_t id = -1;
};

// Leftmost-longest string matching: at the leftmost position where any pattern starts, the longest
// pattern starting there; then on from its end. Same results as Aho-Corasick with LeftmostLongest.
class PatternTrie {
 public:
  PatternTrie();
  void insert(std::string_view pattern, int32_t value);
  bool empty() const { return nodes_.size() == 1; }
  struct Match {
    size_t begin, end;
    int32_t value;
  };
  std::vector<Match> find_all(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // (byte, node index), few per node
    int32_t value = -1;
  };
  int32_t child(int32_t node, unsigned char byte) const;
  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_{};  // lets the scan skip positions where no pattern can start
};

class AddedVocabulary {
 public:
  // `tokens`: (id, token, pattern) with pattern = the string to find (normalised content for
  // normalized tokens when there is a normaliser, else the content).
  struct Entry {
    int64_t id;
    AddedToken token;
    std::string pattern;
  };
  explicit AddedVocabulary(std::vector<Entry> entries);

  // Splits `text` on the tokens of one pass (normalized == false: raw pass; true: normalised pass).
  // Segments cover the text in order; empty text segments are left out.
  std::vector<Segment> split(std::string_view text, bool normalized_pass) const;

  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  PatternTrie raw_, normalized_;
};

}  // namespace mft::tok
