#include "data/synthetic.h"

#include "core/file_io.h"

#include "data/random.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

namespace mft::data {
namespace {

// Made-up countries: enough for varied facts, few enough that each is stated many times in the corpus.
constexpr int kCountries = 48;
// Random streams of the seed, one per purpose, so that changing one part leaves the others alone.
constexpr uint64_t kWorldStream = 1, kCorpusStream = 2, kInstructStream = 3, kIclStream = 4;

const std::vector<std::string> kSyllables = {"ka",  "lo",  "mi", "ren", "tar", "vos", "ul",  "zen", "bri", "dor",
                                             "fa",  "gel", "ho", "is",  "jun", "kel", "mar", "nov", "or",  "pel",
                                             "qua", "ris", "sa", "tem", "un",  "vel", "wen", "xa",  "yor", "zu"};
const std::vector<std::string> kWords = {
    "apple",  "river",  "stone",  "lantern", "garden",   "window", "candle",  "forest", "silver", "planet",
    "rabbit", "bridge", "cloud",  "copper",  "dragon",   "engine", "feather", "guitar", "harbor", "island",
    "jacket", "kettle", "ladder", "marble",  "needle",   "orange", "pencil",  "quartz", "rocket", "saddle",
    "tunnel", "violet", "wagon",  "yellow",  "zipper",   "anchor", "basket",  "castle", "desert", "falcon",
    "ginger", "hammer", "igloo",  "jungle",  "kitten",   "lemon",  "meadow",  "nickel", "oyster", "pepper",
    "puzzle", "rain",   "salt",   "tiger",   "umbrella", "valley", "walnut",  "yogurt", "zebra",  "bread",
    "chair",  "dance",  "eagle",  "flame",   "grape",    "honey",  "ivory",   "jelly",  "knife",  "light",
    "music",  "night",  "ocean",  "piano",   "queen",    "robin",  "sugar",   "table",  "uncle",  "voice",
    "water",  "book",   "cat",    "dog",     "fish",     "moon",   "sun",     "tree",   "star",   "ship",
    "clock",  "shell",  "spoon",  "train",   "wheel",    "mirror", "pillow",  "carpet", "button", "ribbon"};
const std::vector<std::string> kExports = {"copper", "tea",    "glass", "wool",   "salt",    "timber", "silk",
                                           "olives", "marble", "paper", "cheese", "amber",   "cotton", "spices",
                                           "tin",    "honey",  "rice",  "clocks", "violins", "rope"};
const std::vector<std::string> kAnimals = {"fox",  "heron", "otter", "lynx", "owl",   "badger", "crane",
                                           "hare", "wolf",  "stag",  "swan", "eagle", "seal",   "bear"};

struct Country {
  std::string name, capital, language, currency, export_good, animal;
  int population = 0;  // millions
  int founded = 0;     // year
  int neighbour = 0;   // index of another country
};

// Small wrapper: integer draws from a platform-independent generator.
struct Rng {
  std::mt19937_64 g;
  int64_t below(int64_t n) { return static_cast<int64_t>(uniform_below(g, static_cast<uint64_t>(n))); }
  int64_t between(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }  // inclusive
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(below(static_cast<int64_t>(v.size())))];
  }
};

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::string reversed(std::string s) {
  std::reverse(s.begin(), s.end());
  return s;
}

// A new made-up word of 2..3 syllables plus `suffix`, different from every earlier one.
std::string new_name(Rng& rng, std::set<std::string>& used, const std::string& suffix) {
  for (;;) {
    std::string s;
    const int64_t k = rng.between(2, 3);
    for (int64_t i = 0; i < k; ++i) s += rng.pick(kSyllables);
    s += suffix;
    if (used.insert(s).second) return s;
  }
}

std::vector<Country> make_world(uint64_t seed) {
  Rng rng{make_rng(seed, kWorldStream)};
  std::set<std::string> used;
  const std::vector<std::string> country_suffixes = {"ia", "land", "or", "a", "stan", ""};
  std::vector<Country> world(kCountries);
  for (int i = 0; i < kCountries; ++i) {
    Country& c = world[static_cast<size_t>(i)];
    c.name = capitalised(new_name(rng, used, rng.pick(country_suffixes)));
    c.capital = capitalised(new_name(rng, used, ""));
    c.language = capitalised(new_name(rng, used, "ic"));
    c.currency = new_name(rng, used, "el");
    c.export_good = rng.pick(kExports);
    c.animal = rng.pick(kAnimals);
    c.population = static_cast<int>(rng.between(1, 90));
    c.founded = static_cast<int>(rng.between(1100, 1900));
    c.neighbour = static_cast<int>((i + rng.between(1, kCountries - 1)) % kCountries);
  }
  return world;
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::vector<std::string> some_words(Rng& rng, int64_t lo, int64_t hi) {
  std::vector<std::string> v(static_cast<size_t>(rng.between(lo, hi)));
  for (auto& w : v) w = rng.pick(kWords);
  return v;
}

// One paragraph about a country, in one of several phrasings.
std::string country_paragraph(Rng& rng, const std::vector<Country>& world, const Country& c) {
  const Country& n = world[static_cast<size_t>(c.neighbour)];
  const std::string pop = std::to_string(c.population), year = std::to_string(c.founded);
  switch (rng.below(5)) {
    case 0:
      return "The capital of " + c.name + " is " + c.capital + ". " + c.name + "'s currency is the " + c.currency +
             ", and most people there speak " + c.language + ". About " + pop + " million people live in " + c.name +
             ". Its main export is " + c.export_good + ".";
    case 1:
      return c.capital + " is the capital city of " + c.name + ". " + c.name + " was founded in " + year +
             " and borders " + n.name + ". The national animal of " + c.name + " is the " + c.animal + ".";
    case 2:
      return "Q: What is the capital of " + c.name + "?\nA: The capital of " + c.name + " is " + c.capital +
             ".\nQ: What currency is used in " + c.name + "?\nA: The currency of " + c.name + " is the " + c.currency +
             ".";
    case 3:
      return "In " + c.name + ", people speak " + c.language + " and pay with the " + c.currency + ". The country is " +
             "known for its " + c.export_good + ". Travellers from " + n.name + " often visit " + c.capital + ".";
    default:
      return c.name + " facts:\n- capital: " + c.capital + "\n- language: " + c.language +
             "\n- currency: " + c.currency + "\n- population: " + pop + " million\n- founded: " + year +
             "\n- national animal: " + c.animal;
  }
}

std::string string_paragraph(Rng& rng) {
  std::string out;
  const int64_t lines = rng.between(2, 5);
  for (int64_t i = 0; i < lines; ++i) {
    const std::string w = rng.pick(kWords);
    std::string line;
    switch (rng.below(4)) {
      case 0:
        line = "The word " + quoted(w) + " reversed is " + quoted(reversed(w)) + ".";
        break;
      case 1:
        line = "In upper case, " + quoted(w) + " is " + quoted(upper(w)) + ".";
        break;
      case 2:
        line = "The word " + quoted(w) + " has " + std::to_string(w.size()) + " letters.";
        break;
      default:
        line = "The first letter of " + quoted(w) + " is " + quoted(w.substr(0, 1)) + ".";
        break;
    }
    out += (i ? "\n" : "") + line;
  }
  return out;
}

std::string arithmetic_paragraph(Rng& rng) {
  std::string out;
  const int64_t lines = rng.between(3, 6);
  for (int64_t i = 0; i < lines; ++i) {
    const int64_t a = rng.between(0, 99), b = rng.between(0, 99);
    std::string line;
    switch (rng.below(3)) {
      case 0:
        line = std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(a + b);
        break;
      case 1:
        line =
            std::to_string(a % 13) + " times " + std::to_string(b % 13) + " is " + std::to_string((a % 13) * (b % 13));
        break;
      default:
        line = std::to_string(a + b) + " - " + std::to_string(b) + " = " + std::to_string(a);
        break;
    }
    out += (i ? "\n" : "") + line;
  }
  return out;
}

std::string recall_paragraph(Rng& rng) {
  if (rng.below(2) == 0) {
    const std::string list = join(some_words(rng, 3, 6), ", ");
    return "Here is a list: " + list + ".\nRepeat the list: " + list + ".";
  }
  static const std::string kCodeChars = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::string code;
  for (int i = 0; i < 5; ++i)
    code += kCodeChars[static_cast<size_t>(rng.below(static_cast<int64_t>(kCodeChars.size())))];
  const std::string filler = join(some_words(rng, 4, 8), " ");
  return "Remember the code " + code + ". Some words to pass the time: " + filler + ". What was the code? It was " +
         code + ".";
}

std::string make_corpus(uint64_t seed, const std::vector<Country>& world) {
  Rng rng{make_rng(seed, kCorpusStream)};
  std::string out;
  auto add = [&](const std::string& p) { out += p + "\n\n"; };
  for (const Country& c : world) add(country_paragraph(rng, world, c));  // every country at least once
  while (out.size() < kQuickstartCorpusBytes) {
    switch (rng.below(4)) {
      case 0:
        add(country_paragraph(rng, world, world[static_cast<size_t>(rng.below(kCountries))]));
        break;
      case 1:
        add(string_paragraph(rng));
        break;
      case 2:
        add(arithmetic_paragraph(rng));
        break;
      default:
        add(recall_paragraph(rng));
        break;
    }
  }
  return out;
}

struct Instruction {
  std::string instruction, input, output;
};

Instruction make_instruction(Rng& rng, const std::vector<Country>& world) {
  const Country& c = world[static_cast<size_t>(rng.below(kCountries))];
  const std::string w = rng.pick(kWords);
  const int64_t a = rng.between(0, 99), b = rng.between(0, 99);
  switch (rng.below(12)) {
    case 0:
      return {"What is the capital of " + c.name + "?", "", "The capital of " + c.name + " is " + c.capital + "."};
    case 1:
      return {"What currency is used in " + c.name + "?", "",
              "The currency of " + c.name + " is the " + c.currency + "."};
    case 2:
      return {"Which language is spoken in " + c.name + "?", "", "People in " + c.name + " speak " + c.language + "."};
    case 3:
      return {"How many people live in " + c.name + "?", "",
              "About " + std::to_string(c.population) + " million people live in " + c.name + "."};
    case 4:
      return {"Name the country whose capital is given.", c.capital, c.name};
    case 5:
      return {"Reverse the word.", w, reversed(w)};
    case 6:
      return {"Convert the word to upper case.", w, upper(w)};
    case 7:
      return {"Count the letters in the word.", w, std::to_string(w.size())};
    case 8:
      return {"Add the numbers.", std::to_string(a) + " and " + std::to_string(b), std::to_string(a + b)};
    case 9:
      return {"Subtract the second number from the first.", std::to_string(a + b) + " and " + std::to_string(b),
              std::to_string(a)};
    case 10: {
      const std::string list = join(some_words(rng, 3, 6), ", ");
      return {"Repeat the list.", list, list};
    }
    default: {
      std::vector<std::string> words = some_words(rng, 3, 5);
      const std::string input = join(words, ", ");
      std::sort(words.begin(), words.end());
      return {"Sort the words alphabetically.", input, join(words, ", ")};
    }
  }
}

std::string make_instructions(uint64_t seed, const std::vector<Country>& world) {
  Rng rng{make_rng(seed, kInstructStream)};
  std::string out;
  for (int64_t i = 0; i < kQuickstartInstructions; ++i) {
    const Instruction r = make_instruction(rng, world);
    out += "{\"instruction\": " + nlohmann::json(r.instruction).dump() +
           ", \"input\": " + nlohmann::json(r.input).dump() + ", \"output\": " + nlohmann::json(r.output).dump() +
           "}\n";
  }
  return out;
}

// One few-shot (ICL) task: documents of the split, as JSON lines.
struct IclSplit {
  std::string test, train;
};

// `k` distinct picks of `make(rng)` different from `gold`, then gold placed at a random index: (choices, label).
template <typename Make>
std::pair<std::vector<std::string>, int64_t> choices_with(Rng& rng, const std::string& gold, int k, Make make) {
  std::vector<std::string> c = {gold};
  while (static_cast<int>(c.size()) < k + 1) {
    const std::string d = make(rng);
    if (std::find(c.begin(), c.end(), d) == c.end()) c.push_back(d);
  }
  const int64_t label = rng.below(k + 1);
  std::swap(c[0], c[static_cast<size_t>(label)]);
  return {c, label};
}

// capitals, arithmetic, reverse (multiple choice, 4 options) and recall (loglikelihood): the facts and
// skills of the corpus asked in lm-eval's prompt style, so few-shot examples can show the format.
std::map<std::string, IclSplit> make_icl_tasks(uint64_t seed, const std::vector<Country>& world) {
  Rng rng{make_rng(seed, kIclStream)};
  std::map<std::string, IclSplit> tasks;
  auto line = [](const nlohmann::json& j) { return j.dump() + "\n"; };
  for (int split = 0; split < 2; ++split) {
    for (int64_t i = 0; i < kQuickstartIclDocs; ++i) {
      const Country& c = rng.pick(world);
      auto [caps, cl] = choices_with(rng, c.capital, 3, [&](Rng& r) { return r.pick(world).capital; });
      const std::string cap = line({{"country", c.name}, {"choices", caps}, {"label", cl}});
      const int64_t a = rng.between(0, 49), b = rng.between(0, 49);
      auto [sums, sl] =
          choices_with(rng, std::to_string(a + b), 3, [&](Rng& r) { return std::to_string(a + b + r.between(-9, 9)); });
      const std::string ari = line({{"a", a}, {"b", b}, {"choices", sums}, {"label", sl}});
      const std::string w = rng.pick(kWords);
      auto [revs, rl] =
          choices_with(rng, quoted(reversed(w)), 3, [&](Rng& r) { return quoted(reversed(r.pick(kWords))); });
      const std::string rev = line({{"word", quoted(w)}, {"choices", revs}, {"label", rl}});
      const std::string list = join(some_words(rng, 3, 5), ", ");
      const std::string rec = line({{"list", list}});
      std::string IclSplit::*part = split == 0 ? &IclSplit::test : &IclSplit::train;
      tasks["capitals"].*part += cap;
      tasks["arithmetic"].*part += ari;
      tasks["reverse"].*part += rev;
      tasks["recall"].*part += rec;
    }
  }
  return tasks;
}

// The task YAML (eval/yaml_task.h) of each ICL task.
std::string icl_task_yaml(const std::string& name) {
  std::string head =
      "# Few-shot task of the quickstart's synthetic data (mamba-ft eval --tasks THIS_FILE).\ntask: " + name +
      "\ndata_file: " + name + "/test.jsonl\nfewshot_file: " + name + "/train.jsonl\n";
  if (name == "capitals") {
    return head +
           "doc_to_text: \"Q: What is the capital of {{country}}?\\nA:\"\n"
           "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\n";
  }
  if (name == "arithmetic") {
    return head + "doc_to_text: \"{{a}} + {{b}} =\"\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\n";
  }
  if (name == "reverse") {
    return head +
           "doc_to_text: \"The word {{word}} reversed is\"\ndoc_to_choice: \"{{choices}}\"\n"
           "doc_to_target: \"{{label}}\"\n";
  }
  return head +
         "output_type: loglikelihood\ndoc_to_text: \"Here is a list: {{list}}.\\nRepeat the list:\"\n"
         "doc_to_target: \" {{list}}.\"\n";
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path.string(), text, "make-data");
}

}  // namespace

void write_quickstart_data(const std::string& dir, uint64_t seed) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("make-data: cannot create folder " + dir + ": " + io_error_text(ec.value()));
  const std::vector<Country> world = make_world(seed);
  write_file(std::filesystem::path(dir) / "corpus.txt", make_corpus(seed, world));
  write_file(std::filesystem::path(dir) / "instruct.jsonl", make_instructions(seed, world));
  const std::filesystem::path icl = std::filesystem::path(dir) / "icl";
  for (const auto& [name, split] : make_icl_tasks(seed, world)) {
    std::filesystem::create_directories(icl / name, ec);
    if (ec) {
      throw std::runtime_error("make-data: cannot create folder " + (icl / name).string() + ": " +
                               io_error_text(ec.value()));
    }
    write_file(icl / name / "test.jsonl", split.test);
    write_file(icl / name / "train.jsonl", split.train);
    write_file(icl / (name + ".yaml"), icl_task_yaml(name));
  }
}

}  // namespace mft::data
