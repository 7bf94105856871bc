#include "eval/builtin_tasks.h"

#include "tokenizer/utf8.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <filesystem>
#include <map>

namespace mft::eval {
namespace {
namespace fs = std::filesystem;

struct Source {
  std::string hf_path, hf_name;  // where the user exports the split from
};

const std::map<std::string, Source>& sources() {
  static const std::map<std::string, Source> s = {{"lambada_openai", {"EleutherAI/lambada_openai", "default"}},
                                                  {"hellaswag", {"Rowan/hellaswag", ""}},
                                                  {"piqa", {"baber/piqa", ""}},
                                                  {"arc_easy", {"allenai/ai2_arc", "ARC-Easy"}},
                                                  {"arc_challenge", {"allenai/ai2_arc", "ARC-Challenge"}},
                                                  {"winogrande", {"allenai/winogrande", "winogrande_xl"}},
                                                  {"mmlu", {"cais/mmlu", "all"}}};
  return s;
}

// DATA_DIR/<folder>/<split>.jsonl, read; a missing file says how to export it.
std::vector<Doc> split_docs(const std::string& data_dir, const std::string& folder, const std::string& split) {
  const fs::path path = fs::path(data_dir) / folder / (split + ".jsonl");
  if (!fs::exists(path)) {
    const Source& s = sources().at(folder);
    const std::string name = s.hf_name.empty() ? "" : ", \"" + s.hf_name + "\"";
    TORCH_CHECK(false, folder, ": ", path.string(), " is missing; export it with: python -c 'import datasets; ",
                "datasets.load_dataset(\"", s.hf_path, "\"", name, ", split=\"", split, "\").to_json(\"", path.string(),
                "\")'");
  }
  return read_docs(path.string());
}

// Python's str.replace(old, new): non-overlapping, left to right.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  for (size_t hit; (hit = s.find(from, i)) != std::string::npos; i = hit + from.size()) {
    out.append(s, i, hit - i);
    out += to;
  }
  out.append(s, i, std::string::npos);
  return out;
}

// re.sub(r"\[.*?\]", "", s): every shortest "[...]" that does not cross a newline.
std::string remove_brackets(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '[') {
      const size_t close = s.find_first_of("]\n", i + 1);
      if (close != std::string::npos && s[close] == ']') {
        i = close + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// lm_eval/tasks/hellaswag/utils.py preprocess.
std::string hellaswag_preprocess(const std::string& text) {
  std::string t = tok::python_strip(text);
  t = replace_all(t, " [title]", ". ");
  t = remove_brackets(t);
  return replace_all(t, "  ", " ");
}

// Python's text.split(' ') pieces (empty pieces kept).
std::vector<std::string> split_space(const std::string& s) {
  std::vector<std::string> parts;
  size_t i = 0;
  for (size_t hit; (hit = s.find(' ', i)) != std::string::npos; i = hit + 1) parts.push_back(s.substr(i, hit - i));
  parts.push_back(s.substr(i));
  return parts;
}

Task base(const std::string& name, TaskKind kind, std::vector<Doc> eval, std::vector<Doc> fewshot,
          std::vector<std::string> metrics) {
  Task t;
  t.name = name;
  t.kind = kind;
  t.eval_docs = std::move(eval);
  t.fewshot_docs = std::move(fewshot);
  t.eval_file = t.eval_docs.empty() ? "" : t.eval_docs.front().file;
  t.fewshot_file = t.fewshot_docs.empty() ? "" : t.fewshot_docs.front().file;
  t.metrics = std::move(metrics);
  return t;
}

Task lambada(const std::string& dir) {
  std::vector<Doc> test = split_docs(dir, "lambada_openai", "test");
  // No few-shot split: lm-eval falls back to the test docs and, its test split being set, does not remove
  // the eval doc from its own candidates: a document can be its own example. We do the same.
  Task t = base("lambada_openai", TaskKind::kLoglikelihood, test, test, {"perplexity", "acc"});
  t.fewshot_file = t.eval_file;
  t.doc_to_text = [](const Doc& d) {
    auto words = split_space(string_field(d, "text"));
    words.pop_back();
    std::string s;
    for (size_t i = 0; i < words.size(); ++i) s += (i ? " " : "") + words[i];
    return s;
  };
  t.doc_to_target = [](const Doc& d) { return " " + split_space(string_field(d, "text")).back(); };
  return t;
}

Task hellaswag(const std::string& dir) {
  std::vector<Doc> eval = split_docs(dir, "hellaswag", "validation");  // the eval split first: its error first
  Task t = base("hellaswag", TaskKind::kMultipleChoice, std::move(eval), split_docs(dir, "hellaswag", "train"),
                {"acc", "acc_norm", "acc_bytes"});
  t.doc_to_text = [](const Doc& d) {
    const std::string ctx = string_field(d, "ctx_a") + " " + tok::python_capitalize(string_field(d, "ctx_b"));
    return hellaswag_preprocess(string_field(d, "activity_label") + ": " + ctx);
  };
  t.doc_to_choice = [](const Doc& d) {
    std::vector<std::string> c = string_list_field(d, "endings");
    for (auto& e : c) e = hellaswag_preprocess(e);
    return c;
  };
  t.gold_index = [](const Doc& d) { return int_field(d, "label"); };
  t.fewshot_excludes_eval_doc = true;  // no test split: lm-eval draws k + 1 and drops the doc
  return t;
}

Task piqa(const std::string& dir) {
  std::vector<Doc> eval = split_docs(dir, "piqa", "validation");  // the eval split first: its error first
  Task t = base("piqa", TaskKind::kMultipleChoice, std::move(eval), split_docs(dir, "piqa", "train"),
                {"acc", "acc_norm", "acc_bytes"});
  t.doc_to_text = [](const Doc& d) { return "Question: " + string_field(d, "goal") + "\nAnswer:"; };
  t.doc_to_choice = [](const Doc& d) {
    return std::vector<std::string>{string_field(d, "sol1"), string_field(d, "sol2")};
  };
  t.gold_index = [](const Doc& d) { return int_field(d, "label"); };
  t.fewshot_excludes_eval_doc = true;  // no test split: lm-eval draws k + 1 and drops the doc
  return t;
}

Task arc(const std::string& dir, const std::string& name) {
  std::vector<Doc> eval = split_docs(dir, name, "test");  // the eval split first: its error first
  Task t = base(name, TaskKind::kMultipleChoice, std::move(eval), split_docs(dir, name, "train"),
                {"acc", "acc_norm", "acc_bytes"});
  t.doc_to_text = [](const Doc& d) { return "Question: " + string_field(d, "question") + "\nAnswer:"; };
  auto choices_field = [](const Doc& d, const char* key) {
    const nlohmann::json& c = field(d, "choices");
    TORCH_CHECK(c.is_object() && c.contains(key) && c[key].is_array(), d.where(), ": field \"choices\" must be ",
                "{\"text\": [...], \"label\": [...]}");
    std::vector<std::string> out;
    for (const auto& v : c[key]) {
      TORCH_CHECK(v.is_string(), d.where(), ": choices.", key, " must hold strings");
      out.push_back(v.get<std::string>());
    }
    return out;
  };
  t.doc_to_choice = [choices_field](const Doc& d) { return choices_field(d, "text"); };
  t.gold_index = [choices_field](const Doc& d) {
    const std::vector<std::string> labels = choices_field(d, "label");
    const std::string key = string_field(d, "answerKey");
    const auto it = std::find(labels.begin(), labels.end(), key);
    TORCH_CHECK(it != labels.end(), d.where(), ": answerKey \"", key, "\" is not one of the choice labels");
    return static_cast<int64_t>(it - labels.begin());
  };
  return t;
}

Task winogrande(const std::string& dir) {
  std::vector<Doc> eval = split_docs(dir, "winogrande", "validation");  // the eval split first: its error first
  Task t =
      base("winogrande", TaskKind::kMultipleInput, std::move(eval), split_docs(dir, "winogrande", "train"), {"acc"});
  auto blank = [](const Doc& d) {
    const std::string s = string_field(d, "sentence");
    const size_t idx = s.find('_');
    TORCH_CHECK(idx != std::string::npos, d.where(), ": the sentence has no blank \"_\"");
    return std::make_pair(s, idx);
  };
  t.doc_to_choice = [blank](const Doc& d) {
    const auto [s, idx] = blank(d);
    return std::vector<std::string>{s.substr(0, idx) + string_field(d, "option1"),
                                    s.substr(0, idx) + string_field(d, "option2")};
  };
  t.doc_to_target = [blank](const Doc& d) {
    const auto [s, idx] = blank(d);
    return tok::python_strip(s.substr(idx + 1));
  };
  t.gold_index = [](const Doc& d) {
    const std::string a = string_field(d, "answer");
    TORCH_CHECK(a == "1" || a == "2", d.where(), ": answer must be \"1\" or \"2\"; got \"", a, "\"");
    return static_cast<int64_t>(a == "2");
  };
  t.fewshot_excludes_eval_doc = true;  // no test split: lm-eval draws k + 1 and drops the doc
  return t;
}

std::vector<Task> mmlu(const std::string& dir, const std::string& only_subject) {
  const std::vector<Doc> test = split_docs(dir, "mmlu", "test"), dev = split_docs(dir, "mmlu", "dev");
  std::map<std::string, std::vector<Doc>> test_of, dev_of;
  for (const Doc& d : test) test_of[string_field(d, "subject")].push_back(d);
  for (const Doc& d : dev) dev_of[string_field(d, "subject")].push_back(d);
  std::vector<Task> tasks;
  for (const std::string& subject : mmlu_subjects()) {
    if (!only_subject.empty() && subject != only_subject) continue;
    if (!test_of.count(subject)) {
      TORCH_CHECK(only_subject.empty(), "mmlu_", subject, ": ", test.empty() ? dir : test.front().file,
                  " has no rows with subject \"", subject, "\"");
      continue;
    }
    // Documents keep their index within the subject, as lm-eval's per-subject datasets number them.
    std::vector<Doc> eval = test_of[subject], shots = dev_of[subject];
    for (size_t i = 0; i < eval.size(); ++i) eval[i].index = static_cast<int64_t>(i);
    for (size_t i = 0; i < shots.size(); ++i) shots[i].index = static_cast<int64_t>(i);
    Task t = base("mmlu_" + subject, TaskKind::kMultipleChoice, eval, shots, {"acc", "acc_norm", "acc_bytes"});
    t.groups = {"mmlu_" + mmlu_category(subject), "mmlu"};
    t.first_n = true;
    t.fewshot_file = dev.empty() ? "" : dev.front().file;
    std::string spaced = subject;
    std::replace(spaced.begin(), spaced.end(), '_', ' ');
    t.description = [spaced](const Doc&) {
      return "The following are multiple choice questions (with answers) about " + spaced + ".\n\n";
    };
    t.doc_to_text = [](const Doc& d) {
      const std::vector<std::string> c = string_list_field(d, "choices");
      TORCH_CHECK(c.size() == 4, d.where(), ": mmlu rows have 4 choices; got ", c.size());
      return tok::python_strip(string_field(d, "question")) + "\nA. " + c[0] + "\nB. " + c[1] + "\nC. " + c[2] +
             "\nD. " + c[3] + "\nAnswer:";
    };
    t.doc_to_choice = [](const Doc&) { return std::vector<std::string>{"A", "B", "C", "D"}; };
    t.gold_index = [](const Doc& d) { return int_field(d, "answer"); };
    tasks.push_back(std::move(t));
  }
  TORCH_CHECK(!tasks.empty(), "mmlu: ", test.empty() ? dir : test.front().file, " has no rows of a known subject");
  return tasks;
}
}  // namespace

const std::vector<std::string>& builtin_task_names() {
  static const std::vector<std::string> names = {"lambada_openai", "hellaswag",  "piqa", "arc_easy",
                                                 "arc_challenge",  "winogrande", "mmlu"};
  return names;
}

const std::vector<std::string>& mmlu_subjects() {
  static const std::vector<std::string> s = {"abstract_algebra",
                                             "anatomy",
                                             "astronomy",
                                             "business_ethics",
                                             "clinical_knowledge",
                                             "college_biology",
                                             "college_chemistry",
                                             "college_computer_science",
                                             "college_mathematics",
                                             "college_medicine",
                                             "college_physics",
                                             "computer_security",
                                             "conceptual_physics",
                                             "econometrics",
                                             "electrical_engineering",
                                             "elementary_mathematics",
                                             "formal_logic",
                                             "global_facts",
                                             "high_school_biology",
                                             "high_school_chemistry",
                                             "high_school_computer_science",
                                             "high_school_european_history",
                                             "high_school_geography",
                                             "high_school_government_and_politics",
                                             "high_school_macroeconomics",
                                             "high_school_mathematics",
                                             "high_school_microeconomics",
                                             "high_school_physics",
                                             "high_school_psychology",
                                             "high_school_statistics",
                                             "high_school_us_history",
                                             "high_school_world_history",
                                             "human_aging",
                                             "human_sexuality",
                                             "international_law",
                                             "jurisprudence",
                                             "logical_fallacies",
                                             "machine_learning",
                                             "management",
                                             "marketing",
                                             "medical_genetics",
                                             "miscellaneous",
                                             "moral_disputes",
                                             "moral_scenarios",
                                             "nutrition",
                                             "philosophy",
                                             "prehistory",
                                             "professional_accounting",
                                             "professional_law",
                                             "professional_medicine",
                                             "professional_psychology",
                                             "public_relations",
                                             "security_studies",
                                             "sociology",
                                             "us_foreign_policy",
                                             "virology",
                                             "world_religions"};
  return s;
}

std::string mmlu_category(const std::string& subject) {
  static const std::map<std::string, std::vector<std::string>> categories = {
      {"stem",
       {"abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
        "college_mathematics", "college_physics", "computer_security", "conceptual_physics", "electrical_engineering",
        "elementary_mathematics", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
        "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning"}},
      {"humanities",
       {"formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
        "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios", "philosophy",
        "prehistory", "professional_law", "world_religions"}},
      {"social_sciences",
       {"econometrics", "high_school_geography", "high_school_government_and_politics", "high_school_macroeconomics",
        "high_school_microeconomics", "high_school_psychology", "human_sexuality", "professional_psychology",
        "public_relations", "security_studies", "sociology", "us_foreign_policy"}},
      {"other",
       {"business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging", "management",
        "marketing", "medical_genetics", "miscellaneous", "nutrition", "professional_accounting",
        "professional_medicine", "virology"}}};
  for (const auto& [category, subjects] : categories) {
    if (std::find(subjects.begin(), subjects.end(), subject) != subjects.end()) return category;
  }
  TORCH_CHECK(false, "mmlu: unknown subject \"", subject, "\"");
}

bool is_builtin_task(const std::string& name) {
  const auto& n = builtin_task_names();
  if (std::find(n.begin(), n.end(), name) != n.end()) return true;
  if (name.rfind("mmlu_", 0) != 0) return false;
  const auto& s = mmlu_subjects();
  return std::find(s.begin(), s.end(), name.substr(5)) != s.end();
}

std::vector<Task> load_builtin_task(const std::string& name, const std::string& dir) {
  if (name == "lambada_openai") return {lambada(dir)};
  if (name == "hellaswag") return {hellaswag(dir)};
  if (name == "piqa") return {piqa(dir)};
  if (name == "arc_easy" || name == "arc_challenge") return {arc(dir, name)};
  if (name == "winogrande") return {winogrande(dir)};
  if (name == "mmlu") return mmlu(dir, "");
  TORCH_CHECK(is_builtin_task(name), "unknown task \"", name, "\"");
  return mmlu(dir, name.substr(5));
}

}  // namespace mft::eval
