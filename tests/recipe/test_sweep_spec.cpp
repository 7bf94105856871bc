// Sweep files (recipe/sweep_spec.h): axes -> points, overrides, --axis, references, and every way to get
// a sweep file wrong.
#include "recipe/sweep_spec.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using namespace mft::recipe;

namespace {

const std::string kSweep = R"(sweep:
  output_dir: out/sw
  axes:
    family:
      mamba: {model.path: "preset:mamba-tiny"}
      pythia: {model.path: "preset:pythia-tiny", optimizer.lr: 1.0e-3}
    precision.dtype: [fp32, bf16]
    peft:
      full: {peft.method: full}
      lora: {peft.method: lora, peft.rank: 4}
    trainer.seed: [0, 1, 2]
  reference: {precision.dtype: fp32, peft: full}
  pairs: {mamba: pythia}
  stability: {presets: {mamba: mamba-tiny}, blocks: 7}
prepare:
  data: {format: text, train_file: corpus.txt}
  runs:
    - {model: {path: "preset:mamba-tiny"}, output: {dir: out/pre/m}}
    - {model: {path: "preset:pythia-tiny"}, output: {dir: out/pre/p}}
base:
  model: {path: "preset:mamba-tiny"}
  data: {train_file: instruct.jsonl}
  trainer: {max_steps: 10}
  eval: {tasks: [capitals.yaml], shots: [0, 1]}
)";

std::string with(const std::string& from, const std::string& to) {
  std::string s = kSweep;
  const size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

void fails_with(const std::string& text, const std::string& needle, const std::vector<std::string>& overrides = {},
                const std::vector<std::string>& axes = {}) {
  INFO(needle);
  CHECK_THROWS_WITH(parse_sweep(text, "s.yaml", overrides, axes), Contains(needle));
}

}  // namespace

TEST_CASE("sweep: the axes' product gives the points, first axis slowest", "[recipe][sweep]") {
  const SweepSpec spec = parse_sweep(kSweep, "s.yaml");
  CHECK(spec.name == "s");
  CHECK(spec.family_axis == "family");
  CHECK(spec.seed_axis == "trainer.seed");
  const auto points = sweep_points(spec);
  REQUIRE(points.size() == 2 * 2 * 2 * 3);
  CHECK(points[0].id == "family-mamba_dtype-fp32_peft-full_seed-0");
  CHECK(points[1].id == "family-mamba_dtype-fp32_peft-full_seed-1");
  CHECK(points.back().id == "family-pythia_dtype-bf16_peft-lora_seed-2");
  CHECK(points.back().config() == "pythia bf16 lora");
  CHECK(points.back().label("precision.dtype") == "bf16");
  CHECK(points.back().label("nope").empty());

  const Recipe r = point_recipe(spec, points.back());
  CHECK(r.model.path == "preset:pythia-tiny");
  CHECK(r.optimizer.lr == 1e-3);
  CHECK(r.precision.dtype == "bf16");
  CHECK(r.peft.method == "lora");
  CHECK(r.peft.rank == 4);
  CHECK(r.trainer.seed == 2);
  CHECK(r.trainer.max_steps == 10);
  CHECK(r.output.dir == "out/sw/points/" + points.back().id);
  CHECK(r.eval.shots == std::vector<std::string>{"0", "1"});
  const Recipe first = point_recipe(spec, points[0]);
  CHECK(first.optimizer.lr == 2e-4);  // the recipe default: the mamba value sets no lr
  CHECK(first.peft.method == "full");

  const auto prep = prepare_recipes(spec);
  REQUIRE(prep.size() == 2);
  CHECK(prep[1].output.dir == "out/pre/p");
  CHECK(spec.stability.blocks == 7);
  CHECK(spec.stability.presets.at("mamba") == "mamba-tiny");
  CHECK(spec.pairs.at("mamba") == "pythia");
}

TEST_CASE("sweep: each point's reference shares its family and seed", "[recipe][sweep]") {
  const SweepSpec spec = parse_sweep(kSweep, "s.yaml");
  const auto points = sweep_points(spec);
  const SweepPoint& p = points.back();  // pythia bf16 lora seed 2
  const SweepPoint* ref = reference_point(spec, points, p);
  REQUIRE(ref != nullptr);
  CHECK(ref->id == "family-pythia_dtype-fp32_peft-full_seed-2");
  CHECK(reference_point(spec, points, *ref) == nullptr);  // the reference has none
  const SweepSpec no_ref = parse_sweep(with("  reference: {precision.dtype: fp32, peft: full}\n", ""), "s.yaml");
  CHECK(reference_point(no_ref, sweep_points(no_ref), p) == nullptr);
}

TEST_CASE("sweep: command-line overrides and --axis", "[recipe][sweep]") {
  const SweepSpec spec = parse_sweep(
      kSweep, "s.yaml",
      {"trainer.max_steps=3", "sweep.output_dir=elsewhere", "prepare.trainer.max_steps=2", "sweep.stability.blocks=5"},
      {"trainer.seed=0,7", "family=pythia"});
  CHECK(spec.output_dir == "elsewhere");
  CHECK(spec.stability.blocks == 5);
  const auto points = sweep_points(spec);
  REQUIRE(points.size() == 1 * 2 * 2 * 2);
  CHECK(points[1].id == "family-pythia_dtype-fp32_peft-full_seed-7");
  const Recipe r = point_recipe(spec, points[1]);
  CHECK(r.trainer.max_steps == 3);
  CHECK(r.trainer.seed == 7);
  CHECK(r.output.dir == "elsewhere/points/" + points[1].id);
  for (const auto& pr : prepare_recipes(spec)) CHECK(pr.trainer.max_steps == 2);
}

TEST_CASE("sweep: bad sweep files fail naming the key", "[recipe][sweep]") {
  fails_with(with("sweep:", "sweeep:"), "sweeep: unknown key");
  fails_with(with("  output_dir: out/sw\n", "  output_dir: out/sw\n  outptu: 1\n"), "sweep.outptu: unknown key");
  fails_with(with("  output_dir: out/sw\n", ""), "sweep.output_dir: required");
  fails_with(with("    precision.dtype: [fp32, bf16]", "    precision.dtyp: [fp32, bf16]"),
             "did you mean 'precision.dtype'?");
  fails_with(with("    precision.dtype: [fp32, bf16]", "    precision.dtype: [fp32, bf15]"),
             "sweep.axes.precision.dtype");
  fails_with(with("    precision.dtype: [fp32, bf16]", "    precision.dtype: []"),
             "sweep.axes.precision.dtype: empty axis");
  fails_with(with("    precision.dtype: [fp32, bf16]", "    precision.dtype: [fp32, fp32]"), "appears twice");
  fails_with(with("      lora: {peft.method: lora, peft.rank: 4}", "      lora: {peft.method: lora, peft.rnk: 4}"),
             "did you mean 'peft.rank'?");
  fails_with(with("      lora: {peft.method: lora, peft.rank: 4}", "      lora: [1]"),
             "sweep.axes.peft.lora: expected a mapping");
  fails_with(with("  reference: {precision.dtype: fp32, peft: full}", "  reference: {precision.dtype: fp64}"),
             "axis 'precision.dtype' has no value 'fp64'");
  fails_with(with("  reference: {precision.dtype: fp32, peft: full}", "  reference: {dtype: fp32}"),
             "sweep.reference.dtype: no such axis");
  fails_with(with("  pairs: {mamba: pythia}", "  pairs: {mamba: gpt}"), "no family 'gpt'");
  fails_with(with("blocks: 7", "blocks: 0"), "sweep.stability.blocks: must be > 0");
  fails_with(with("blocks: 7", "blocs: 7"), "sweep.stability.blocs: unknown key");
  fails_with(with("base:\n", "bsae:\n"), "bsae: unknown key");
  fails_with(with("  output_dir: out/sw\n", "  output_dir: out/sw\n  seed_axis: seeds\n"),
             "sweep.seed_axis: no axis named 'seeds'");
  fails_with(kSweep, "change axes with --axis", {"sweep.axes.trainer.seed=[0]"});
  fails_with(kSweep, "override 'nothing'", {"nothing"});
  fails_with(kSweep, "no axis named 'famly'; did you mean 'family'?", {}, {"famly=mamba"});
  fails_with(kSweep, "axis 'family' has no value 'mamba3'", {}, {"family=mamba3"});
  fails_with(kSweep, "optimizer.lrr", {"optimizer.lrr=1"});
  fails_with("sweep:\n  output_dir: o\n  axes: {}\nbase: {}\n", "sweep.axes: empty");
  fails_with("sweep:\n  output_dir: o\nbase: {}\n", "sweep.axes: required");
  fails_with("sweep:\n  output_dir: o\n  axes: {trainer.seed: [0]}\n", "base: required");
  fails_with("sweep: [\n", "malformed YAML");
}

TEST_CASE("sweep: every sweep file in recipes/ parses and starts with its command", "[recipe][sweep]") {
  namespace fs = std::filesystem;
  int sweeps = 0;
  for (const auto& entry : fs::recursive_directory_iterator(MFT_RECIPES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("\nsweep:") == std::string::npos && text.rfind("sweep:", 0) != 0) continue;
    INFO(entry.path().string());
    ++sweeps;
    const std::string rel = fs::relative(entry.path(), fs::path(MFT_RECIPES_DIR).parent_path()).string();
    CHECK_THAT(text.substr(0, text.find('\n')), StartsWith("# build/mamba-ft") && Contains("sweep " + rel));
    SweepSpec spec;
    // Relative paths in recipes (data, base files) are relative to the repository root.
    const auto cwd = fs::current_path();
    fs::current_path(fs::path(MFT_RECIPES_DIR).parent_path());
    CHECK_NOTHROW(spec = load_sweep(rel));
    fs::current_path(cwd);
    CHECK_FALSE(sweep_points(spec).empty());
  }
  CHECK(sweeps >= 1);
}
