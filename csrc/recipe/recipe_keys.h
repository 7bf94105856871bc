#pragma once
// The recipe key table: the one place that names every YAML key, documents it and says what values it
// takes. recipe.cpp walks it to parse, emit and compare recipes; the defaults are the initialisers in
// recipe.h, read from a default-constructed Recipe.
#include "recipe/recipe.h"

#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace mft::recipe {

// A pointer to the field a key fills; the alternative held is the key's type.
using FieldPtr = std::variant<std::string*, int64_t*, uint64_t*, double*, bool*, std::vector<std::string>*>;

// One condition on a value: `text` documents it ("> 0", "one of: a, b"), `problem` returns "" when the
// value satisfies it, else what is wrong ("must be > 0, got -1").
struct Check {
  std::string text;
  std::function<std::string(const FieldPtr&)> problem;
};

struct KeyInfo {
  KeyInfo(std::string path_, std::string doc_, std::function<FieldPtr(Recipe&)> field_, std::vector<Check> checks_ = {})
      : path(std::move(path_)), doc(std::move(doc_)), field(std::move(field_)), checks(std::move(checks_)) {}

  std::string path;  // "optimizer.lr"
  std::string doc;   // one or two sentences for the reference
  std::function<FieldPtr(Recipe&)> field;
  std::vector<Check> checks;
  bool required = false;           // must be given (and non-empty) for training
  bool required_for_eval = false;  // ... and for evaluation
};

// One top-level section: its name ("" for top-level keys such as `name`) and what it is for.
struct SectionInfo {
  std::string name;
  std::string doc;
};

const std::vector<KeyInfo>& recipe_keys();
const std::vector<SectionInfo>& recipe_sections();
// Rules that involve two keys (e.g. pure_half needs a half dtype): `key` is the path the error names.
struct CrossCheck {
  std::string key;
  std::string text;
  std::function<std::string(const Recipe&)> problem;
};
const std::vector<CrossCheck>& recipe_cross_checks();

// "string", "integer", "non-negative integer", "number", "boolean", "list of strings".
std::string type_name(const FieldPtr& f);
// The value in YAML flow form, e.g. `2e-4`, `[in_proj, out_proj]`, `""`.
std::string value_text(const FieldPtr& f);
// Number of single-character edits between a and b (for "did you mean").
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace mft::recipe
