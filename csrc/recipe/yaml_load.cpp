#include "recipe/yaml_load.h"

#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

namespace mft::recipe {
namespace {
[[noreturn]] void too_deep(const std::string& source) {
  throw std::runtime_error(source + ": YAML nested deeper than " + std::to_string(kMaxYamlDepth) + " levels");
}
}  // namespace

int yaml_depth(const YAML::Node& root, const std::string& source) {
  int deepest = 0;
  size_t visited = 0;
  std::vector<std::pair<YAML::Node, int>> todo{{root, 0}};
  while (!todo.empty()) {
    auto [node, depth] = std::move(todo.back());
    todo.pop_back();
    if (++visited > kMaxYamlNodes) {
      throw std::runtime_error(source + ": YAML document has more than " + std::to_string(kMaxYamlNodes) +
                               " nodes (aliases counted where they are used)");
    }
    if (!node.IsMap() && !node.IsSequence()) continue;
    deepest = std::max(deepest, depth + 1);
    if (deepest > kMaxYamlDepth) return deepest;  // no need to walk the rest
    for (const auto& item : node) {
      if (node.IsMap()) {
        todo.emplace_back(item.first, depth + 1);
        todo.emplace_back(item.second, depth + 1);
      } else {
        todo.emplace_back(item, depth + 1);
      }
    }
  }
  return deepest;
}

// The deepest nesting of flow collections ([ and {) outside quotes and comments. Brackets inside plain
// scalars count too, which only matters for hundreds of unclosed ones.
int flow_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  char quote = 0;
  bool at_space = true;  // '#' starts a comment only after whitespace or at the start of a line
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote != 0) {
      if (c == '\\' && quote == '"')
        ++i;
      else if (c == quote)
        quote = 0;
      continue;
    }
    if (c == '#' && at_space) {
      while (i < text.size() && text[i] != '\n') ++i;
      at_space = true;
      continue;
    }
    if (c == '"' || c == '\'')
      quote = c;
    else if (c == '[' || c == '{')
      deepest = std::max(deepest, ++depth);
    else if ((c == ']' || c == '}') && depth > 0)
      --depth;
    at_space = c == ' ' || c == '\t' || c == '\n';
  }
  return deepest;
}

YAML::Node load_yaml(const std::string& text, const std::string& source, const std::string& what) {
  if (flow_depth(text) > kMaxYamlDepth) too_deep(source);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion&) {
    too_deep(source);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) throw std::runtime_error(source + ": " + what + ": " + e.msg);
    throw std::runtime_error(source + ": " + what + " at line " + std::to_string(e.mark.line + 1) + ", column " +
                             std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (yaml_depth(root, source) > kMaxYamlDepth) too_deep(source);
  return root;
}

YAML::Node load_yaml_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": cannot read: " + std::strerror(errno));
  return load_yaml(text.str(), path, what);
}

}  // namespace mft::recipe
