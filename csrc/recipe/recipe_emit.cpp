// Recipes out: the resolved recipe as YAML (`mamba-ft train --print-config`) and the key reference in
// Markdown, both generated from the key table.
#include "recipe/recipe.h"

#include "recipe/recipe_keys.h"

#include <sstream>

namespace mft::recipe {
namespace {

// "optimizer.lr" -> ("optimizer", "lr"); "name" -> ("", "name").
std::pair<std::string, std::string> split_key(const std::string& path) {
  const size_t dot = path.find('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

// Escapes a cell of a Markdown table.
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string to_yaml(const Recipe& r) {
  Recipe& x = const_cast<Recipe&>(r);  // the accessors hand out non-const pointers; nothing is written
  std::ostringstream out;
  for (const auto& section : recipe_sections()) {
    if (!section.name.empty()) out << section.name << ":\n";
    for (const auto& key : recipe_keys()) {
      const auto [sec, name] = split_key(key.path);
      if (sec != section.name) continue;
      out << (sec.empty() ? "" : "  ") << name << ": " << value_text(key.field(x)) << "\n";
    }
  }
  return out.str();
}

std::string recipe_reference_markdown() {
  const Recipe defaults;
  Recipe& d = const_cast<Recipe&>(defaults);
  std::ostringstream out;
  out << "## Recipe reference\n\n"
      << "A recipe is a YAML file of the sections below; every key is optional except those marked "
         "**required**, and unknown keys are errors. Override any key on the command line with "
         "`key.sub=value` (YAML syntax for the value, e.g. `peft.target_modules=[in_proj,out_proj]`). "
         "A file with a top-level `runs:` list holds several runs: each item is merged over the file's other "
         "keys, and `runs.N.key=value` overrides run N only. `mamba-ft train --print-config` prints the "
         "resolved recipe.\n";
  for (const auto& section : recipe_sections()) {
    out << "\n### " << (section.name.empty() ? "top level" : "`" + section.name + "`") << "\n\n"
        << section.doc << "\n\n"
        << "| key | type | default | valid values | meaning |\n|---|---|---|---|---|\n";
    for (const auto& key : recipe_keys()) {
      const auto [sec, name] = split_key(key.path);
      if (sec != section.name) continue;
      const FieldPtr field = key.field(d);
      std::string valid = key.required ? "**required**" : "";
      for (const auto& check : key.checks) valid += (valid.empty() ? "" : "; ") + check.text;
      for (const auto& cross : recipe_cross_checks())
        if (cross.key == key.path) valid += (valid.empty() ? "" : "; ") + cross.text;
      out << "| `" << key.path << "` | " << type_name(field) << " | `" << cell(value_text(field)) << "` | "
          << cell(valid) << " | " << cell(key.doc) << " |\n";
    }
  }
  return out.str();
}

}  // namespace mft::recipe
