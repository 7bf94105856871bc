// Recipe parsing: YAML text -> tree (with each key's line remembered) -> runs merged over the shared base
// -> command-line overrides -> walk of the tree against the key table (unknown keys, types) -> checks.
#include "recipe/recipe.h"

#include "recipe/recipe_keys.h"
#include "recipe/yaml_load.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace mft::recipe {
namespace {

// ---- where a value came from, for messages ---------------------------------------------------------------
using Lines = std::map<std::string, int>;  // key path -> 1-based line of the key in the file

struct ParsedOverride {
  std::vector<std::string> path;
  YAML::Node value;
  std::string text;  // as given, for messages
};

std::string join(const std::vector<std::string>& parts, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

// Everything an error message needs: the file, the prefix of run keys ("runs.1."), and where each value
// was written (a line of the run item, a line of the shared base, or a command-line override).
struct Context {
  Purpose purpose = Purpose::kTrain;
  std::string source;
  std::string key_prefix;
  Lines run_lines, base_lines;
  std::vector<std::pair<std::string, std::string>> overrides;  // (key path, override text), in order

  std::string where(const std::string& path) const {
    for (auto it = overrides.rbegin(); it != overrides.rend(); ++it)
      if (path == it->first || path.rfind(it->first + ".", 0) == 0 || it->first.rfind(path + ".", 0) == 0)
        return " (from override '" + it->second + "')";
    for (const Lines* lines : {&run_lines, &base_lines})
      if (auto found = lines->find(path); found != lines->end()) return " (line " + std::to_string(found->second) + ")";
    return "";
  }

  [[noreturn]] void fail(const std::string& path, const std::string& problem, const std::string& hint = "") const {
    std::string msg = source + ": " + key_prefix + path + ": " + problem + where(path);
    if (!hint.empty()) msg += "; did you mean '" + hint + "'?";
    throw std::runtime_error(msg);
  }
};

[[noreturn]] void fail_top(const std::string& source, const std::string& problem) {
  throw std::runtime_error(source + ": " + problem);
}

// Lines of the keys under `node`; a key written twice in one mapping is an error (yaml-cpp keeps one).
void collect_lines(const YAML::Node& node, const std::string& prefix, const std::string& source, Lines& out) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    const std::string path = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
    if (kv.first.Mark().is_null()) continue;
    const int line = kv.first.Mark().line + 1;
    if (auto [it, inserted] = out.emplace(path, line); !inserted)
      fail_top(source,
               path + ": key given twice (lines " + std::to_string(it->second) + " and " + std::to_string(line) + ")");
    collect_lines(kv.second, path, source, out);
  }
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing (null)";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "'" + n.Scalar() + "'";
}

// ---- tree operations ----------------------------------------------------------------------------------------
// The value at `key` in mapping `map`, or an undefined node. (yaml-cpp: the const operator[] of a missing
// key gives an invalid node that most calls reject, and `a = b` on a Node writes through to the node `a`
// refers to, so lookups go through here and handles are never reassigned.)
YAML::Node lookup(const YAML::Node& map, const std::string& key) {
  for (const auto& kv : map)
    if (kv.first.Scalar() == key) return kv.second;
  return YAML::Node(YAML::NodeType::Undefined);
}

// A copy in which every mapping is a fresh node, so that merges and overrides never touch their sources.
YAML::Node copy_tree(const YAML::Node& n) {
  if (!n.IsMap()) return YAML::Clone(n);
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& kv : n) out[kv.first.Scalar()] = copy_tree(kv.second);
  return out;
}

// `over` deep-merged over `base`: mappings merge key by key, anything else in `over` replaces.
YAML::Node deep_merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return copy_tree(over);
  YAML::Node out = copy_tree(base);
  for (const auto& kv : over) {
    const std::string key = kv.first.Scalar();
    const YAML::Node current = lookup(out, key);
    const YAML::Node merged = current.IsDefined() ? deep_merge(current, kv.second) : copy_tree(kv.second);
    out[key] = merged;
  }
  return out;
}

ParsedOverride parse_override(const std::string& text, const std::string& source) {
  const std::string bad = "override '" + text + "': expected key.path=value";
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) fail_top(source, bad);
  ParsedOverride o;
  o.text = text;
  std::stringstream key(text.substr(0, eq));
  for (std::string part; std::getline(key, part, '.');) o.path.push_back(part);
  if (text[eq - 1] == '.') o.path.push_back("");
  for (const auto& part : o.path)
    if (part.empty() || part.find_first_of(" \t") != std::string::npos) fail_top(source, bad);
  o.value = load_yaml(text.substr(eq + 1), source, "override '" + text + "': value is not valid YAML");
  return o;
}

// Sets `path` in `root` to `value` (a mapping value is merged over what is there).
void apply_override(YAML::Node root, const ParsedOverride& o, size_t first, const Context& ctx) {
  std::vector<YAML::Node> chain{root};
  for (size_t i = first; i + 1 < o.path.size(); ++i) {
    const YAML::Node child = lookup(chain.back(), o.path[i]);
    if (!child.IsDefined() || child.IsNull()) {
      chain.back()[o.path[i]] = YAML::Node(YAML::NodeType::Map);
      chain.push_back(lookup(chain.back(), o.path[i]));
    } else if (child.IsMap()) {
      chain.push_back(child);
    } else {
      std::vector<std::string> prefix(o.path.begin() + first, o.path.begin() + i + 1);
      ctx.fail(join(prefix), "expected a mapping (section), got " + describe(child));
    }
  }
  const std::string& last = o.path.back();
  const YAML::Node current = lookup(chain.back(), last);
  const YAML::Node merged = current.IsDefined() ? deep_merge(current, o.value) : copy_tree(o.value);
  chain.back()[last] = merged;
}

// ---- scalar conversion ---------------------------------------------------------------------------------------
bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_uint(const std::string& s, uint64_t& out) {
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '+')) return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  out = v;
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "true" || l == "yes" || l == "on") return out = true, true;
  if (l == "false" || l == "no" || l == "off") return out = false, true;
  return false;
}

// Stores `node` into the field; returns "" or the problem ("expected an integer, got 'abc'").
std::string assign(const FieldPtr& field, const YAML::Node& node) {
  const bool null = node.IsNull();
  const bool scalar = node.IsScalar();
  const std::string got = ", got " + describe(node);
  struct Visitor {
    const YAML::Node& node;
    bool null, scalar;
    const std::string& got;
    std::string operator()(std::string* p) const {
      if (null) return *p = "", "";
      return scalar ? (*p = node.Scalar(), "") : "expected a string" + got;
    }
    std::string operator()(int64_t* p) const {
      return scalar && parse_int(node.Scalar(), *p) ? "" : "expected an integer" + got;
    }
    std::string operator()(uint64_t* p) const {
      return scalar && parse_uint(node.Scalar(), *p) ? "" : "expected a non-negative integer" + got;
    }
    std::string operator()(double* p) const {
      return scalar && parse_double(node.Scalar(), *p) ? "" : "expected a number" + got;
    }
    std::string operator()(bool* p) const {
      return scalar && parse_bool(node.Scalar(), *p) ? "" : "expected a boolean (true or false)" + got;
    }
    std::string operator()(std::vector<std::string>* p) const {
      if (null) return p->clear(), "";
      if (!node.IsSequence()) return "expected a list of strings such as [a, b]" + got;
      std::vector<std::string> items;
      for (size_t i = 0; i < node.size(); ++i) {
        if (!node[i].IsScalar())
          return "expected a list of strings; item " + std::to_string(i) + " is " + describe(node[i]);
        items.push_back(node[i].Scalar());
      }
      *p = std::move(items);
      return "";
    }
  };
  return std::visit(Visitor{node, null, scalar, got}, field);
}

// ---- the walk against the key table ----------------------------------------------------------------------------
const KeyInfo* find_key(const std::string& path) {
  for (const auto& k : recipe_keys())
    if (k.path == path) return &k;
  return nullptr;
}

bool is_section(const std::string& path) {
  for (const auto& k : recipe_keys())
    if (k.path.rfind(path + ".", 0) == 0) return true;
  return false;
}

// The valid key closest to the unknown `path`: the same name in another section if there is one (`lr` ->
// `optimizer.lr`), else the nearest name at the same level.
std::string closest_key(const std::string& path) {
  const size_t dot = path.rfind('.');
  const std::string prefix = dot == std::string::npos ? "" : path.substr(0, dot + 1);
  const std::string name = path.substr(prefix.size());
  for (const auto& k : recipe_keys())
    if (k.path.size() > name.size() &&
        k.path.compare(k.path.size() - name.size() - 1, std::string::npos, "." + name) == 0)
      return k.path;
  std::string best;
  size_t best_distance = std::string::npos;
  for (const auto& k : recipe_keys()) {
    if (k.path.rfind(prefix, 0) != 0) continue;
    const std::string rest = k.path.substr(prefix.size());
    const std::string candidate = rest.substr(0, rest.find('.'));
    const size_t d = edit_distance(name, candidate);
    if (d < best_distance) best_distance = d, best = prefix + candidate;
  }
  return best;
}

void walk(Recipe& r, const YAML::Node& map, const std::string& prefix, const Context& ctx) {
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) ctx.fail(prefix.empty() ? "<key>" : prefix, "keys must be plain names");
    const std::string path = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
    if (!seen.insert(kv.first.Scalar()).second) ctx.fail(path, "key given twice");
    if (const KeyInfo* key = find_key(path)) {
      const std::string problem = assign(key->field(r), kv.second);
      if (!problem.empty()) ctx.fail(path, problem);
    } else if (is_section(path)) {
      if (kv.second.IsNull()) continue;
      if (!kv.second.IsMap()) ctx.fail(path, "expected a mapping (section), got " + describe(kv.second));
      walk(r, kv.second, path, ctx);
    } else {
      ctx.fail(path, "unknown key", closest_key(path));
    }
  }
}

void validate(Recipe& r, const Context& ctx) {
  for (const auto& key : recipe_keys()) {
    const FieldPtr field = key.field(r);
    if (ctx.purpose == Purpose::kTrain ? key.required : key.required_for_eval) {
      const auto* s = std::get_if<std::string*>(&field);
      if (s && (*s)->empty()) ctx.fail(key.path, "required key is missing (" + key.doc + ")");
      const auto* l = std::get_if<std::vector<std::string>*>(&field);
      if (l && (*l)->empty()) ctx.fail(key.path, "required key is missing (" + key.doc + ")");
    }
    for (const auto& check : key.checks)
      if (std::string problem = check.problem(field); !problem.empty()) ctx.fail(key.path, problem);
  }
  for (const auto& check : recipe_cross_checks())
    if (std::string problem = check.problem(r); !problem.empty()) ctx.fail(check.key, problem);
}

Recipe build(const YAML::Node& tree, const Context& ctx) {
  Recipe r;
  walk(r, tree, "", ctx);
  validate(r, ctx);
  return r;
}

// All runs of a file. `multi_run_ok` false: a `runs:` list is an error (parse_recipe).
std::vector<Recipe> parse_runs(const std::string& text, const std::string& source,
                               const std::vector<std::string>& override_texts, bool multi_run_ok,
                               Purpose purpose = Purpose::kTrain) {
  YAML::Node root = load_yaml(text, source);
  if (!root.IsDefined() || root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
  if (!root.IsMap()) fail_top(source, "expected a mapping of sections at the top level, got " + describe(root));

  std::vector<ParsedOverride> overrides;
  for (const auto& t : override_texts) overrides.push_back(parse_override(t, source));

  YAML::Node base(YAML::NodeType::Map);
  for (const auto& kv : root)
    if (kv.first.Scalar() != "runs") base[kv.first.Scalar()] = kv.second;
  Lines base_lines;  // from the file's tree: `base` holds the same nodes under fresh keys without lines
  collect_lines(root, "", source, base_lines);
  for (auto it = base_lines.begin(); it != base_lines.end();)
    it = it->first == "runs" || it->first.rfind("runs.", 0) == 0 ? base_lines.erase(it) : std::next(it);

  std::vector<YAML::Node> items;
  const YAML::Node runs = lookup(root, "runs");
  const bool multi = runs.IsDefined();
  if (multi) {
    if (!multi_run_ok)
      fail_top(source, "runs: this file holds several runs; load it with load_recipe_runs (`mamba-ft train` does)");
    if (!runs.IsSequence() || runs.size() == 0)
      fail_top(source, "runs: expected a non-empty list of run mappings, got " + describe(runs));
    for (size_t i = 0; i < runs.size(); ++i) {
      if (!runs[i].IsMap() && !runs[i].IsNull())
        fail_top(source, "runs." + std::to_string(i) + ": expected a mapping, got " + describe(runs[i]));
      items.push_back(runs[i].IsNull() ? YAML::Node(YAML::NodeType::Map) : runs[i]);
    }
  } else {
    items.push_back(YAML::Node(YAML::NodeType::Map));
  }

  for (const auto& o : overrides) {
    if (o.path[0] != "runs") continue;
    uint64_t n = 0;
    if (o.path.size() < 3 || !parse_uint(o.path[1], n))
      fail_top(source, "override '" + o.text + "': expected runs.N.key.path=value");
    if (n >= items.size())
      fail_top(source, "override '" + o.text + "': runs." + std::to_string(n) + ": no such run; the file has " +
                           std::to_string(items.size()) + (items.size() == 1 ? " run" : " runs"));
  }

  std::vector<Recipe> out;
  for (size_t i = 0; i < items.size(); ++i) {
    Context ctx;
    ctx.purpose = purpose;
    ctx.source = source;
    ctx.key_prefix = multi ? "runs." + std::to_string(i) + "." : "";
    ctx.base_lines = base_lines;
    collect_lines(items[i], "", source + ": runs." + std::to_string(i), ctx.run_lines);
    YAML::Node tree = deep_merge(base, items[i]);
    for (const auto& o : overrides) {
      const bool for_this_run = o.path[0] == "runs";
      if (for_this_run && std::stoull(o.path[1]) != i) continue;
      const size_t first = for_this_run ? 2 : 0;
      ctx.overrides.emplace_back(join(o.path, first), o.text);
      apply_override(tree, o, first, ctx);
    }
    out.push_back(build(tree, ctx));
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read the recipe file: " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string stem(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

}  // namespace

bool operator==(const Recipe& a, const Recipe& b) {
  Recipe& x = const_cast<Recipe&>(a);  // the accessors hand out non-const pointers; nothing is written
  Recipe& y = const_cast<Recipe&>(b);
  for (const auto& key : recipe_keys()) {
    const FieldPtr fa = key.field(x), fb = key.field(y);
    const bool equal = std::visit(
        [&fb](auto* pa) {
          using P = decltype(pa);
          return *pa == *std::get<P>(fb);
        },
        fa);
    if (!equal) return false;
  }
  return true;
}

Recipe parse_recipe(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  return parse_runs(yaml_text, source, overrides, /*multi_run_ok=*/false).front();
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  Recipe r = parse_recipe(read_file(path), path, overrides);
  if (r.name.empty()) r.name = stem(path);
  return r;
}

std::vector<Recipe> parse_recipe_runs(const std::string& yaml_text, const std::string& source,
                                      const std::vector<std::string>& overrides, Purpose purpose) {
  std::vector<Recipe> runs = parse_runs(yaml_text, source, overrides, /*multi_run_ok=*/true, purpose);
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].name.empty()) runs[i].name = "run" + std::to_string(i);
  return runs;
}

std::vector<Recipe> load_recipe_runs(const std::string& path, const std::vector<std::string>& overrides,
                                     Purpose purpose) {
  std::vector<Recipe> runs = parse_runs(read_file(path), path, overrides, /*multi_run_ok=*/true, purpose);
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].name.empty()) runs[i].name = runs.size() == 1 ? stem(path) : stem(path) + "." + std::to_string(i);
  return runs;
}

}  // namespace mft::recipe
