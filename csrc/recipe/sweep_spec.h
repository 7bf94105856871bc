#pragma once
// Sweep recipes (`mamba-ft sweep SWEEP.yaml`): axes over a base train+eval recipe. The file has three
// top-level keys:
//   sweep:    the axes and what to aggregate (below);
//   base:     the recipe of one point (a mapping of recipe sections, or the path of a recipe file); every
//             point is this recipe with its axis values applied as key.path=value overrides, its output.dir
//             set to <sweep.output_dir>/points/<point id>;
//   prepare:  optional recipe runs done once before the points, in order (a mapping like a multi-run
//             recipe file, or its path), e.g. pretraining the models the points fine-tune.
// Axes (`sweep.axes`, a mapping; the cartesian product of all axes gives the points, in file order):
//   precision.dtype: [fp32, bf16]        a key axis: its values are values of that recipe key;
//   family:                              a named axis: each value is a label with the overrides it applies
//     mamba: {model.path: ..., optimizer.lr: 2.0e-3}
// Other `sweep` keys: name, output_dir (required), family_axis, seed_axis (defaults: the axes named "family"
// and "trainer.seed", if any), reference (axis -> label of the configuration every other one diverges from,
// e.g. {precision.dtype: fp32, peft.method: full}), pairs (family label -> the Transformer family label whose
// ICL improvement a family's is compared with), stability (per-family analysis after the points) and report.
// This library does not need LibTorch; errors are std::runtime_error naming the file and the key.
#include "recipe/recipe.h"

#include <map>
#include <string>
#include <vector>

namespace mft::recipe {

// Points a sweep may have (the product of its axes' sizes): each is a training run.
constexpr int64_t kMaxSweepPoints = 10000;

struct AxisValue {
  std::string label;                   // as shown in ids and tables ("bf16", "mamba")
  std::vector<std::string> overrides;  // key.path=value applied to the base recipe
};

struct Axis {
  std::string name;  // a recipe key path (key axis) or a free name (named axis)
  std::vector<AxisValue> values;
};

struct StabilitySettings {
  bool enabled = true;
  std::map<std::string, std::string> presets;  // family label -> block preset of the perturbation experiment
  std::string text;                            // text whose first tokens drive the models (empty: random tokens)
  int64_t tokens = 256;                        // tokens for the Lyapunov estimates
  int64_t precision_tokens = 128;              // tokens for precision divergence
  int64_t blocks = 100, steps = 64;            // perturbation experiment
  std::vector<double> eps = {1e-6, 1e-4, 1e-2};
  int64_t k = 8;  // Benettin directions
};

struct SweepSpec {
  std::string source;  // the sweep file
  std::string name, output_dir;
  std::vector<Axis> axes;
  std::string family_axis, seed_axis;            // empty: none
  std::map<std::string, std::string> reference;  // axis -> label
  std::map<std::string, std::string> pairs;      // family label -> paired family label
  StabilitySettings stability;
  bool report = true;
  std::string base_yaml, base_source;                          // the point recipe (YAML text) and where it came from
  std::string prepare_yaml, prepare_source;                    // empty: nothing to prepare
  std::vector<std::string> base_overrides, prepare_overrides;  // from the command line
};

struct SweepPoint {
  std::string id;                                         // "family-mamba_dtype-bf16_seed-0": a folder name
  std::vector<std::pair<std::string, std::string>> axes;  // axis name -> label, in axis order
  std::vector<std::string> overrides;                     // every axis value's overrides, in axis order
  std::string config() const;                             // labels of the non-seed axes joined by spaces
  std::string seed_axis;                                  // to tell config() which axis to leave out
  std::string label(const std::string& axis) const;       // this point's label on `axis` ("" if none)
};

// Parses a sweep file. Command-line overrides: "sweep.KEY=value" sets a sweep option (not axes),
// "prepare.KEY=value" applies to every prepare run, anything else to every point's recipe; axis_values
// ("NAME=a,b") restrict a named axis to those labels or replace a key axis' values. Every point's recipe is
// resolved once here, so an unknown key anywhere fails before anything runs.
SweepSpec load_sweep(const std::string& path, const std::vector<std::string>& overrides = {},
                     const std::vector<std::string>& axis_values = {});
SweepSpec parse_sweep(const std::string& yaml_text, const std::string& source,
                      const std::vector<std::string>& overrides = {}, const std::vector<std::string>& axis_values = {});

// The cartesian product of the axes, first axis slowest.
std::vector<SweepPoint> sweep_points(const SweepSpec& spec);

// One point's recipe: the base with the point's overrides, output.dir = <output_dir>/points/<id>.
Recipe point_recipe(const SweepSpec& spec, const SweepPoint& point);
// The prepare runs (empty if none).
std::vector<Recipe> prepare_recipes(const SweepSpec& spec);

// The point whose labels equal `point`'s except on the reference axes, which take the reference labels
// (nullptr when there is no reference or it is `point` itself).
const SweepPoint* reference_point(const SweepSpec& spec, const std::vector<SweepPoint>& points,
                                  const SweepPoint& point);

}  // namespace mft::recipe
