// Sweep files -> SweepSpec (sweep_spec.h): parse, apply command-line overrides, validate every point.
#include "recipe/sweep_spec.h"

#include "recipe/recipe_keys.h"
#include "recipe/yaml_load.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace mft::recipe {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& key, const std::string& problem) {
  throw std::runtime_error(source + ": " + key + ": " + problem);
}

std::string closest(const std::string& key, const std::vector<std::string>& valid) {
  std::string best;
  size_t best_d = 4;  // suggest only near misses (at most 3 edits)
  for (const auto& v : valid) {
    const size_t d = edit_distance(key, v);
    if (d < best_d) best_d = d, best = v;
  }
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

// Keys of `node` (a mapping) must be among `valid`.
void check_keys(const YAML::Node& node, const std::vector<std::string>& valid, const std::string& source,
                const std::string& prefix) {
  for (const auto& kv : node) {
    const std::string k = kv.first.Scalar();
    if (std::find(valid.begin(), valid.end(), k) == valid.end())
      fail(
          source, prefix + k, "unknown key (valid: " + [&] {
            std::string s;
            for (const auto& v : valid) s += (s.empty() ? "" : ", ") + v;
            return s;
          }() + ")" + closest(k, valid));
  }
}

std::string flow(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

std::string block(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return std::string(out.c_str()) + "\n";
}

std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(what + ": cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

YAML::Node load(const std::string& text, const std::string& source) {
  return load_yaml(text, source);
}

std::string label_text(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '+') c = '_';
  return s;
}

template <typename T>
T scalar_as(const YAML::Node& node, const std::string& source, const std::string& key, const char* expected) {
  if (!node.IsScalar()) fail(source, key, std::string("expected ") + expected + ", got a collection");
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail(source, key, std::string("expected ") + expected + ", got '" + node.Scalar() + "'");
  }
}

// sweep.axes -> axes (labels and overrides).
std::vector<Axis> parse_axes(const YAML::Node& axes, const std::string& source) {
  if (!axes.IsDefined() || axes.IsNull()) fail(source, "sweep.axes", "required: a mapping of axes");
  if (!axes.IsMap())
    fail(source, "sweep.axes", "expected a mapping of axes (name: [values] or name: {label: {key: value}})");
  if (axes.size() == 0) fail(source, "sweep.axes", "empty: give at least one axis");
  std::vector<Axis> out;
  for (const auto& kv : axes) {
    Axis axis;
    axis.name = kv.first.Scalar();
    const std::string key = "sweep.axes." + axis.name;
    const YAML::Node& v = kv.second;
    if (v.IsSequence()) {  // a key axis: values of recipe key `name`
      for (const auto& item : v) axis.values.push_back({label_text(flow(item)), {axis.name + "=" + flow(item)}});
    } else if (v.IsMap()) {  // a named axis: label -> {key.path: value}
      for (const auto& lv : v) {
        AxisValue value{label_text(lv.first.Scalar()), {}};
        if (lv.second.IsMap()) {
          for (const auto& ov : lv.second) value.overrides.push_back(ov.first.Scalar() + "=" + flow(ov.second));
        } else if (!lv.second.IsNull()) {
          fail(source, key + "." + lv.first.Scalar(),
               "expected a mapping of key.path: value overrides, got '" + flow(lv.second) + "'");
        }
        axis.values.push_back(std::move(value));
      }
    } else {
      fail(source, key, "expected a list of values or a mapping of labels to overrides, got '" + flow(v) + "'");
    }
    if (axis.values.empty()) fail(source, key, "empty axis: give at least one value");
    std::set<std::string> seen;
    for (const auto& value : axis.values)
      if (!seen.insert(value.label).second) fail(source, key, "the value '" + value.label + "' appears twice");
    out.push_back(std::move(axis));
  }
  return out;
}

// "--axis NAME=a,b": restrict a named axis to those labels, or give a key axis these values.
void apply_axis_value(std::vector<Axis>& axes, const std::string& text, const std::string& source) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    fail(source, "--axis " + text, "expected NAME=value[,value...]");
  const std::string name = text.substr(0, eq);
  auto it = std::find_if(axes.begin(), axes.end(), [&](const Axis& a) { return a.name == name; });
  if (it == axes.end()) {
    std::vector<std::string> names;
    for (const auto& a : axes) names.push_back(a.name);
    fail(source, "--axis " + text, "no axis named '" + name + "'" + closest(name, names));
  }
  std::vector<std::string> items;
  std::stringstream ss(text.substr(eq + 1));
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) items.push_back(item);
  const bool key_axis = std::all_of(it->values.begin(), it->values.end(), [&](const AxisValue& v) {
    return v.overrides.size() == 1 && v.overrides[0].rfind(name + "=", 0) == 0;
  });
  std::vector<AxisValue> chosen;
  for (const auto& item : items) {
    auto found =
        std::find_if(it->values.begin(), it->values.end(), [&](const AxisValue& v) { return v.label == item; });
    if (found != it->values.end()) {
      chosen.push_back(*found);
    } else if (key_axis) {
      chosen.push_back({label_text(item), {name + "=" + item}});
    } else {
      std::vector<std::string> labels;
      for (const auto& v : it->values) labels.push_back(v.label);
      fail(source, "--axis " + text, "axis '" + name + "' has no value '" + item + "'" + closest(item, labels));
    }
  }
  if (chosen.empty()) fail(source, "--axis " + text, "empty axis: give at least one value");
  it->values = std::move(chosen);
}

// Sets `value` at the dotted `path` under `root`, creating mappings as needed.
void set_path(YAML::Node root, const std::vector<std::string>& path, const YAML::Node& value) {
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    YAML::Node next = chain.back()[path[i]];
    if (!next.IsMap()) next = YAML::Node(YAML::NodeType::Map);
    chain.back()[path[i]] = next;
    chain.push_back(chain.back()[path[i]]);
  }
  chain.back()[path.back()] = value;
}

void parse_stability(const YAML::Node& node, StabilitySettings& s, const std::string& source) {
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsMap()) fail(source, "sweep.stability", "expected a mapping");
  check_keys(node, {"enabled", "presets", "text", "tokens", "precision_tokens", "blocks", "steps", "eps", "k"}, source,
             "sweep.stability.");
  const std::string p = "sweep.stability.";
  if (node["enabled"]) s.enabled = scalar_as<bool>(node["enabled"], source, p + "enabled", "true or false");
  if (node["presets"]) {
    if (!node["presets"].IsMap()) fail(source, p + "presets", "expected a mapping family label -> preset name");
    for (const auto& kv : node["presets"]) s.presets[kv.first.Scalar()] = kv.second.Scalar();
  }
  if (node["text"]) s.text = scalar_as<std::string>(node["text"], source, p + "text", "a file path");
  auto positive = [&](const char* k, int64_t& out) {
    if (!node[k]) return;
    out = scalar_as<int64_t>(node[k], source, p + k, "an integer");
    if (out <= 0) fail(source, p + k, "must be > 0, got " + std::to_string(out));
  };
  positive("tokens", s.tokens);
  positive("precision_tokens", s.precision_tokens);
  positive("blocks", s.blocks);
  positive("steps", s.steps);
  positive("k", s.k);
  if (s.steps < 3) fail(source, p + "steps", "must be >= 3");
  if (node["eps"]) {
    if (!node["eps"].IsSequence() || node["eps"].size() == 0) fail(source, p + "eps", "expected a non-empty list");
    s.eps.clear();
    for (const auto& e : node["eps"]) {
      s.eps.push_back(scalar_as<double>(e, source, p + "eps", "a number"));
      if (!(s.eps.back() > 0)) fail(source, p + "eps", "values must be > 0");
    }
  }
}

// `base:` or `prepare:` -> YAML text and its source name (a path is read; a mapping is emitted).
void recipe_text(const YAML::Node& node, const std::string& key, const std::string& source, std::string& text,
                 std::string& text_source) {
  if (node.IsScalar()) {
    text_source = node.Scalar();
    text = read_text(text_source, source + ": " + key);
  } else if (node.IsMap()) {
    text = block(node);
    text_source = source + ": " + key;
  } else {
    fail(source, key, "expected a mapping of recipe sections or the path of a recipe file");
  }
}

// Each axis value with the first value of every other axis, so that an error names the axis it comes from.
void check_axis_values(const SweepSpec& spec) {
  for (size_t i = 0; i < spec.axes.size(); ++i) {
    for (const auto& value : spec.axes[i].values) {
      std::vector<std::string> o = spec.base_overrides;
      for (size_t j = 0; j < spec.axes.size(); ++j) {
        const auto& chosen = j == i ? value.overrides : spec.axes[j].values.front().overrides;
        o.insert(o.end(), chosen.begin(), chosen.end());
      }
      o.push_back("output.dir=" + spec.output_dir);
      try {
        parse_recipe(spec.base_yaml, spec.base_source, o);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(spec.source + ": sweep.axes." + spec.axes[i].name + " (value '" + value.label +
                                 "'): " + e.what());
      }
    }
  }
}

}  // namespace

std::string SweepPoint::config() const {
  std::string s;
  for (const auto& [axis, label] : axes)
    if (axis != seed_axis) s += (s.empty() ? "" : " ") + label;
  return s.empty() ? "all" : s;
}

std::string SweepPoint::label(const std::string& axis) const {
  for (const auto& [a, l] : axes)
    if (a == axis) return l;
  return "";
}

SweepSpec parse_sweep(const std::string& yaml_text, const std::string& source,
                      const std::vector<std::string>& overrides, const std::vector<std::string>& axis_values) {
  YAML::Node root = load(yaml_text, source);
  if (!root.IsMap()) fail(source, "(top level)", "expected a mapping with sweep:, base: and optionally prepare:");
  check_keys(root, {"sweep", "base", "prepare"}, source, "");
  SweepSpec spec;
  spec.source = source;
  YAML::Node sweep = root["sweep"];
  if (!sweep.IsMap()) fail(source, "sweep", "required: a mapping with output_dir and axes");
  for (const auto& text : overrides) {
    const size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) fail(source, "override '" + text + "'", "expected key.path=value");
    const std::string key = text.substr(0, eq);
    if (key.rfind("sweep.", 0) == 0) {
      std::vector<std::string> path;
      std::stringstream ks(key.substr(6));
      for (std::string part; std::getline(ks, part, '.');) path.push_back(part);
      if (path.empty() || path[0] == "axes")
        fail(source, "override '" + text + "'", "change axes with --axis NAME=a,b");
      set_path(sweep, path, load(text.substr(eq + 1), "override '" + text + "'"));
    } else if (key.rfind("prepare.", 0) == 0) {
      spec.prepare_overrides.push_back(text.substr(8));
    } else {
      spec.base_overrides.push_back(text);
    }
  }
  check_keys(sweep,
             {"name", "output_dir", "axes", "family_axis", "seed_axis", "reference", "pairs", "stability", "report"},
             source, "sweep.");
  spec.name = sweep["name"] ? sweep["name"].Scalar() : std::filesystem::path(source).stem().string();
  if (!sweep["output_dir"] || sweep["output_dir"].Scalar().empty())
    fail(source, "sweep.output_dir", "required: the folder the points, tables and report go to");
  spec.output_dir = sweep["output_dir"].Scalar();
  spec.axes = parse_axes(sweep["axes"], source);
  if (!root["base"]) fail(source, "base", "required: the recipe of one point (a mapping or a recipe file path)");
  recipe_text(root["base"], "base", source, spec.base_yaml, spec.base_source);
  check_axis_values(spec);

  auto has_axis = [&](const std::string& name) {
    return std::any_of(spec.axes.begin(), spec.axes.end(), [&](const Axis& a) { return a.name == name; });
  };
  auto axis_labels = [&](const std::string& name) {
    std::vector<std::string> labels;
    for (const auto& a : spec.axes)
      if (a.name == name)
        for (const auto& v : a.values) labels.push_back(v.label);
    return labels;
  };
  std::vector<std::string> axis_names;
  for (const auto& a : spec.axes) axis_names.push_back(a.name);
  auto named_axis = [&](const char* key, const std::string& fallback) {
    if (!sweep[key]) return has_axis(fallback) ? fallback : std::string();
    const std::string name = sweep[key].Scalar();
    if (!has_axis(name))
      fail(source, std::string("sweep.") + key, "no axis named '" + name + "'" + closest(name, axis_names));
    return name;
  };
  spec.family_axis = named_axis("family_axis", "family");
  spec.seed_axis = named_axis("seed_axis", "trainer.seed");
  if (sweep["reference"] && !sweep["reference"].IsNull()) {
    if (!sweep["reference"].IsMap()) fail(source, "sweep.reference", "expected a mapping axis: label");
    for (const auto& kv : sweep["reference"]) {
      const std::string axis = kv.first.Scalar(), label = label_text(flow(kv.second));
      if (!has_axis(axis)) fail(source, "sweep.reference." + axis, "no such axis" + closest(axis, axis_names));
      const auto labels = axis_labels(axis);
      if (std::find(labels.begin(), labels.end(), label) == labels.end())
        fail(source, "sweep.reference." + axis,
             "axis '" + axis + "' has no value '" + label + "'" + closest(label, labels));
      if (axis == spec.seed_axis || axis == spec.family_axis)
        fail(source, "sweep.reference." + axis, "the reference is compared within a family and seed; name other axes");
      spec.reference[axis] = label;
    }
  }
  const auto families = axis_labels(spec.family_axis);
  auto check_family = [&](const std::string& key, const std::string& label) {
    if (spec.family_axis.empty()) fail(source, key, "needs a family axis (sweep.family_axis)");
    if (std::find(families.begin(), families.end(), label) == families.end())
      fail(source, key, "no family '" + label + "' on axis '" + spec.family_axis + "'" + closest(label, families));
  };
  if (sweep["pairs"] && !sweep["pairs"].IsNull()) {
    if (!sweep["pairs"].IsMap()) fail(source, "sweep.pairs", "expected a mapping family: paired family");
    for (const auto& kv : sweep["pairs"]) {
      check_family("sweep.pairs." + kv.first.Scalar(), kv.first.Scalar());
      check_family("sweep.pairs." + kv.first.Scalar(), kv.second.Scalar());
      spec.pairs[kv.first.Scalar()] = kv.second.Scalar();
    }
  }
  parse_stability(sweep["stability"], spec.stability, source);
  for (const auto& [family, preset] : spec.stability.presets) check_family("sweep.stability.presets." + family, family);
  if (sweep["report"]) spec.report = scalar_as<bool>(sweep["report"], source, "sweep.report", "true or false");

  // --axis last: the file's own references were checked against all of its labels; entries for families
  // no longer on the axis are dropped.
  for (const auto& a : axis_values) apply_axis_value(spec.axes, a, source);
  const auto kept = axis_labels(spec.family_axis);
  auto on_axis = [&](const std::string& f) { return std::find(kept.begin(), kept.end(), f) != kept.end(); };
  for (auto it = spec.pairs.begin(); it != spec.pairs.end();)
    it = on_axis(it->first) && on_axis(it->second) ? std::next(it) : spec.pairs.erase(it);
  for (auto it = spec.stability.presets.begin(); it != spec.stability.presets.end();)
    it = on_axis(it->first) ? std::next(it) : spec.stability.presets.erase(it);
  if (root["prepare"] && !root["prepare"].IsNull())
    recipe_text(root["prepare"], "prepare", source, spec.prepare_yaml, spec.prepare_source);

  // The product of the axes before any point is made: every point is a training run.
  double count = 1;
  std::string sizes;
  for (const auto& a : spec.axes) {
    count *= double(a.values.size());
    sizes += (sizes.empty() ? "" : " x ") + std::to_string(a.values.size());
  }
  if (count > double(kMaxSweepPoints)) {
    char total[32];
    std::snprintf(total, sizeof total, "%.0f", count);
    fail(source, "sweep.axes",
         "the axes make " + sizes + " = " + total + " points; at most " + std::to_string(kMaxSweepPoints) +
             " (each point is a training run)");
  }
  // Validate every point, then the prepare runs (each axis value was checked on its own above).
  std::set<std::string> ids;
  for (const auto& p : sweep_points(spec)) {
    if (!ids.insert(p.id).second)
      fail(source, "sweep.axes", "two points get the id '" + p.id + "'; use distinct labels");
    point_recipe(spec, p);
  }
  prepare_recipes(spec);
  return spec;
}

SweepSpec load_sweep(const std::string& path, const std::vector<std::string>& overrides,
                     const std::vector<std::string>& axis_values) {
  return parse_sweep(read_text(path, "sweep"), path, overrides, axis_values);
}

std::vector<SweepPoint> sweep_points(const SweepSpec& spec) {
  // Short axis names in ids ("precision.dtype" -> "dtype") unless two axes share one.
  std::vector<std::string> shorts;
  for (const auto& a : spec.axes) shorts.push_back(a.name.substr(a.name.rfind('.') + 1));
  for (size_t i = 0; i < shorts.size(); ++i)
    if (std::count(shorts.begin(), shorts.end(), shorts[i]) > 1) shorts[i] = label_text(spec.axes[i].name);
  std::vector<SweepPoint> points(1);
  for (size_t i = 0; i < spec.axes.size(); ++i) {
    std::vector<SweepPoint> next;
    for (const auto& p : points) {
      for (const auto& v : spec.axes[i].values) {
        SweepPoint q = p;
        q.seed_axis = spec.seed_axis;
        q.id += (q.id.empty() ? "" : "_") + shorts[i] + "-" + v.label;
        q.axes.emplace_back(spec.axes[i].name, v.label);
        q.overrides.insert(q.overrides.end(), v.overrides.begin(), v.overrides.end());
        next.push_back(std::move(q));
      }
    }
    points = std::move(next);
  }
  return points;
}

Recipe point_recipe(const SweepSpec& spec, const SweepPoint& point) {
  std::vector<std::string> o = spec.base_overrides;
  o.insert(o.end(), point.overrides.begin(), point.overrides.end());
  o.push_back("output.dir=" + (std::filesystem::path(spec.output_dir) / "points" / point.id).string());
  Recipe r;
  try {
    r = parse_recipe(spec.base_yaml, spec.base_source, o);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(spec.source + ": point " + point.id + ": " + e.what());
  }
  r.name = spec.name + "/" + point.id;
  return r;
}

std::vector<Recipe> prepare_recipes(const SweepSpec& spec) {
  if (spec.prepare_yaml.empty()) return {};
  return parse_recipe_runs(spec.prepare_yaml, spec.prepare_source, spec.prepare_overrides);
}

const SweepPoint* reference_point(const SweepSpec& spec, const std::vector<SweepPoint>& points,
                                  const SweepPoint& point) {
  if (spec.reference.empty()) return nullptr;
  for (const auto& q : points) {
    bool match = true;
    for (const auto& [axis, label] : point.axes) {
      const auto ref = spec.reference.find(axis);
      if (q.label(axis) != (ref == spec.reference.end() ? label : ref->second)) match = false;
    }
    if (match) return q.id == point.id ? nullptr : &q;
  }
  return nullptr;
}

}  // namespace mft::recipe
