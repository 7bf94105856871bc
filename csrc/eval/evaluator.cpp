#include "eval/evaluator.h"

#include "core/json_parse.h"

#include "eval/builtin_tasks.h"
#include "eval/metrics.h"
#include "eval/yaml_task.h"
#include "recipe/recipe_keys.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

namespace mft::eval {
namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The closest known task name, for "did you mean".
std::string closest_task(const std::string& name) {
  std::string best;
  size_t best_d = SIZE_MAX;
  std::vector<std::string> all = builtin_task_names();
  for (const auto& s : mmlu_subjects()) all.push_back("mmlu_" + s);
  for (const auto& n : all) {
    const size_t d = recipe::edit_distance(name, n);
    if (d < best_d) best_d = d, best = n;
  }
  return best;
}

// One document's requests and where their results are in the flat request list.
struct DocPlan {
  Instance instance;
  std::vector<size_t> requests;
};

// Everything one (seed, shot count, task) evaluation needs.
struct RunPlan {
  uint64_t seed = 0;
  int64_t shots = 0;
  const Task* task = nullptr;
  std::vector<DocPlan> docs;
};

// Per-document metric values and the sample log entry.
struct DocOutcome {
  std::map<std::string, double> metrics;  // acc, acc_norm, acc_bytes / acc, (perplexity: the loglikelihood)
  nlohmann::json sample;
};

DocOutcome score_doc(const Task& task, const DocPlan& d, const std::vector<ScoreResult>& results, bool log) {
  DocOutcome o;
  std::vector<double> lls;
  std::vector<bool> greedy;
  for (const size_t r : d.requests) {
    lls.push_back(results[r].loglikelihood);
    greedy.push_back(results[r].is_greedy);
  }
  const Instance& in = d.instance;
  if (task.kind == TaskKind::kLoglikelihood) {
    o.metrics["perplexity"] = lls[0];
    o.metrics["acc"] = greedy[0] ? 1.0 : 0.0;
  } else {
    std::vector<double> chars, bytes;
    for (const auto& c : in.choices) {
      chars.push_back(double(python_len(c)));
      bytes.push_back(double(c.size()));
    }
    o.metrics["acc"] = argmax(lls) == in.gold ? 1.0 : 0.0;
    o.metrics["acc_norm"] = argmax(lls, chars) == in.gold ? 1.0 : 0.0;
    o.metrics["acc_bytes"] = argmax(lls, bytes) == in.gold ? 1.0 : 0.0;
  }
  if (log) {
    nlohmann::json args = nlohmann::json::array(), ll = nlohmann::json::array(), g = nlohmann::json::array();
    for (size_t r = 0; r < in.num_requests(); ++r) {
      args.push_back({in.context(r), in.continuation(r)});
      ll.push_back(lls[r]);
      g.push_back(bool(greedy[r]));
    }
    o.sample = {{"doc_id", in.doc_index}, {"arguments", args}, {"loglikelihoods", ll}, {"is_greedy", g}};
    if (task.kind != TaskKind::kLoglikelihood) o.sample["target"] = in.gold;
    for (const auto& m : task.metrics) {
      if (m != "perplexity") o.sample[m] = o.metrics[m];
    }
  }
  return o;
}

// Aggregated metrics of one evaluation: name -> value and standard error.
std::map<std::string, MetricValue> aggregate(const Task& task, const std::vector<DocOutcome>& docs,
                                             int64_t bootstrap_iters) {
  std::map<std::string, MetricValue> out;
  for (const auto& m : task.metrics) {
    std::vector<double> xs;
    for (const auto& d : docs) xs.push_back(d.metrics.at(m));
    if (m == "perplexity") {
      out[m] = {perplexity(xs), bootstrap_perplexity_stderr(xs, bootstrap_iters)};
    } else {
      out[m] = mean_metric(xs);
    }
  }
  return out;
}

nlohmann::json task_config(const Task& t, int64_t shots, uint64_t seed) {
  const char* kinds[] = {"multiple_choice", "multiple_choice (multiple inputs)", "loglikelihood"};
  return {{"task", t.name},
          {"output_type", kinds[static_cast<int>(t.kind)]},
          {"eval_file", t.eval_file},
          {"fewshot_file", t.fewshot_file},
          {"num_fewshot", shots},
          {"fewshot_sampler", t.first_n ? "first_n" : "default"},
          {"fewshot_random_seed", seed},
          {"target_delimiter", t.target_delimiter},
          {"fewshot_delimiter", t.fewshot_delimiter},
          {"metric_list", t.metrics}};
}
}  // namespace

std::vector<Task> load_tasks(const std::vector<std::string>& names, const std::string& data_dir) {
  TORCH_CHECK(!names.empty(), "eval: no tasks given");
  std::vector<Task> tasks;
  std::set<std::string> seen;
  for (const auto& name : names) {
    std::vector<Task> loaded;
    if (ends_with(name, ".yaml") || ends_with(name, ".yml")) {
      loaded = {load_yaml_task(name)};
    } else if (is_builtin_task(name)) {
      loaded = load_builtin_task(name, data_dir);
    } else {
      TORCH_CHECK(false, "eval: unknown task \"", name, "\"; did you mean \"", closest_task(name),
                  "\"? (built-in: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande, mmlu, ",
                  "mmlu_<subject>; or a task YAML file)");
    }
    for (auto& t : loaded) {
      TORCH_CHECK(seen.insert(t.name).second, "eval: task \"", t.name, "\" is given twice");
      TORCH_CHECK(!t.eval_docs.empty(), "eval: ", t.name, ": ", t.eval_file, " has no documents");
      tasks.push_back(std::move(t));
    }
  }
  return tasks;
}

nlohmann::json evaluate(models::CausalLM& model, const Tokenizer& tokenizer, const std::vector<Task>& tasks,
                        const EvalOptions& o) {
  TORCH_CHECK(!o.shots.empty() && !o.seeds.empty(), "eval: give at least one shot count and one seed");
  TORCH_CHECK(o.limit != 0, "eval: a limit of 0 documents scores nothing; give a positive limit, or -1 for all");
  // Every (seed, shots, task) evaluation's requests, identical ones (all 0-shot runs of several seeds, the
  // same question in two runs) scored once.
  std::vector<RunPlan> runs;
  std::vector<ScoreRequest> requests;
  std::unordered_map<std::string, size_t> index_of;
  for (const uint64_t seed : o.seeds) {
    for (const int64_t k : o.shots) {
      for (const Task& t : tasks) {
        RunPlan run{seed, k, &t, {}};
        const auto shots = fewshot_examples(t, k, seed, o.limit);
        for (size_t d = 0; d < shots.size(); ++d) {
          DocPlan dp{build_instance(t, t.eval_docs[d], shots[d]), {}};
          for (size_t r = 0; r < dp.instance.num_requests(); ++r) {
            const std::string& ctx = dp.instance.context(r);
            const std::string& cont = dp.instance.continuation(r);
            std::string key = ctx;
            key.push_back('\0');
            key += cont;
            auto [it, inserted] = index_of.emplace(std::move(key), requests.size());
            if (inserted) requests.push_back(LoglikelihoodRequest{ctx, cont});
            dp.requests.push_back(it->second);
          }
          run.docs.push_back(std::move(dp));
        }
        runs.push_back(std::move(run));
      }
    }
  }
  ScoreOptions so = o.score;
  so.describe_request = [&](size_t i) {
    const auto& r = std::get<LoglikelihoodRequest>(requests[i]);
    return fmt::format("eval request {} (context {})", i, json_excerpt(nlohmann::json(r.context), 50));
  };
  int64_t model_tokens = 0;  // this evaluation's own count; a caller's counter gets it added
  so.forwarded_tokens = &model_tokens;
  const auto score_start = std::chrono::steady_clock::now();
  const std::vector<ScoreResult> results = score(model, tokenizer, requests, so);
  const double score_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - score_start).count();
  if (o.score.forwarded_tokens) *o.score.forwarded_tokens += model_tokens;

  // Results per seed, per shot count, in lm-eval's shape.
  nlohmann::json by_seed = nlohmann::json::object();
  for (const RunPlan& run : runs) {
    const Task& t = *run.task;
    std::vector<DocOutcome> outcomes;
    for (const DocPlan& d : run.docs) outcomes.push_back(score_doc(t, d, results, o.log_samples));
    nlohmann::json& shot = by_seed[std::to_string(run.seed)]["shots"][std::to_string(run.shots)];
    nlohmann::json entry = {{"alias", t.groups.empty() ? t.name : " - " + t.name.substr(t.groups.back().size() + 1)}};
    const auto metrics = aggregate(t, outcomes, o.bootstrap_iters);
    for (const auto& m : t.metrics) put_metric(entry, m, metrics.at(m));
    shot["results"][t.name] = entry;
    shot["configs"][t.name] = task_config(t, run.shots, run.seed);
    shot["versions"][t.name] = t.version;
    shot["n-shot"][t.name] = run.shots;
    shot["n-samples"][t.name] = {{"original", t.eval_docs.size()}, {"effective", run.docs.size()}};
    nlohmann::json hib;
    for (const auto& m : t.metrics) hib[m] = m != "perplexity";
    shot["higher_is_better"][t.name] = hib;
    if (o.log_samples) {
      nlohmann::json& samples = shot["samples"][t.name];
      samples = nlohmann::json::array();
      for (auto& oc : outcomes) samples.push_back(std::move(oc.sample));
    }
    // Per-metric values kept for the group, as (value, stderr, size).
    for (const auto& group : t.groups) {
      nlohmann::json& parts = shot["_group_parts"][group];
      for (const auto& m : t.metrics) {
        parts[m].push_back({metrics.at(m).value, metrics.at(m).stderr_value, static_cast<int64_t>(run.docs.size())});
      }
      shot["group_subtasks"][group].push_back(t.name);
    }
  }
  // Groups: size-weighted means with lm-eval's pooled standard error.
  for (auto& [seed, s] : by_seed.items()) {
    for (auto& [k, shot] : s["shots"].items()) {
      if (!shot.contains("_group_parts")) continue;
      for (auto& [group, parts] : shot["_group_parts"].items()) {
        nlohmann::json entry = {
            {"alias", group == "mmlu" || group.rfind("mmlu_", 0) != 0 ? group : " - " + group.substr(5)}};
        for (auto& [metric, list] : parts.items()) {
          std::vector<MetricValue> values;
          std::vector<int64_t> sizes;
          for (const auto& p : list) {
            values.push_back({p[0].get<double>(), p[1].is_null() ? std::nan("") : p[1].get<double>()});
            sizes.push_back(p[2].get<int64_t>());
          }
          put_metric(entry, metric, pooled(values, sizes));
        }
        shot["groups"][group] = entry;
        shot["results"][group] = entry;
        shot["versions"][group] = 2;
        shot["n-shot"][group] = std::stoll(k);
      }
      shot.erase("_group_parts");
    }
  }
  nlohmann::json out;
  out["shots"] = by_seed[std::to_string(o.seeds.front())]["shots"];
  if (o.seeds.size() > 1) out["seeds"] = by_seed;
  out["n_requests"] = requests.size();
  out["n_model_tokens"] = model_tokens;  // input tokens the model ran (padding included)
  out["score_s"] = score_s;              // seconds in the loglikelihood engine
  return out;
}

std::string markdown_table(const nlohmann::json& shots) {
  std::string s = "|Tasks|Version|n-shot|Metric|Value|±|Stderr|\n|---|---:|---:|---|---:|---|---:|\n";
  for (const auto& [k, shot] : shots.items()) {
    for (const auto& [task, r] : shot["results"].items()) {
      if (shot.contains("groups") && shot["groups"].contains(task)) continue;  // groups after their tasks
      bool first = true;
      for (const auto& [key, v] : r.items()) {
        if (key == "alias" || key.find("_stderr,") != std::string::npos) continue;
        const std::string metric = key.substr(0, key.find(','));
        const auto& se = r[metric + "_stderr,none"];
        s += fmt::format("|{}|{}|{}|{}|{:.4f}|±|{}|\n", first ? r["alias"].get<std::string>() : "",
                         first ? shot["versions"][task].dump() : "", first ? k : "", metric, v.get<double>(),
                         se.is_string() ? se.get<std::string>() : fmt::format("{:.4f}", se.get<double>()));
        first = false;
      }
    }
    if (!shot.contains("groups")) continue;
    for (const auto& [group, r] : shot["groups"].items()) {
      for (const auto& [key, v] : r.items()) {
        if (key == "alias" || key.find("_stderr,") != std::string::npos) continue;
        const std::string metric = key.substr(0, key.find(','));
        const auto& se = r[metric + "_stderr,none"];
        s += fmt::format("|{}|{}|{}|{}|{:.4f}|±|{}|\n", group, 2, k, metric, v.get<double>(),
                         se.is_string() ? se.get<std::string>() : fmt::format("{:.4f}", se.get<double>()));
      }
    }
  }
  return s;
}

}  // namespace mft::eval
