// The sweep's tables (sweep/aggregate.h) on hand-made results with known answers: divergence per seed
// against the same seed's reference, spikes, 95 % CIs, ICL improvement and ratio, LoRA spread, throughput.
#include "recipe/sweep_spec.h"
#include "sweep/aggregate.h"

#include <catch2/catch.hpp>

#include <cmath>

using nlohmann::json;
using namespace mft;

namespace {

const char* kSpec = R"(sweep:
  output_dir: unused
  axes:
    family:
      m: {model.path: "preset:mamba-tiny"}
      p: {model.path: "preset:pythia-tiny"}
    peft:
      full: {peft.method: full}
      lora: {peft.method: lora}
      lora-r4: {peft.method: lora, peft.rank: 4}
    trainer.seed: [0, 1, 2]
  reference: {peft: full}
  pairs: {m: p}
base:
  data: {train_file: x.jsonl}
  eval: {tasks: [capitals]}
)";

// Accuracy (%) of a point on `task` at k shots.
double acc(const std::string& family, const std::string& peft, int seed, int k, const std::string& task) {
  const double lora_shift[3] = {0.5, 2.0, 0.5};  // per seed: LoRA vs full
  double a = family == "m" ? 30 + k + seed : 40 + 2 * k + seed;
  if (peft == "lora") a += lora_shift[seed];
  if (peft == "lora-r4") a += 3;
  return task == "hellaswag" ? a + 10 : a;
}

using AccFn = double (*)(const std::string&, const std::string&, int, int, const std::string&);

json eval_json(const std::string& family, const std::string& peft, int seed, AccFn f = acc) {
  json shots = json::object();
  for (int k : {0, 1, 3, 5}) {
    json results = {{"capitals", {{"acc,none", f(family, peft, seed, k, "capitals") / 100}}},
                    // hellaswag's headline metric is acc_norm; its acc is a decoy.
                    {"hellaswag", {{"acc,none", 0.0}, {"acc_norm,none", f(family, peft, seed, k, "hellaswag") / 100}}}};
    shots[std::to_string(k)] = {{"results", results}};
  }
  return {{"shots", shots}};
}

const json* find_row(const json& rows, const std::string& config, const std::string& task) {
  for (const auto& r : rows)
    if (r.value("config", "") == config && r.value("task", "") == task) return &r;
  return nullptr;
}

}  // namespace

TEST_CASE("sweep tables: known answers", "[sweep]") {
  const recipe::SweepSpec spec = recipe::parse_sweep(kSpec, "t.yaml");
  const auto points = recipe::sweep_points(spec);
  REQUIRE(points.size() == 18);
  std::vector<sweep::PointOutcome> outcomes(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    auto& o = outcomes[i];
    o.point = &p;
    const std::string fam = p.label("family"), peft = p.label("peft");
    const int seed = std::stoi(p.label("trainer.seed"));
    o.lora = peft != "full";
    o.record = {{"status", "ok"},
                {"train",
                 {{"tokens_per_s", peft == "full" ? 100.0 : 250.0},
                  {"memory_per_token_kb", peft == "full" ? 10.0 : 4.0},
                  {"peak_rss_over_load_mb", 50.0}}}};
    o.eval = eval_json(fam, peft, seed);
  }
  // A failed run of point 0 counts for nothing (it would change every number below).
  sweep::PointOutcome failed = outcomes[0];
  failed.record["status"] = "failed";
  outcomes.push_back(failed);
  const json t = sweep::aggregate_tables(spec, outcomes);

  SECTION("divergence: per seed against the same seed's fp32 full run, then mean ± t-CI") {
    const json* r = find_row(t["divergence"], "m lora", "capitals");
    REQUIRE(r != nullptr);
    CHECK((*r)["mean"].get<double>() == Approx(1.0));
    const double sd = std::sqrt((0.25 + 1.0 + 0.25) / 2);
    // t(0.975, 2) = 4.303, as eval::mean_ci tabulates it.
    CHECK((*r)["ci"].get<double>() == Approx(4.303 * sd / std::sqrt(3.0)).epsilon(1e-6));
    CHECK((*r)["n"] == 3);
    CHECK((*r)["spikes"] == 1);     // seed 1 diverged by 2 points
    CHECK((*r)["spike"] == false);  // the mean, 1.0, is not > 1
    const json* r4 = find_row(t["divergence"], "m lora-r4", "all");
    REQUIRE(r4 != nullptr);
    CHECK((*r4)["mean"].get<double>() == Approx(3.0));
    CHECK((*r4)["ci"].get<double>() == Approx(0.0).margin(1e-12));
    CHECK((*r4)["spikes"] == 3);
    CHECK((*r4)["spike"] == true);
    CHECK(find_row(t["divergence"], "m full", "all") == nullptr);  // the reference does not diverge from itself
  }
  SECTION("icl: accuracy by shots, improvement, and the ratio against the paired family") {
    const json* r = find_row(t["icl"], "m full", "capitals");
    REQUIRE(r != nullptr);
    CHECK((*r)["shots"]["0"]["mean"].get<double>() == Approx(31.0));  // 30 + seeds 0..2 averaged
    CHECK((*r)["shots"]["5"]["mean"].get<double>() == Approx(36.0));
    CHECK((*r)["improvement"]["mean"].get<double>() == Approx(3.0));  // mean of 1, 3, 5
    CHECK((*r)["ratio"]["mean"].get<double>() == Approx(50.0));       // 3 / 6
    CHECK((*r)["paired_config"] == "p full");
    const json* h = find_row(t["icl"], "m full", "hellaswag");
    REQUIRE(h != nullptr);
    CHECK((*h)["metric"] == "acc_norm");
    CHECK((*h)["shots"]["0"]["mean"].get<double>() == Approx(41.0));
    const json* p = find_row(t["icl"], "p lora", "all");
    REQUIRE(p != nullptr);
    CHECK((*p)["ratio"].is_null());  // p has no pair
  }
  SECTION("lora spread per family over its LoRA configurations") {
    REQUIRE(t["lora_spread"].size() == 2);
    const json& m = t["lora_spread"][0];
    CHECK(m["family"] == "m");
    CHECK(m["configs"] == 2);
    CHECK(m["range"].get<double>() == Approx(2.0));  // +3 (lora-r4) vs +1 on average (lora)
    // Within a seed: +3 vs +0.5, +2, +0.5 -> spreads 2.5, 1, 2.5.
    CHECK(m["range_per_seed"]["mean"].get<double>() == Approx(2.0));
    CHECK(m["range_per_seed"]["ci"].get<double>() == Approx(4.303 * std::sqrt(0.75) / std::sqrt(3.0)).epsilon(1e-6));
  }
  SECTION("throughput relative to the reference configuration") {
    const json* r = find_row(t["throughput"], "p lora", "");
    for (const auto& row : t["throughput"])
      if (row["config"] == "p lora") r = &row;
    REQUIRE(r != nullptr);
    CHECK((*r)["tokens_per_s"]["mean"].get<double>() == Approx(250.0));
    CHECK((*r)["speedup_vs_reference"].get<double>() == Approx(2.5));
    CHECK((*r)["memory_per_token_change_pct"].get<double>() == Approx(-60.0));
  }
  SECTION("markdown and CSV carry the same rows") {
    for (const char* name : {"divergence", "icl", "lora_spread", "throughput"}) {
      const std::string md = sweep::table_markdown(name, t[name]), csv = sweep::table_csv(name, t[name]);
      CHECK(std::count(csv.begin(), csv.end(), '\n') >= static_cast<long>(t[name].size()) + 1);
      CHECK(std::count(md.begin(), md.end(), '\n') == static_cast<long>(t[name].size()) + 2);
    }
    CHECK_THROWS_WITH(sweep::table_csv("nope", json::array()), Catch::Matchers::Contains("no table named nope"));
  }
}

TEST_CASE("sweep tables: failed and pending points are left out", "[sweep]") {
  const recipe::SweepSpec spec = recipe::parse_sweep(kSpec, "t.yaml");
  const auto points = recipe::sweep_points(spec);
  std::vector<sweep::PointOutcome> outcomes(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    outcomes[i].point = &points[i];
    const int seed = std::stoi(points[i].label("trainer.seed"));
    outcomes[i].eval = eval_json(points[i].label("family"), points[i].label("peft"), seed);
    // Seed 1 failed everywhere; seed 2 never ran.
    outcomes[i].record = seed == 0 ? json{{"status", "ok"}} : seed == 1 ? json{{"status", "failed"}} : json();
  }
  const json t = sweep::aggregate_tables(spec, outcomes);
  const json* r = find_row(t["divergence"], "m lora", "capitals");
  REQUIRE(r != nullptr);
  CHECK((*r)["n"] == 1);
  CHECK((*r)["mean"].get<double>() == Approx(0.5));
}

TEST_CASE("sweep tables: accuracy reads the headline metric, averaged over few-shot seeds", "[sweep]") {
  const json e = {{"seeds",
                   {{"1", {{"shots", {{"0", {{"results", {{"capitals", {{"acc,none", 0.2}}}}}}}}}}},
                    {"2", {{"shots", {{"0", {{"results", {{"capitals", {{"acc,none", 0.4}}}}}}}}}}}}}};
  CHECK(sweep::accuracy(e, "capitals", "0") == Approx(30.0));
  CHECK(std::isnan(sweep::accuracy(e, "capitals", "1")));
  CHECK(std::isnan(sweep::accuracy(e, "piqa", "0")));
}

TEST_CASE("sweep tables: no ICL ratio against a pair whose improvement is noise", "[sweep]") {
  const recipe::SweepSpec spec = recipe::parse_sweep(kSpec, "t.yaml");
  const auto points = recipe::sweep_points(spec);
  // p improves by -3, 0, +3 points over the seeds: its improvement's CI contains 0.
  const AccFn noisy = [](const std::string& family, const std::string& peft, int seed, int k, const std::string& task) {
    return family == "p" ? 40.0 + (seed - 1) * k : acc(family, peft, seed, k, task);
  };
  std::vector<sweep::PointOutcome> outcomes(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    outcomes[i].point = &points[i];
    outcomes[i].record = {{"status", "ok"}};
    outcomes[i].eval = eval_json(points[i].label("family"), points[i].label("peft"),
                                 std::stoi(points[i].label("trainer.seed")), noisy);
  }
  const json t = sweep::aggregate_tables(spec, outcomes);
  const json* r = find_row(t["icl"], "m full", "capitals");
  REQUIRE(r != nullptr);
  CHECK((*r)["improvement"]["mean"].get<double>() == Approx(3.0));
  CHECK((*r)["ratio"].is_null());
}

TEST_CASE("sweep tables: the ICL ratio's CI (delta method) widens with the seeds' scatter", "[sweep]") {
  const recipe::SweepSpec spec = recipe::parse_sweep(kSpec, "t.yaml");
  const auto points = recipe::sweep_points(spec);
  // m improves by 3 + seed (3, 4, 5), p by 6 every seed: ratio of means 4 / 6, CI from m's scatter alone.
  const AccFn scatter = [](const std::string& family, const std::string& peft, int seed, int k,
                           const std::string& task) {
    return family == "m" ? 30.0 + k * (3.0 + seed) / 3.0 : acc(family, peft, seed, k, task);
  };
  std::vector<sweep::PointOutcome> outcomes(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    outcomes[i].point = &points[i];
    outcomes[i].record = {{"status", "ok"}};
    outcomes[i].eval = eval_json(points[i].label("family"), points[i].label("peft"),
                                 std::stoi(points[i].label("trainer.seed")), scatter);
  }
  const json t = sweep::aggregate_tables(spec, outcomes);
  const json* r = find_row(t["icl"], "m full", "capitals");
  REQUIRE(r != nullptr);
  CHECK((*r)["ratio"]["mean"].get<double>() == Approx(100.0 * 4 / 6));
  // b constant: Var(R) = s_a^2 / (n b^2) with s_a = 1, n = 3, b = 6.
  CHECK((*r)["ratio"]["ci"].get<double>() == Approx(100 * 4.303 * std::sqrt(1.0 / (3 * 36.0))));
}
