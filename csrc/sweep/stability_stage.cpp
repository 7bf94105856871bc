// The sweep's stability stage (stability_stage.h).
#include "sweep/stability_stage.h"

#include "analysis/lyapunov.h"
#include "analysis/perturbation.h"
#include "analysis/precision.h"
#include "core/json_parse.h"
#include "sweep/point_run.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mft::sweep {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// input_ids (1, T): the first T tokens of the text file, else seeded random tokens.
at::Tensor stability_ids(const recipe::StabilitySettings& s, const Tokenizer& tokenizer, int64_t tokens) {
  if (s.text.empty()) {
    at::Generator gen = at::detail::createCPUGenerator(0);
    return at::randint(tokenizer.vocab_size(), {1, tokens}, gen, at::TensorOptions().dtype(at::kLong));
  }
  std::ifstream in(s.text, std::ios::binary);
  TORCH_CHECK(in.good(), "sweep.stability.text: cannot read ", s.text);
  // Only the beginning is needed (the file may be all of Alpaca): a generous number of bytes per token.
  constexpr int64_t kBytesPerToken = 32, kMinBytes = 1 << 16;
  std::string text(static_cast<size_t>(std::max(kMinBytes, tokens * kBytesPerToken)), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::vector<int64_t> ids = tokenizer.encode(text);
  TORCH_CHECK(static_cast<int64_t>(ids.size()) >= tokens, "sweep.stability.text: ", s.text, " has ", ids.size(),
              " tokens; the analysis needs ", tokens);
  ids.resize(static_cast<size_t>(tokens));
  return at::tensor(ids, at::kLong).unsqueeze(0);
}

// The family's analysed point: its reference configuration at the first seed, else its first finished point.
const PointOutcome* analysed_point(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes,
                                   const std::string& family) {
  const PointOutcome* fallback = nullptr;
  for (const auto& o : outcomes) {
    if (o.point->label(spec.family_axis) != family || !o.record.is_object() || o.record.value("status", "") != "ok")
      continue;
    if (!fallback) fallback = &o;
    bool is_reference = !spec.reference.empty();
    for (const auto& [axis, label] : spec.reference) is_reference = is_reference && o.point->label(axis) == label;
    if (is_reference) return &o;
  }
  return fallback;
}

// Runs `compute` unless `path` holds a result with the same settings; returns path relative to the sweep.
template <typename F>
std::string cached(const recipe::SweepSpec& spec, const fs::path& path, const json& settings, F compute) {
  {
    const json old = try_load_json_file(path.string());
    if (old.is_object() && old.value("settings", json()) == settings)
      return fs::relative(path, spec.output_dir).string();
  }
  json j = compute();
  j["settings"] = settings;
  fs::create_directories(path.parent_path());
  write_text_atomic(path.string(), j.dump(1) + "\n");
  return fs::relative(path, spec.output_dir).string();
}

// One family's analyses into `entry` (paths of the files written).
void analyse_family(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes, const std::string& family,
                    json& entry, const std::function<void(const std::string&)>& say) {
  const auto& s = spec.stability;
  const fs::path dir = fs::path(spec.output_dir) / "stability" / family;

  if (const auto preset = s.presets.find(family); preset != s.presets.end()) {
    say(fmt::format("stability: {}: perturbation experiment ({} blocks of {})", family, s.blocks, preset->second));
    const json settings = {{"preset", preset->second}, {"blocks", s.blocks}, {"steps", s.steps}, {"eps", s.eps}};
    entry["perturbation"] = cached(spec, dir / "perturb.json", settings, [&] {
      analysis::PerturbationOptions o;
      o.preset = preset->second;
      o.blocks = s.blocks;
      o.steps = s.steps;
      o.eps = s.eps;
      return json{{"kind", "perturbation"}, {"result", analysis::perturbation_experiment(o).to_json()}};
    });
  }
  const PointOutcome* point = analysed_point(spec, outcomes, family);
  if (!point) {
    say(fmt::format("stability: {}: no finished point to analyse", family));
    return;
  }
  const recipe::Recipe r = recipe::point_recipe(spec, *point->point);
  TunedModel m = load_tuned_model(r);
  const json base = {{"model", m.path}, {"point", point->point->id}, {"text", s.text}};
  if (m.model->family() == "mamba" || m.model->family() == "mamba2") {
    say(fmt::format("stability: {}: Lyapunov exponents of {} ({} tokens)", family, point->point->id, s.tokens));
    json settings = base;
    settings["tokens"] = s.tokens;
    settings["k"] = s.k;
    entry["lyapunov"] = cached(spec, dir / "lyapunov.json", settings, [&] {
      const at::Tensor ids = stability_ids(s, *m.tokenizer, s.tokens);
      const auto l = analysis::model_lyapunov(*m.model, ids, s.k);
      json j = {{"kind", "lyapunov"}, {"model", m.path}, {"tokens", s.tokens}, {"k", s.k}, {"warmup", 0}};
      j["layers"] = json::array();
      for (const auto& e : l.layers)
        j["layers"].push_back({{"layer", e.layer}, {"exact", e.exact}, {"estimated", e.estimated}});
      j["stack"] = l.stack.exponents;
      return j;
    });
  }
  say(fmt::format("stability: {}: precision divergence of {} ({} tokens)", family, point->point->id,
                  s.precision_tokens));
  json settings = base;
  settings["tokens"] = s.precision_tokens;
  entry["precision"] = cached(spec, dir / "precision.json", settings, [&] {
    const at::Tensor ids = stability_ids(s, *m.tokenizer, s.precision_tokens);
    const auto result = analysis::precision_divergence([&] { return load_tuned_model(r).model; }, ids);
    return json{{"kind", "precision"}, {"model", m.path}, {"result", result.to_json()}};
  });
}

}  // namespace

json run_stability(const recipe::SweepSpec& spec, const std::vector<PointOutcome>& outcomes,
                   const std::function<void(const std::string&)>& say) {
  json out = json::object();
  const auto& s = spec.stability;
  if (!s.enabled) return out;
  if (spec.family_axis.empty()) {
    say("stability: skipped (no family axis)");
    return out;
  }
  std::vector<std::string> families;
  for (const auto& a : spec.axes)
    if (a.name == spec.family_axis)
      for (const auto& v : a.values) families.push_back(v.label);
  for (const auto& family : families) {
    out[family] = json::object();
    try {
      analyse_family(spec, outcomes, family, out[family], say);
    } catch (const std::exception& e) {
      // Recorded like a failed point: the other families and the tables still come.
      const std::string what = e.what();
      out[family]["error"] = what.substr(0, what.find('\n'));
      say(fmt::format("stability: {}: failed: {}", family, out[family]["error"].get<std::string>()));
    }
  }
  return out;
}

}  // namespace mft::sweep
