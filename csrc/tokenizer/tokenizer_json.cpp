#include "tokenizer/tokenizer_json.h"

#include <nlohmann/json.hpp>
#include "core/json_parse.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mft::tok {
namespace {
using nlohmann::json;

// Ids index dense tables; a bound keeps a corrupt id from allocating gigabytes (real vocabularies
// are below 300k).
constexpr int64_t kMaxTokenId = int64_t(1) << 24;
// Values quoted in messages are cut to this many characters.
constexpr size_t kMaxShownChars = 60;

std::string shown(const json& v) {
  return json_excerpt(v, kMaxShownChars);
}

// Errors of one file: "<path>: <field> <problem>".
struct Reader {
  std::string path;

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw std::runtime_error(path + ": " + field + " " + problem);
  }
  const json& member(const json& obj, const std::string& field, const std::string& key) const {
    const std::string name = field.empty() ? key : field + "." + key;
    if (!obj.contains(key)) fail(name, "is missing");
    return obj.at(key);
  }
  bool boolean(const json& obj, const std::string& field, const std::string& key, bool fallback) const {
    if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
    const json& v = obj.at(key);
    if (!v.is_boolean()) fail(field + "." + key, "must be true or false; got " + shown(v));
    return v.get<bool>();
  }
  std::string type_of(const json& component, const std::string& field) const {
    if (!component.is_object()) fail(field, "must be an object; got " + shown(component));
    const json& t = member(component, field, "type");
    if (!t.is_string()) fail(field + ".type", "must be a string; got " + shown(t));
    return t.get<std::string>();
  }
  // A component that must be `expected`, alone or as the only kind of step in a Sequence whose list is
  // under `list_key`. Calls `each` for every such step.
  template <typename F>
  void steps(const json& component, const std::string& field, const std::string& expected, const std::string& list_key,
             const std::string& hint, F each) const {
    const std::string type = type_of(component, field);
    if (type == "Sequence") {
      const json& list = member(component, field, list_key);
      if (!list.is_array()) fail(field + "." + list_key, "must be an array; got " + shown(list));
      for (size_t i = 0; i < list.size(); ++i) {
        steps(list[i], field + "." + list_key + "[" + std::to_string(i) + "]", expected, list_key, hint, each);
      }
      return;
    }
    if (type != expected) {
      fail(field + ".type", shown(json(type)) + " is not supported (expected \"" + expected + "\"" + hint + ")");
    }
    each(component, field);
  }
};

json parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return parse_json(buffer.str());
  } catch (const JsonError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

void read_pipeline(const Reader& r, const json& root, TokenizerSpec& spec) {
  if (root.contains("version") && root["version"] != "1.0") {
    r.fail("version", shown(root["version"]) + " is not supported (expected \"1.0\")");
  }
  for (const char* key : {"truncation", "padding"}) {
    if (root.contains(key) && !root[key].is_null()) {
      r.fail(key, "is set to " + shown(root[key]) + "; not supported (expected null: encode never truncates or pads)");
    }
  }
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    r.steps(root["normalizer"], "normalizer", "NFC", "normalizers", " or null",
            [&](const json&, const std::string&) { spec.nfc = true; });
  }
  // Exactly one ByteLevel step in the pre-tokeniser and in the decoder (an empty Sequence would skip the
  // byte mapping, two would apply it twice).
  int pre_steps = 0, decoder_steps = 0;
  r.steps(r.member(root, "", "pre_tokenizer"), "pre_tokenizer", "ByteLevel", "pretokenizers", "",
          [&](const json& c, const std::string& field) {
            ++pre_steps;
            // HF's ByteLevel defaults: add_prefix_space true, use_regex true.
            spec.add_prefix_space = r.boolean(c, field, "add_prefix_space", true);
            spec.use_regex = r.boolean(c, field, "use_regex", true);
          });
  if (root.contains("post_processor") && !root["post_processor"].is_null()) {
    // ByteLevel only trims offsets; others (TemplateProcessing, ...) would add tokens.
    r.steps(root["post_processor"], "post_processor", "ByteLevel", "processors", " or null",
            [](const json&, const std::string&) {});
  }
  r.steps(r.member(root, "", "decoder"), "decoder", "ByteLevel", "decoders", "",
          [&](const json&, const std::string&) { ++decoder_steps; });
  for (const auto& [field, n] : {std::pair<const char*, int>{"pre_tokenizer", pre_steps}, {"decoder", decoder_steps}}) {
    if (n != 1) r.fail(field, "must hold exactly one ByteLevel step; got " + std::to_string(n));
  }
}

void read_added_tokens(const Reader& r, const json& root, TokenizerSpec& spec) {
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return;
  const json& list = root["added_tokens"];
  if (!list.is_array()) r.fail("added_tokens", "must be an array; got " + shown(list));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    const json& t = list[i];
    if (!t.is_object()) r.fail(field, "must be an object; got " + shown(t));
    const json& content = r.member(t, field, "content");
    if (!content.is_string()) r.fail(field + ".content", "must be a string; got " + shown(content));
    AddedToken a;
    a.content = content.get<std::string>();
    a.special = r.boolean(t, field, "special", false);
    a.single_word = r.boolean(t, field, "single_word", false);
    a.lstrip = r.boolean(t, field, "lstrip", false);
    a.rstrip = r.boolean(t, field, "rstrip", false);
    a.normalized = r.boolean(t, field, "normalized", !a.special);  // HF AddedToken::from's default
    spec.added_tokens.push_back(std::move(a));
  }
}

std::pair<std::string, std::string> read_merge(const Reader& r, const json& m, const std::string& field) {
  if (m.is_string()) {
    // "a b": exactly one space (HF splits on ' ' and wants two parts).
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
      r.fail(field, shown(m) + " must be two tokens separated by one space");
    }
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  }
  r.fail(field, "must be \"a b\" or [\"a\", \"b\"]; got " + shown(m));
}

void read_model(const Reader& r, const json& root, TokenizerSpec& spec) {
  const json& model = r.member(root, "", "model");
  const std::string type = r.type_of(model, "model");
  if (type != "BPE") r.fail("model.type", shown(json(type)) + " is not supported (expected \"BPE\")");
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    const json& d = model["dropout"];
    if (!d.is_number() || d.get<double>() != 0.0) {
      r.fail("model.dropout", shown(d) + " is not supported (expected null or 0: dropout is random)");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      r.fail(std::string("model.") + key, shown(model[key]) + " is not supported (expected null)");
    }
  }
  if (r.boolean(model, "model", "byte_fallback", false)) {
    r.fail("model.byte_fallback", "true is not supported (byte-level BPE has every byte in its vocab)");
  }
  spec.model.fuse_unk = r.boolean(model, "model", "fuse_unk", false);
  spec.model.ignore_merges = r.boolean(model, "model", "ignore_merges", false);
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    if (!model["unk_token"].is_string())
      r.fail("model.unk_token", "must be a string or null; got " + shown(model["unk_token"]));
    spec.model.unk_token = model["unk_token"].get<std::string>();
  }

  const json& vocab = r.member(model, "model", "vocab");
  if (!vocab.is_object()) r.fail("model.vocab", "must be an object of token -> id; got " + shown(vocab));
  spec.model.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxTokenId) {
      r.fail("model.vocab[" + json(token).dump() + "]",
             "must be an id in [0, " + std::to_string(kMaxTokenId) + "); got " + shown(id));
    }
    spec.model.vocab.emplace(token, id.get<int64_t>());
  }

  const json& merges = r.member(model, "model", "merges");
  if (!merges.is_array()) r.fail("model.merges", "must be an array; got " + shown(merges));
  spec.model.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    // Files written from merges.txt may keep its "#version" header line; HF skips it.
    if (merges[i].is_string() && merges[i].get<std::string>().rfind("#version", 0) == 0) continue;
    spec.model.merges.push_back(read_merge(r, merges[i], "model.merges[" + std::to_string(i) + "]"));
  }
}
}  // namespace

TokenizerSpec read_tokenizer_json(const std::string& path) {
  const Reader r{path};
  const json root = parse_file(path);
  if (!root.is_object()) r.fail("the top level", "must be a JSON object; got " + shown(root));
  TokenizerSpec spec;
  spec.path = path;
  read_model(r, root, spec);
  read_pipeline(r, root, spec);
  read_added_tokens(r, root, spec);
  return spec;
}

}  // namespace mft::tok
