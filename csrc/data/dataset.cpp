#include "data/dataset.h"

#include "core/json_parse.h"
#include "data/random.h"
#include "data/records.h"
#include "data/templates.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace mft::data {
namespace {
using nlohmann::json;
namespace fs = std::filesystem;

// A problem with one record: reported as file:line, or counted when skip_bad_records.
struct BadRecord : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string shown(const json& v) {
  return json_excerpt(v);
}

// j[key] as a string; absent is an error unless `fallback` (then it, as for null).
std::string get_string(const json& j, const char* key, const char* fallback = nullptr) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback != nullptr) return fallback;
    throw BadRecord(std::string("missing field \"") + key + "\"");
  }
  if (!it->is_string()) throw BadRecord(std::string("field \"") + key + "\" must be a string; got " + shown(*it));
  return it->get<std::string>();
}

json parse_record(const RawRecord& r) {
  json j;
  try {
    j = parse_json(r.text);
  } catch (const JsonError& e) {
    throw BadRecord(e.what());
  }
  if (!j.is_object()) throw BadRecord("expected a JSON object; got " + shown(j));
  return j;
}

// Alpaca record: the prompt as render_prompt gives it (the with-input template is not a chat turn), then
// the response, the template's end-of-turn text and EOS.
std::vector<Segment> alpaca_segments(const json& j, const DataOptions& opt) {
  const std::string instruction = get_string(j, "instruction");
  const std::string input = get_string(j, "input", "");
  const std::string output = get_string(j, "output");
  return {{render_prompt(opt.template_name, instruction, input), false, false},
          {output + end_of_turn(opt.template_name), true, false},
          {"", true, true}};
}

std::vector<Message> chat_messages(const json& j) {
  const bool sharegpt = j.contains("conversations");
  if (!sharegpt && !j.contains("messages")) throw BadRecord("expected a \"conversations\" or \"messages\" array");
  const json& turns = sharegpt ? j["conversations"] : j["messages"];
  if (!turns.is_array())
    throw BadRecord(std::string(sharegpt ? "\"conversations\"" : "\"messages\"") + " must be an array; got " +
                    shown(turns));
  std::vector<Message> out;
  bool any_assistant = false;
  for (const json& t : turns) {
    if (!t.is_object()) throw BadRecord("each turn must be a JSON object; got " + shown(t));
    Message m;
    const std::string role = get_string(t, sharegpt ? "from" : "role");
    m.content = get_string(t, sharegpt ? "value" : "content");
    if (role == "human" || role == "user") {
      m.role = "user";
    } else if (role == "gpt" || role == "assistant") {
      m.role = "assistant";
      any_assistant = true;
    } else if (role == "system") {
      m.role = "system";
    } else {
      throw BadRecord("unknown role \"" + role + "\"; expected system, human/user or gpt/assistant");
    }
    const auto w = t.find("weight");
    if (w != t.end() && !w->is_null()) {
      if (!w->is_number()) throw BadRecord("\"weight\" must be a number or null; got " + shown(*w));
      m.trained = w->get<double>() > 0;
    }
    out.push_back(std::move(m));
  }
  if (!any_assistant) throw BadRecord("the conversation has no assistant (gpt) turn to train on");
  return out;
}

// Tokens and labels of rendered segments: trained segments get their ids as labels (all of them
// when !response_only).
Example tokenize(const std::vector<Segment>& segments, const Tokenizer& tok, int64_t eos, bool response_only) {
  Example ex;
  for (const Segment& s : segments) {
    const std::vector<int64_t> ids = s.eos ? std::vector<int64_t>{eos} : tok.encode(s.text);
    const bool trained = s.trained || !response_only;
    for (int64_t id : ids) {
      ex.ids.push_back(id);
      ex.labels.push_back(trained ? id : kIgnoreIndex);
    }
  }
  return ex;
}

// Cuts `ex` to max_length; false when no target is left (position 0 is never a target after the shift).
bool fit(Example& ex, int64_t max_length, LoadReport& report) {
  if (static_cast<int64_t>(ex.ids.size()) > max_length) {
    ex.ids.resize(static_cast<size_t>(max_length));
    ex.labels.resize(static_cast<size_t>(max_length));
    ++report.truncated;
  }
  const bool any = std::any_of(ex.labels.begin() + std::min<size_t>(1, ex.labels.size()), ex.labels.end(),
                               [](int64_t l) { return l != kIgnoreIndex; });
  if (!any) ++report.dropped;
  return any;
}

void load_records(const std::string& path, const Tokenizer& tok, const DataOptions& opt, int64_t eos,
                  LoadReport& report, std::vector<Example>& out) {
  const bool alpaca = opt.format == "alpaca";
  for (const RawRecord& r : split_json_records(read_text_file(path), path)) {
    Example ex;
    try {
      const json j = parse_record(r);
      const std::vector<Segment> segments =
          alpaca ? alpaca_segments(j, opt) : render_conversation(opt.template_name, chat_messages(j));
      ex = tokenize(segments, tok, eos, opt.response_only_loss);
    } catch (const BadRecord& e) {
      if (!opt.skip_bad_records) throw std::runtime_error(path + ":" + std::to_string(r.line) + ": " + e.what());
      ++report.skipped;
      continue;
    }
    ++report.records;
    if (fit(ex, opt.max_length, report)) out.push_back(std::move(ex));
  }
}

// Paragraphs separated by blank (or whitespace-only) lines, each without its surrounding blank lines.
std::vector<std::string> paragraphs(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    } else {
      current += current.empty() ? line : "\n" + line;
    }
    pos = end + 1;
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

// One document + EOS in windows of max_length overlapping by one token; a later window's first token was
// the previous window's last target, so it is not a target again.
void chunk_document(const std::string& doc, const Tokenizer& tok, int64_t eos, int64_t max_length,
                    std::vector<Example>& out) {
  std::vector<int64_t> ids = tok.encode(doc);
  ids.push_back(eos);
  const auto n = static_cast<int64_t>(ids.size());
  for (int64_t start = 0;; start += max_length - 1) {
    const int64_t end = std::min(start + max_length, n);
    Example ex;
    ex.ids.assign(ids.begin() + start, ids.begin() + end);
    ex.labels = ex.ids;
    if (start > 0) ex.labels[0] = kIgnoreIndex;
    out.push_back(std::move(ex));
    if (end == n) break;
  }
}

void load_text(const std::string& path, const Tokenizer& tok, const DataOptions& opt, int64_t eos, LoadReport& report,
               std::vector<Example>& out) {
  std::vector<std::string> docs;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw std::runtime_error("data folder '" + path + "' has no .txt files");
    for (const fs::path& f : files) docs.push_back(read_text_file(f.string()));
  } else {
    docs = paragraphs(read_text_file(path));
  }
  for (const std::string& d : docs) {
    if (d.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    ++report.records;
    chunk_document(d, tok, eos, opt.max_length, out);
  }
}

}  // namespace

std::vector<Example> load_examples(const std::string& path, const Tokenizer& tok, const DataOptions& opt,
                                   LoadReport* report) {
  if (opt.format != "alpaca" && opt.format != "sharegpt" && opt.format != "text")
    throw std::runtime_error("unknown data format '" + opt.format + "'; expected one of alpaca, sharegpt, text");
  check_template(opt.template_name);
  // Two tokens are the least that holds one target after the shift.
  if (opt.max_length < 2)
    throw std::runtime_error("data: max_length must be at least 2; got " + std::to_string(opt.max_length));
  const std::optional<int64_t> eos = tok.eos_token_id();
  if (!eos) throw std::runtime_error("data: the tokenizer has no EOS token, which ends every example");
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error("data file '" + path + "' does not exist");
  if (opt.format != "text" && fs::is_directory(path, ec))
    throw std::runtime_error("data file '" + path + "' is a folder; only the text format reads folders");

  LoadReport local;
  LoadReport& r = report != nullptr ? *report : local;
  r = LoadReport{};
  std::vector<Example> out;
  if (opt.format == "text") {
    load_text(path, tok, opt, *eos, r, out);
  } else {
    load_records(path, tok, opt, *eos, r, out);
  }
  return out;
}

std::pair<std::vector<Example>, std::vector<Example>> split(std::vector<Example> all, double val_fraction,
                                                            uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    throw std::runtime_error("data: val_fraction must be in [0, 1); got " + std::to_string(val_fraction));
  const auto n = static_cast<int64_t>(all.size());
  auto n_val = static_cast<int64_t>(std::llround(static_cast<double>(n) * val_fraction));
  if (val_fraction > 0 && n >= 2) n_val = std::clamp<int64_t>(n_val, 1, n - 1);
  // A stream of the seed that BatchStream's epochs (streams 0, 1, ...) do not use.
  constexpr uint64_t kSplitStream = 0x5E1EC7ull << 40;
  std::mt19937_64 rng = make_rng(seed, kSplitStream);
  const std::vector<int64_t> order = shuffled_indices(n, rng);
  std::vector<bool> is_val(static_cast<size_t>(n), false);
  for (int64_t i = 0; i < n_val; ++i) is_val[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  std::vector<Example> train, val;
  for (int64_t i = 0; i < n; ++i) (is_val[static_cast<size_t>(i)] ? val : train).push_back(std::move(all[i]));
  return {std::move(train), std::move(val)};
}

}  // namespace mft::data
