#include "tokenizer/bpe_tokenizer.h"

#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace mft {
namespace {
// The bytes a token decodes to under HF's ByteLevel decoder: its table characters mapped back to
// bytes, or, if any character is outside the table (e.g. an added token made of plain spaces), the
// token's own UTF-8 bytes.
std::string token_bytes(const std::string& token) {
  std::string bytes;
  size_t i = 0;
  while (i < token.size()) {
    const int b = tok::char_to_byte(tok::next_code_point(token, i));
    if (b < 0) return token;
    bytes += static_cast<char>(b);
  }
  return bytes;
}
}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_file(const std::string& path) {
  return std::make_unique<BpeTokenizer>(tok::read_tokenizer_json(path));
}

BpeTokenizer::BpeTokenizer(tok::TokenizerSpec spec)
    : path_(spec.path),
      nfc_(spec.nfc),
      add_prefix_space_(spec.add_prefix_space),
      use_regex_(spec.use_regex),
      model_(std::move(spec.model), spec.path) {
  const auto& vocab = model_.vocab();
  // Ids of added tokens, as HF assigns them when loading (AddedVocabulary::add_tokens): a content seen
  // before keeps its id (its latest flags win), a content in the model vocab takes that id, others get
  // the next id from the model's vocab size on. The ids written in the file are not used (HF only warns
  // when they differ).
  int64_t next_id = static_cast<int64_t>(vocab.size());
  std::map<int64_t, tok::AddedToken> added;
  std::unordered_set<std::string> special_contents;
  for (auto& t : spec.added_tokens) {
    if (t.content.empty()) continue;
    int64_t id = 0;
    if (const auto a = added_ids_.find(t.content); a != added_ids_.end()) {
      id = a->second;
    } else if (const auto v = vocab.find(t.content); v != vocab.end()) {
      id = v->second;
    } else {
      id = next_id++;
    }
    added_ids_[t.content] = id;
    if (t.special) special_contents.insert(t.content);
    added[id] = std::move(t);
  }

  int64_t max_id = -1;
  for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
  if (!added.empty()) max_id = std::max(max_id, added.rbegin()->first);
  ids_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : vocab) {
    IdInfo& in = ids_[id];
    if (in.present) {
      throw std::runtime_error(path_ + ": model.vocab: id " + std::to_string(id) + " is given to both \"" + in.token +
                               "\" and \"" + token + "\"");
    }
    in.token = token;
    in.present = true;
  }
  std::vector<tok::AddedVocabulary::Entry> entries;
  for (auto& [id, t] : added) {
    // Normalized tokens are searched for, and decoded, in their normalised form.
    std::string pattern = t.normalized && nfc_ ? tok::nfc(t.content) : t.content;
    ids_[id].token = pattern;
    ids_[id].present = true;
    entries.push_back({id, std::move(t), std::move(pattern)});
  }
  added_ = std::make_unique<tok::AddedVocabulary>(std::move(entries));
  for (IdInfo& in : ids_) {
    if (!in.present) continue;
    in.bytes = token_bytes(in.token);
    // HF drops, under skip_special_tokens, every token whose string is a special token's content.
    in.special = special_contents.count(in.token) > 0;
  }
  int64_t overlapping = 0;
  for (const auto& [content, id] : added_ids_) overlapping += vocab.count(content) > 0 ? 1 : 0;
  vocab_size_ = static_cast<int64_t>(vocab.size() + added_ids_.size()) - overlapping;
}

void BpeTokenizer::encode_segment(std::string_view text, std::vector<int64_t>& ids) const {
  if (text.empty()) return;
  std::string prefixed;
  if (add_prefix_space_ && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  if (!use_regex_) {
    model_.encode_piece(text, ids);
    return;
  }
  splitter_.split(text, [&](std::string_view piece) { model_.encode_piece(piece, ids); });
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text) const {
  const size_t bad = tok::find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw std::runtime_error(path_ + ": encode: the text is not valid UTF-8 (byte " + std::to_string(bad) + " is " +
                             byte + ")");
  }
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for (const tok::Segment& raw : added_->split(text, /*normalized_pass=*/false)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string_view segment = text.substr(raw.begin, raw.end - raw.begin);
    const std::string normalized = nfc_ ? tok::nfc(segment) : std::string(segment);
    for (const tok::Segment& s : added_->split(normalized, /*normalized_pass=*/true)) {
      if (s.id >= 0) {
        ids.push_back(s.id);
      } else {
        encode_segment(std::string_view(normalized).substr(s.begin, s.end - s.begin), ids);
      }
    }
  }
  return ids;
}

const BpeTokenizer::IdInfo* BpeTokenizer::info(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(ids_.size()) || !ids_[id].present) return nullptr;
  return &ids_[id];
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const int64_t id : ids) {
    const IdInfo* in = info(id);
    if (in == nullptr || (skip_special_tokens && in->special)) continue;
    bytes += in->bytes;
  }
  // Byte tokens may split a character; the whole sequence is decoded at once, as HF does.
  return tok::to_utf8_lossy(bytes);
}

std::string BpeTokenizer::token_to_string(int64_t id) const {
  const IdInfo* in = info(id);
  if (in == nullptr) {
    throw std::runtime_error(path_ + ": token id " + std::to_string(id) + " is not in the vocabulary (" +
                             std::to_string(vocab_size_) + " tokens)");
  }
  return in->token;
}

std::optional<int64_t> BpeTokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (const auto a = added_ids_.find(key); a != added_ids_.end()) return a->second;
  if (const auto v = model_.vocab().find(key); v != model_.vocab().end()) return v->second;
  return std::nullopt;
}

}  // namespace mft
