#pragma once
// YAML from files we do not control: yaml-cpp's parser, with a nesting limit (our walkers recurse once
// per level) and errors as one line naming the source, line and column.
#include <yaml-cpp/yaml.h>

#include <string>

namespace mft::recipe {

// Far deeper than any recipe, sweep or task file (they nest 2-5 levels), and below where yaml-cpp 0.7 itself
// gives up (about 500 flow levels, as "bad file" at some column).
constexpr int kMaxYamlDepth = 256;

// Parses `text`; throws std::runtime_error "<source>: <what> at line L, column C: <why>", or
// "<source>: YAML nested deeper than 256 levels" for deeper documents (flow brackets are counted in the
// text first, block nesting in the parsed tree).
YAML::Node load_yaml(const std::string& text, const std::string& source, const std::string& what = "malformed YAML");

// Reads and parses a file; a missing or unreadable file is "<source>: cannot read <path>: <reason>".
YAML::Node load_yaml_file(const std::string& path, const std::string& what = "malformed YAML");

// More nodes than any recipe or task file holds, counting each alias where it is used: a few lines of
// anchors that refer to each other twice per level would otherwise expand to billions of nodes.
constexpr size_t kMaxYamlNodes = 1000000;

// Nesting depth of a loaded document (a scalar is 0), computed without recursion; stops early (returning
// a depth above kMaxYamlDepth) once the document is too deep, and throws once it has visited more than
// kMaxYamlNodes nodes.
int yaml_depth(const YAML::Node& root, const std::string& source);

}  // namespace mft::recipe
