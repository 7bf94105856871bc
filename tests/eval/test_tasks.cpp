// ICL evaluation: CPython's random (the few-shot sampler's draws), the exact k-shot prompts of every built-in
// task (known answers, taken from lm-evaluation-harness 0.4.13 on the same documents), user YAML tasks,
// metrics and their standard errors, clear errors for bad task data, and parity with lm-eval itself
// (tests/eval/lm_eval_parity.py) on random-weight Mamba and GPT-NeoX models: the same prompts, per-request
// loglikelihoods within 1e-4 and identical acc / acc_norm for every task and shot count.
#include "helpers.h"

#include "eval/builtin_tasks.h"
#include "eval/compare.h"
#include "eval/evaluator.h"
#include "eval/metrics.h"
#include "eval/python_random.h"
#include "eval/task.h"
#include "eval/yaml_task.h"
#include "models/registry.h"
#include "train/model_setup.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using Catch::Matchers::Contains;
using mft::test::have_python;
using mft::test::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;
namespace ev = mft::eval;

namespace {
void write_jsonl(const fs::path& file, const std::vector<json>& rows) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file);
  for (const auto& r : rows) out << r.dump() << "\n";
}

// Small documents of every built-in task in their real schemas (the prompts below are lm-eval's for them).
void write_known_answer_data(const fs::path& dir) {
  write_jsonl(dir / "hellaswag/validation.jsonl", {{{"ind", 9},
                                                    {"activity_label", "Roof [title] shingle"},
                                                    {"ctx_a", "A man  is [step] on a roof."},
                                                    {"ctx_b", "HE sits"},
                                                    {"ctx", ""},
                                                    {"endings", {"falls  down.", "waves [x]."}},
                                                    {"source_id", "s"},
                                                    {"split", "val"},
                                                    {"split_type", "indomain"},
                                                    {"label", "1"}}});
  std::vector<json> rows;
  for (int i = 0; i < 4; ++i) {
    const std::string n = std::to_string(i);
    rows.push_back({{"ind", i},
                    {"activity_label", "Act " + n},
                    {"ctx_a", "Ctx " + n + "."},
                    {"ctx_b", "then " + n},
                    {"ctx", ""},
                    {"endings", {"e0 " + n + ".", "e1 " + n + "."}},
                    {"source_id", "s"},
                    {"split", "train"},
                    {"split_type", "indomain"},
                    {"label", std::to_string(i % 2)}});
  }
  write_jsonl(dir / "hellaswag/train.jsonl", rows);
  write_jsonl(dir / "piqa/validation.jsonl",
              {{{"goal", "Open a jar"}, {"sol1", "twist the lid"}, {"sol2", "hit it"}, {"label", 0}}});
  rows.clear();
  for (int i = 0; i < 4; ++i) {
    const std::string n = std::to_string(i);
    rows.push_back({{"goal", "Goal " + n}, {"sol1", "a" + n}, {"sol2", "b" + n}, {"label", i % 2}});
  }
  write_jsonl(dir / "piqa/train.jsonl", rows);
  for (const char* t : {"arc_easy", "arc_challenge"}) {
    write_jsonl(dir / t / "test.jsonl", {{{"id", "q"},
                                          {"question", "Which is a planet?"},
                                          {"choices", {{"text", {"Mars", "Moon", "Sun"}}, {"label", {"A", "B", "C"}}}},
                                          {"answerKey", "A"}}});
    rows.clear();
    for (int i = 0; i < 4; ++i) {
      const std::string n = std::to_string(i);
      rows.push_back({{"id", "t" + n},
                      {"question", "Q" + n + "?"},
                      {"choices", {{"text", {"x" + n, "y" + n, "z" + n, "w" + n}}, {"label", {"1", "2", "3", "4"}}}},
                      {"answerKey", std::to_string(1 + i % 4)}});
    }
    write_jsonl(dir / t / "train.jsonl", rows);
  }
  write_jsonl(dir / "winogrande/validation.jsonl", {{{"sentence", "The cup is on the table because _ is heavy."},
                                                     {"option1", "cup"},
                                                     {"option2", "table"},
                                                     {"answer", "2"}}});
  rows.clear();
  for (int i = 0; i < 4; ++i) {
    rows.push_back({{"sentence", "Ann met Bo " + std::to_string(i) + " and _ smiled."},
                    {"option1", "Ann"},
                    {"option2", "Bo"},
                    {"answer", std::to_string(1 + i % 2)}});
  }
  write_jsonl(dir / "winogrande/train.jsonl", rows);
  rows.clear();
  for (int i = 0; i < 3; ++i) {
    rows.push_back({{"text", "the story number " + std::to_string(i) + " ends with word" + std::to_string(i)}});
  }
  write_jsonl(dir / "lambada_openai/test.jsonl", rows);
  std::vector<json> dev, test;
  for (const char* s : {"anatomy", "philosophy", "marketing", "sociology"}) {
    for (int i = 0; i < 3; ++i) {
      dev.push_back({{"question", " Dev " + std::to_string(i) + "? "},
                     {"subject", s},
                     {"choices", {"a", "b", "c", "d"}},
                     {"answer", i % 4}});
    }
    test.push_back(
        {{"question", "  What is 2+2?\n"}, {"subject", s}, {"choices", {"3", "4", "5", "6"}}, {"answer", 1}});
  }
  write_jsonl(dir / "mmlu/dev.jsonl", dev);
  write_jsonl(dir / "mmlu/test.jsonl", test);
}

// The requests (context, continuation) of the first document of `task` with `shots` examples, seed 1234.
std::vector<std::pair<std::string, std::string>> requests_of(const ev::Task& task, int64_t shots) {
  const auto ex = ev::fewshot_examples(task, shots, 1234);
  const ev::Instance in = ev::build_instance(task, task.eval_docs[0], ex[0]);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t r = 0; r < in.num_requests(); ++r) out.emplace_back(in.context(r), in.continuation(r));
  return out;
}

using Requests = std::vector<std::pair<std::string, std::string>>;
}  // namespace

TEST_CASE("PythonRandom draws what CPython's random.Random draws", "[eval_tasks]") {
  ev::PythonRandom r(1234);  // values printed by CPython 3.11
  CHECK(r.sample(10, 3) == std::vector<int64_t>{7, 1, 0});
  CHECK(r.sample(100, 7) == std::vector<int64_t>{11, 74, 4, 85, 88, 10, 12});  // pool method (n <= setsize)
  CHECK(r.getrandbits(32) == 3292010550ULL);
  ev::PythonRandom big(1234);
  CHECK(big.sample(1000, 3) == std::vector<int64_t>{989, 796, 451});  // set method (n > setsize)
  CHECK(big.random() == 0.11685051774599753);
  ev::PythonRandom zero(0);
  CHECK(zero.getrandbits(32) == 3626764237ULL);
  CHECK(zero.getrandbits(32) == 1654615998ULL);
  ev::PythonRandom wide((1ULL << 40) + 5);  // a seed of two 32-bit words
  CHECK(wide.sample(5, 5) == std::vector<int64_t>{4, 2, 3, 0, 1});
}

TEST_CASE("metrics and standard errors are lm-eval's", "[eval_tasks]") {
  // lm_eval.api.metrics: mean_stderr([1,0,0,1,1,1]), perplexity and bootstrap_stderr(perplexity, xs, 2000).
  CHECK(ev::mean_metric({1, 0, 0, 1, 1, 1}).stderr_value == Approx(0.210818510677892).epsilon(1e-12));
  const std::vector<double> lls = {-1.5, -2.25, -0.75, -3.0, -1.0};
  CHECK(ev::perplexity(lls) == Approx(5.4739473917272).epsilon(1e-12));
  CHECK(ev::bootstrap_perplexity_stderr(lls, 2000) == Approx(2.3159588745660904).epsilon(1e-12));
  CHECK(std::isnan(ev::mean_metric({1}).stderr_value));  // "N/A" for one value
  CHECK(ev::argmax({-1, -0.5, -0.5}) == 1);              // first maximum
  CHECK(ev::argmax({-4, -3}, {4, 1}) == 0);              // normalised: -1 > -3
  CHECK(ev::python_len("caf\xc3\xa9") == 4);
  const ev::MetricValue g = ev::pooled({{0.5, 0.2}, {1.0, 0.0}}, {10, 30});
  CHECK(g.value == Approx(0.875));
  CHECK(g.stderr_value == Approx(std::sqrt((9 * 0.04 * 10) / 38.0 / 40.0)));
}

TEST_CASE("k-shot prompts of every built-in task are lm-eval's, character for character", "[eval_tasks]") {
  TempDir dir{"mft-eval"};
  write_known_answer_data(dir.path);
  const std::string d = dir.path.string();
  // hellaswag: preprocess (" [title]" -> ". ", [...] removed, double spaces once), ctx_b capitalised; the
  // sampler draws k + 1 from train.
  const std::string hs =
      "Act 3: Ctx 3. Then 3 e1 3.\n\nAct 0: Ctx 0. Then 0 e0 0.\n\nRoof. shingle: A man is on a roof. He sits";
  CHECK(requests_of(ev::load_builtin_task("hellaswag", d)[0], 2) == Requests{{hs, " falls down."}, {hs, " waves ."}});
  const std::string pq =
      "Question: Goal 3\nAnswer: b3\n\nQuestion: Goal 0\nAnswer: a0\n\nQuestion: Open a jar\nAnswer:";
  CHECK(requests_of(ev::load_builtin_task("piqa", d)[0], 2) == Requests{{pq, " twist the lid"}, {pq, " hit it"}});
  const std::string arc =
      "Question: Q3?\nAnswer: w3\n\nQuestion: Q0?\nAnswer: x0\n\nQuestion: Which is a planet?\nAnswer:";
  CHECK(requests_of(ev::load_builtin_task("arc_easy", d)[0], 2) ==
        Requests{{arc, " Mars"}, {arc, " Moon"}, {arc, " Sun"}});
  CHECK(requests_of(ev::load_builtin_task("arc_challenge", d)[0], 2) ==
        Requests{{arc, " Mars"}, {arc, " Moon"}, {arc, " Sun"}});
  // winogrande: one context per option, the shared continuation after the blank; shots filled with gold.
  const std::string wg =
      "Ann met Bo 3 and Bo smiled.\n\nAnn met Bo 0 and Ann smiled.\n\nThe cup is on the table because ";
  CHECK(requests_of(ev::load_builtin_task("winogrande", d)[0], 2) ==
        Requests{{wg + "cup", " is heavy."}, {wg + "table", " is heavy."}});
  // lambada: the target " word" after the delimiter (two spaces in the shots), and a document may be its
  // own example (the pool is the test split and lm-eval does not exclude the document).
  CHECK(requests_of(ev::load_builtin_task("lambada_openai", d)[0], 2) ==
        Requests{{"the story number 1 ends with  word1\n\nthe story number 0 ends with  word0\n\nthe story number 0 "
                  "ends with",
                  " word0"}});
  // mmlu: the description, the subject's first dev rows (first_n), question stripped, " A".." D".
  const auto mmlu = ev::load_builtin_task("mmlu", d);
  REQUIRE(mmlu.size() == 4);
  CHECK(mmlu[0].name == "mmlu_anatomy");
  CHECK(mmlu[0].groups == std::vector<std::string>{"mmlu_stem", "mmlu"});
  const std::string q =
      "The following are multiple choice questions (with answers) about anatomy.\n\nDev 0?\nA. a\nB. "
      "b\nC. c\nD. d\nAnswer: A\n\nDev 1?\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\nWhat is 2+2?\nA. 3\nB. "
      "4\nC. 5\nD. 6\nAnswer:";
  CHECK(requests_of(mmlu[0], 2) == Requests{{q, " A"}, {q, " B"}, {q, " C"}, {q, " D"}});
  // 0-shot: the question alone (mmlu keeps its description).
  CHECK(requests_of(ev::load_builtin_task("piqa", d)[0], 0)[0].first == "Question: Open a jar\nAnswer:");
  CHECK(requests_of(mmlu[1], 0)[0].first.rfind("The following are multiple choice questions (with answers) about "
                                               "marketing.\n\nWhat is 2+2?",
                                               0) == 0);
}

TEST_CASE("few-shot draws follow one stream per task in document order, also with a limit", "[eval_tasks]") {
  TempDir dir{"mft-eval"};
  std::vector<json> val, train;
  for (int i = 0; i < 6; ++i)
    val.push_back({{"goal", "G" + std::to_string(i)}, {"sol1", "a"}, {"sol2", "b"}, {"label", 0}});
  for (int i = 0; i < 30; ++i)
    train.push_back({{"goal", "T" + std::to_string(i)}, {"sol1", "a"}, {"sol2", "b"}, {"label", 1}});
  write_jsonl(dir.path / "piqa/validation.jsonl", val);
  write_jsonl(dir.path / "piqa/train.jsonl", train);
  const ev::Task t = ev::load_builtin_task("piqa", dir.path.string())[0];
  const auto all = ev::fewshot_examples(t, 3, 1234);
  const auto limited = ev::fewshot_examples(t, 3, 1234, 2);
  REQUIRE(all.size() == 6);
  REQUIRE(limited.size() == 2);
  for (size_t d = 0; d < 2; ++d) CHECK(limited[d] == all[d]);
  // Each document draws k + 1 (piqa has no test split) and keeps the first k: the stream's first draws.
  ev::PythonRandom r(1234);
  for (size_t d = 0; d < all.size(); ++d) {
    const auto drawn = r.sample(30, 4);
    REQUIRE(all[d].size() == 3);
    for (size_t k = 0; k < 3; ++k) CHECK(all[d][k]->index == drawn[k]);
  }
  CHECK(ev::fewshot_examples(t, 3, 42)[0] != all[0]);  // another seed, other examples
}

TEST_CASE("user YAML tasks render templates and report bad keys and fields", "[eval_tasks]") {
  TempDir dir{"mft-eval"};
  write_jsonl(dir.path / "caps/test.jsonl",
              {{{"country", "France"}, {"options", {"Paris", "Rome"}}, {"label", 0}},
               {{"country", "Italy"}, {"options", {"Paris", "Rome"}}, {"label", "Rome"}}});
  std::ofstream(dir.path / "caps.yaml")
      << "task: capitals\ndata_file: caps/test.jsonl\ndescription: \"Capitals.\\n\\n\"\n"
         "doc_to_text: \"Q: capital of {{country}}?\\nA:\"\n"
         "doc_to_choice: \"{{options}}\"\ndoc_to_target: \"{{label}}\"\n";
  const ev::Task t = ev::load_yaml_task((dir.path / "caps.yaml").string());
  CHECK(t.name == "capitals");
  const auto ex = ev::fewshot_examples(t, 1, 1234);  // the pool is the data file: the doc itself is excluded
  REQUIRE(ex[0].size() == 1);
  CHECK(ex[0][0]->index == 1);
  const ev::Instance in = ev::build_instance(t, t.eval_docs[0], ex[0]);
  CHECK(in.context(0) == "Capitals.\n\nQ: capital of Italy?\nA: Rome\n\nQ: capital of France?\nA:");
  CHECK(in.continuations == std::vector<std::string>{" Paris", " Rome"});
  CHECK(t.gold_index(t.eval_docs[1]) == 1);  // a target given as the choice's text
  CHECK(ev::render_template("{{options[1]}} / {{ country }}", t.eval_docs[0]) == "Rome / France");
  CHECK_THROWS_WITH(ev::render_template("{{capital}}", t.eval_docs[0]),
                    Contains("caps/test.jsonl:1: template {{capital}}: field \"capital\" is missing"));
  std::ofstream(dir.path / "bad.yaml") << "task: x\ndata_file: caps/test.jsonl\ndoc_to_txt: a\n";
  CHECK_THROWS_WITH(ev::load_yaml_task((dir.path / "bad.yaml").string()),
                    Contains("bad.yaml:3: unknown key \"doc_to_txt\""));
}

TEST_CASE("bad task data gives one clear error naming the file and line", "[eval_tasks]") {
  TempDir dir{"mft-eval"};
  const std::string d = dir.path.string();
  CHECK_THROWS_WITH(ev::load_tasks({"hellaswag"}, d),
                    Contains("hellaswag/validation.jsonl is missing; export it with: python -c 'import datasets; "
                             "datasets.load_dataset(\"Rowan/hellaswag\", split=\"validation\")"));
  CHECK_THROWS_WITH(ev::load_tasks({"hellswag"}, d),
                    Contains("unknown task \"hellswag\"; did you mean \"hellaswag\"?"));
  write_jsonl(dir.path / "piqa/train.jsonl", {{{"goal", "g"}, {"sol1", "a"}, {"sol2", "b"}, {"label", 0}}});
  // Missing field, label out of range, malformed JSON: named by file and line when the document is used.
  write_jsonl(dir.path / "piqa/validation.jsonl", {{{"goal", "g"}, {"sol1", "a"}, {"sol2", "b"}, {"label", 0}},
                                                   {{"goal", "g"}, {"sol1", "a"}, {"label", 1}}});
  auto build_all = [&](const std::string& task) {
    for (const auto& t : ev::load_tasks({task}, d)) {
      for (const auto& doc : t.eval_docs) ev::build_instance(t, doc, {});
    }
  };
  CHECK_THROWS_WITH(build_all("piqa"), Contains("piqa/validation.jsonl:2: field \"sol2\" is missing"));
  write_jsonl(dir.path / "piqa/validation.jsonl", {{{"goal", "g"}, {"sol1", "a"}, {"sol2", "b"}, {"label", 2}}});
  CHECK_THROWS_WITH(build_all("piqa"),
                    Contains("piqa/validation.jsonl:1: the gold answer index 2 is out of range for 2 choices"));
  std::ofstream(dir.path / "piqa/validation.jsonl") << "{\"goal\": \"g\"}\n{\"goal\": \n";
  CHECK_THROWS_WITH(ev::load_tasks({"piqa"}, d), Contains("piqa/validation.jsonl:2: not valid JSON"));
  write_jsonl(dir.path / "arc_easy/train.jsonl", {});
  write_jsonl(
      dir.path / "arc_easy/test.jsonl",
      {{{"question", "q"}, {"choices", {{"text", json::array()}, {"label", json::array()}}}, {"answerKey", "A"}}});
  CHECK_THROWS_WITH(build_all("arc_easy"), Contains("arc_easy/test.jsonl:1: the document has no choices"));
  write_jsonl(dir.path / "winogrande/train.jsonl", {});
  write_jsonl(dir.path / "winogrande/validation.jsonl",
              {{{"sentence", "no blank"}, {"option1", "a"}, {"option2", "b"}, {"answer", "1"}}});
  CHECK_THROWS_WITH(build_all("winogrande"), Contains("winogrande/validation.jsonl:1: the sentence has no blank"));
  // More shots than the pool holds.
  write_jsonl(dir.path / "piqa/validation.jsonl", {{{"goal", "g"}, {"sol1", "a"}, {"sol2", "b"}, {"label", 0}}});
  CHECK_THROWS_WITH(ev::fewshot_examples(ev::load_tasks({"piqa"}, d)[0], 3, 1234),
                    Contains("3-shot evaluation needs 4 few-shot examples but"));
}

TEST_CASE("evaluation equals lm-evaluation-harness on random-weight models", "[eval_parity]") {
  if (!have_python()) return;
  TempDir dir{"mft-parity"};
  const std::string py = std::getenv("MFT_PYTHON"), tests = MFT_TESTS_DIR;
  const std::string models = (dir.path / "models").string(), data = (dir.path / "data").string();
  REQUIRE(std::system((py + " " + tests + "/eval/make_scoring_model.py " + models + " mamba neox").c_str()) == 0);
  REQUIRE(std::system((py + " " + tests + "/eval/make_task_data.py " + data).c_str()) == 0);
  const std::vector<std::string> names = {"lambada_openai", "hellaswag",  "piqa", "arc_easy",
                                          "arc_challenge",  "winogrande", "mmlu"};
  for (const char* family : {"mamba", "neox"}) {
    INFO(family);
    const std::string model = models + "/" + family, ref_file = (dir.path / (std::string(family) + ".json")).string();
    REQUIRE(std::system(
                (py + " " + tests + "/eval/lm_eval_parity.py --model " + model + " --data-dir " + data +
                 " --tasks lambada_openai,hellaswag,piqa,arc_easy,arc_challenge,winogrande,mmlu --shots 0,1,3 --out " +
                 ref_file + " > " + ref_file + ".log 2>&1")
                    .c_str()) == 0);
    const json ref = json::parse(std::ifstream(ref_file));
    auto lm = mft::models::load_model(model);
    lm->eval();
    const auto tok = mft::train::load_tokenizer_for(model, "");
    ev::EvalOptions o;
    o.shots = {0, 1, 3};
    o.log_samples = true;
    o.score.batch_size = 4;
    const json ours = ev::evaluate(*lm, *tok, ev::load_tasks(names, data), o);
    int64_t requests = 0;
    double worst = 0;
    for (const auto& [k, run] : ref["runs"].items()) {
      const json& shot = ours["shots"][k];
      for (const auto& [task, samples] : run["samples"].items()) {
        INFO(k << "-shot " << task);
        const json& mine = shot["samples"][task];
        REQUIRE(mine.size() == samples.size());
        for (size_t i = 0; i < samples.size(); ++i) {
          const json& reqs = samples[i]["requests"];
          REQUIRE(mine[i]["arguments"].size() == reqs.size());
          for (size_t r = 0; r < reqs.size(); ++r) {
            ++requests;
            CHECK(mine[i]["arguments"][r][0] == reqs[r]["context"]);  // the same prompt, character for character
            CHECK(mine[i]["arguments"][r][1] == reqs[r]["continuation"]);
            const double a = mine[i]["loglikelihoods"][r], b = reqs[r]["loglikelihood"];
            worst = std::max(worst, std::abs(a - b) / std::max(1.0, std::abs(b)));
            CHECK(std::abs(a - b) <= 1e-4 * std::max(1.0, std::abs(b)));
            CHECK(mine[i]["is_greedy"][r] == reqs[r]["is_greedy"]);
          }
        }
      }
      for (const auto& [task, res] : run["results"].items()) {
        INFO(k << "-shot " << task);
        REQUIRE(shot["results"].contains(task));
        for (const auto& [key, v] : res.items()) {
          if (key.find(',') == std::string::npos) continue;
          INFO(key);
          const json& w = shot["results"][task][key];
          if (v.is_string() || w.is_string()) {
            CHECK(v == w);
          } else if (key.rfind("perplexity", 0) == 0) {
            // exp(-mean ll) turns ll rounding (1e-7 relative) into ~1e-6: compare relatively.
            CHECK(std::abs(w.get<double>() - v.get<double>()) <= 1e-4 * std::abs(v.get<double>()));
          } else {
            CHECK(w.get<double>() == Approx(v.get<double>()).epsilon(1e-9).margin(1e-12));  // acc, acc_norm, stderrs
          }
        }
      }
    }
    CHECK(requests > 500);
    WARN(family << ": " << requests << " requests, worst relative loglikelihood difference " << worst);
  }
}

TEST_CASE("compare: divergence, spikes, ICL improvement and ratio with 95% intervals", "[eval_tasks]") {
  TempDir dir{"mft-compare"};
  // shots -> task -> acc (hellaswag is judged by acc_norm, as the paper reports it).
  auto results = [&](const std::string& name, const std::map<std::string, std::map<std::string, double>>& seeds) {
    json j;
    for (const auto& [seed, values] : seeds) {
      json shots;
      for (const auto& [key, v] : values) {  // key "k/task"
        const std::string k = key.substr(0, key.find('/')), task = key.substr(key.find('/') + 1);
        shots[k]["results"][task] = {{"acc,none", v}, {"acc_norm,none", v + 0.5}};
      }
      j["seeds"][seed]["shots"] = shots;
      if (!j.contains("shots")) j["shots"] = shots;
    }
    const std::string path = (dir.path / (name + ".json")).string();
    std::ofstream(path) << j.dump();
    return ev::read_results(path);
  };
  const auto ref =
      results("ref", {{"1", {{"0/piqa", 0.60}, {"1/piqa", 0.62}, {"0/hellaswag", 0.30}, {"1/hellaswag", 0.30}}}});
  const auto run =
      results("run", {{"1", {{"0/piqa", 0.605}, {"1/piqa", 0.64}, {"0/hellaswag", 0.30}, {"1/hellaswag", 0.31}}},
                      {"2", {{"0/piqa", 0.600}, {"1/piqa", 0.62}, {"0/hellaswag", 0.30}, {"1/hellaswag", 0.30}}}});
  const auto rows = ev::divergence(ref, {run});
  REQUIRE(rows.size() == 2);
  const auto& hs = rows[0].task == "hellaswag" ? rows[0] : rows[1];
  const auto& pq = rows[0].task == "piqa" ? rows[0] : rows[1];
  CHECK(hs.metric == "acc_norm");
  CHECK(pq.metric == "acc");
  // piqa seed 1: mean(|0.605-0.60|, |0.64-0.62|) = 1.25 points; seed 2 (reference's first seed): 0.
  CHECK(pq.divergence.mean == Approx(0.625));
  CHECK(pq.divergence.n == 2);
  CHECK(pq.divergence.half_width == Approx(12.706 * 0.625 * std::sqrt(2.0) / std::sqrt(2.0)));
  CHECK_FALSE(pq.spike);  // mean 0.625 <= 1 point
  CHECK(hs.divergence.mean == Approx(0.25));
  const auto big = results("big", {{"1", {{"0/piqa", 0.70}, {"1/piqa", 0.70}}}});
  const auto spiky = ev::divergence(ref, {big});
  REQUIRE(spiky.size() == 1);
  CHECK(spiky[0].divergence.mean == Approx(9.0));
  CHECK(spiky[0].spike);
  // ICL: improvement = mean over k in {1,3,5} present of acc_k - acc_0 (points); ratio against the pair.
  const auto model = results("m", {{"1", {{"0/piqa", 0.50}, {"1/piqa", 0.56}, {"3/piqa", 0.58}, {"5/piqa", 0.60}}}});
  const auto pair = results("p", {{"1", {{"0/piqa", 0.50}, {"1/piqa", 0.54}, {"3/piqa", 0.54}, {"5/piqa", 0.56}}}});
  const auto icl = ev::icl(model, &pair);
  REQUIRE(icl.size() == 1);
  CHECK(icl[0].improvement.mean == Approx(8.0));
  REQUIRE(icl[0].ratio);
  CHECK(icl[0].ratio->mean == Approx(100.0 * 8.0 / (14.0 / 3.0)));
  CHECK(ev::icl_csv(icl).find("m,piqa,acc,8.000000") != std::string::npos);
  CHECK(ev::divergence_markdown(spiky).find("Spikes (divergence > 1 point): 1 of 1") != std::string::npos);
  CHECK_THROWS_WITH(ev::read_results((dir.path / "none.json").string()), Contains("no such results file"));
}
