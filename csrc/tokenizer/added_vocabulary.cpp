#include "tokenizer/added_vocabulary.h"

#include "tokenizer/utf8.h"

#include <algorithm>

namespace mft::tok {
namespace {
// The code point that ends just before byte `end` of valid UTF-8 `s` (end > 0).
char32_t code_point_before(std::string_view s, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xC0) == 0x80) --begin;
  return next_code_point(s, begin);
}

// Start of the run of whitespace that ends at `end` (HF: regex \s*$ on text[..end]).
size_t whitespace_run_start(std::string_view s, size_t end) {
  while (end > 0) {
    size_t begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xC0) == 0x80) --begin;
    size_t i = begin;
    if (!is_white_space(next_code_point(s, i))) break;
    end = begin;
  }
  return end;
}

// End of the run of whitespace that starts at `begin` (HF: regex ^\s* on text[begin..]).
size_t whitespace_run_end(std::string_view s, size_t begin) {
  while (begin < s.size()) {
    size_t i = begin;
    if (!is_white_space(next_code_point(s, i))) break;
    begin = i;
  }
  return begin;
}
}  // namespace

PatternTrie::PatternTrie() : nodes_(1) {}

int32_t PatternTrie::child(int32_t node, unsigned char byte) const {
  for (const auto& [b, next] : nodes_[node].children) {
    if (b == byte) return next;
  }
  return -1;
}

void PatternTrie::insert(std::string_view pattern, int32_t value) {
  if (pattern.empty()) return;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (const char ch : pattern) {
    const auto b = static_cast<unsigned char>(ch);
    int32_t next = child(node, b);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(b, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  nodes_[node].value = value;
}

std::vector<PatternTrie::Match> PatternTrie::find_all(std::string_view text) const {
  std::vector<Match> matches;
  if (empty()) return matches;
  size_t at = 0;
  while (at < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[at])]) {
      ++at;
      continue;
    }
    int32_t node = 0, value = -1;
    size_t end = at;
    for (size_t i = at; i < text.size(); ++i) {
      node = child(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      if (nodes_[node].value >= 0) {
        value = nodes_[node].value;
        end = i + 1;
      }
    }
    if (value < 0) {
      ++at;
      continue;
    }
    matches.push_back({at, end, value});
    at = end;
  }
  return matches;
}

AddedVocabulary::AddedVocabulary(std::vector<Entry> entries) : entries_(std::move(entries)) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    auto& trie = entries_[i].token.normalized ? normalized_ : raw_;
    trie.insert(entries_[i].pattern, static_cast<int32_t>(i));
  }
}

std::vector<Segment> AddedVocabulary::split(std::string_view text, bool normalized_pass) const {
  std::vector<Segment> segments;
  const PatternTrie& trie = normalized_pass ? normalized_ : raw_;
  size_t done = 0;  // end of the previous token (HF's start_offset)
  for (const auto& m : trie.find_all(text)) {
    const Entry& e = entries_[m.value];
    size_t begin = m.begin, end = m.end;
    if (e.token.single_word) {
      const bool word_before = begin > 0 && is_word_char(code_point_before(text, begin));
      size_t after = end;
      const bool word_after = end < text.size() && is_word_char(next_code_point(text, after));
      // A discarded match still consumed its span in the scan (HF iterates the same matches).
      if (word_before || word_after) continue;
    }
    if (e.token.lstrip) begin = std::max(whitespace_run_start(text, begin), done);
    if (e.token.rstrip) end = whitespace_run_end(text, end);
    if (done < begin) segments.push_back({done, begin, -1});
    segments.push_back({begin, end, e.id});
    done = end;
  }
  if (done < text.size()) segments.push_back({done, text.size(), -1});
  return segments;
}

}  // namespace mft::tok
