#include "eval/yaml_task.h"

#include "recipe/yaml_load.h"

#include <c10/util/Exception.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

namespace mft::eval {
namespace {
namespace fs = std::filesystem;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// The value an expression (field, field.sub, field[i], combinations) names in the document.
const nlohmann::json& lookup(const std::string& expr, const Doc& doc) {
  const nlohmann::json* v = &doc.json;
  size_t i = 0;
  auto fail = [&](const std::string& why) { TORCH_CHECK(false, doc.where(), ": template {{", expr, "}}: ", why); };
  while (i < expr.size()) {
    if (expr[i] == '.') ++i;
    if (expr[i] == '[') {
      const size_t close = expr.find(']', i);
      if (close == std::string::npos) fail("unclosed [");
      const std::string idx = trim(expr.substr(i + 1, close - i - 1));
      if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) fail("index must be a number");
      const size_t k = std::stoul(idx);
      if (!v->is_array() || k >= v->size()) fail("index " + idx + " is out of range");
      v = &(*v)[k];
      i = close + 1;
      continue;
    }
    const size_t end = expr.find_first_of(".[", i);
    const std::string key = expr.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (!v->is_object() || !v->contains(key)) fail("field \"" + key + "\" is missing");
    v = &(*v)[key];
    i = end == std::string::npos ? expr.size() : end;
  }
  return *v;
}

std::string as_text(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// A template that is exactly one {{expr}}, or empty.
std::string single_expression(const std::string& tmpl) {
  const std::string t = trim(tmpl);
  if (t.size() >= 4 && t.rfind("{{", 0) == 0 && t.compare(t.size() - 2, 2, "}}") == 0 &&
      t.find("{{", 2) == std::string::npos) {
    return trim(t.substr(2, t.size() - 4));
  }
  return "";
}

std::string key_where(const std::string& path, const YAML::Node& n) {
  return path + ":" + std::to_string(n.Mark().line + 1);
}
}  // namespace

std::string render_template(const std::string& tmpl, const Doc& doc) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find("{{", i);
    if (open == std::string::npos) {
      out.append(tmpl, i, std::string::npos);
      break;
    }
    out.append(tmpl, i, open - i);
    const size_t close = tmpl.find("}}", open + 2);
    TORCH_CHECK(close != std::string::npos, doc.where(), ": template \"", tmpl, "\" has an unclosed {{");
    out += as_text(lookup(trim(tmpl.substr(open + 2, close - open - 2)), doc));
    i = close + 2;
  }
  return out;
}

Task load_yaml_task(const std::string& path) {
  TORCH_CHECK(fs::exists(path), path, ": no such task file");
  YAML::Node root;
  try {
    root = recipe::load_yaml_file(path);
  } catch (const std::runtime_error& e) {
    TORCH_CHECK(false, e.what());
  }
  TORCH_CHECK(root.IsMap(), path, ": a task file is a YAML mapping");
  static const std::set<std::string> known = {
      "task",          "data_file",     "fewshot_file",     "output_type",       "description",     "doc_to_text",
      "doc_to_choice", "doc_to_target", "target_delimiter", "fewshot_delimiter", "fewshot_sampler", "metric_list",
      "version"};
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    TORCH_CHECK(known.count(key), key_where(path, kv.first), ": unknown key \"", key, "\" (known: task, data_file, ",
                "fewshot_file, output_type, description, doc_to_text, doc_to_choice, doc_to_target, target_delimiter, ",
                "fewshot_delimiter, fewshot_sampler, metric_list, version)");
  }
  auto str = [&](const char* key, const std::string& fallback, bool required) {
    const YAML::Node n = root[key];
    if (!n) {
      TORCH_CHECK(!required, path, ": \"", key, "\" is required");
      return fallback;
    }
    TORCH_CHECK(n.IsScalar(), key_where(path, n), ": \"", key, "\" must be a string");
    return n.as<std::string>();
  };
  const fs::path base = fs::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (base / p).string(); };

  Task t;
  t.name = str("task", "", true);
  const std::string type = str("output_type", "multiple_choice", false);
  TORCH_CHECK(type == "multiple_choice" || type == "loglikelihood", path, ": output_type must be multiple_choice or ",
              "loglikelihood; got \"", type, "\"");
  t.kind = type == "loglikelihood" ? TaskKind::kLoglikelihood : TaskKind::kMultipleChoice;
  t.eval_file = resolve(str("data_file", "", true));
  t.eval_docs = read_docs(t.eval_file);
  const std::string fewshot = str("fewshot_file", "", false);
  t.fewshot_file = fewshot.empty() ? t.eval_file : resolve(fewshot);
  t.fewshot_docs = fewshot.empty() ? t.eval_docs : read_docs(t.fewshot_file);
  t.fewshot_excludes_eval_doc = fewshot.empty();
  const std::string sampler = str("fewshot_sampler", "default", false);
  TORCH_CHECK(sampler == "default" || sampler == "first_n", path, ": fewshot_sampler must be default or first_n");
  t.first_n = sampler == "first_n";
  t.target_delimiter = str("target_delimiter", " ", false);
  t.fewshot_delimiter = str("fewshot_delimiter", "\n\n", false);
  t.version = str("version", "1.0", false);
  const std::string description = str("description", "", false);
  if (!description.empty()) t.description = [description](const Doc& d) { return render_template(description, d); };
  const std::string text = str("doc_to_text", "", true), target = str("doc_to_target", "", true);
  t.doc_to_text = [text](const Doc& d) { return render_template(text, d); };
  if (t.kind == TaskKind::kLoglikelihood) {
    t.doc_to_target = [target](const Doc& d) { return render_template(target, d); };
    t.metrics = {"perplexity", "acc"};
  } else {
    const YAML::Node choice = root["doc_to_choice"];
    TORCH_CHECK(choice, path, ": multiple_choice needs doc_to_choice");
    if (choice.IsSequence()) {
      std::vector<std::string> templates;
      for (const auto& c : choice) templates.push_back(c.as<std::string>());
      t.doc_to_choice = [templates](const Doc& d) {
        std::vector<std::string> out;
        for (const auto& c : templates) out.push_back(render_template(c, d));
        return out;
      };
    } else {
      const std::string expr = single_expression(choice.as<std::string>());
      TORCH_CHECK(!expr.empty(), key_where(path, choice), ": doc_to_choice must be \"{{list_field}}\" or a list of ",
                  "templates");
      t.doc_to_choice = [expr](const Doc& d) {
        const nlohmann::json& v = lookup(expr, d);
        TORCH_CHECK(v.is_array(), d.where(), ": {{", expr, "}} must be a list of choices");
        std::vector<std::string> out;
        for (const auto& e : v) out.push_back(as_text(e));
        return out;
      };
    }
    auto choices = t.doc_to_choice;
    t.gold_index = [target, choices](const Doc& d) -> int64_t {
      const std::string v = render_template(target, d);
      if (!v.empty() && v.size() < 10 && v.find_first_not_of("0123456789") == std::string::npos) return std::stoll(v);
      const std::vector<std::string> c = choices(d);
      for (size_t i = 0; i < c.size(); ++i) {
        if (c[i] == v) return static_cast<int64_t>(i);
      }
      TORCH_CHECK(false, d.where(), ": doc_to_target gave \"", v, "\", neither an index nor one of the choices");
    };
    t.metrics = {"acc", "acc_norm", "acc_bytes"};
  }
  if (const YAML::Node m = root["metric_list"]) {
    TORCH_CHECK(m.IsSequence(), key_where(path, m), ": metric_list must be a list");
    std::set<std::string> allowed = t.kind == TaskKind::kLoglikelihood
                                        ? std::set<std::string>{"perplexity", "acc"}
                                        : std::set<std::string>{"acc", "acc_norm", "acc_bytes"};
    t.metrics.clear();
    for (const auto& e : m) {
      const std::string name = e.IsMap() && e["metric"] ? e["metric"].as<std::string>() : e.as<std::string>();
      TORCH_CHECK(allowed.count(name), key_where(path, e), ": metric \"", name, "\" is not available for ", type);
      t.metrics.push_back(name);
    }
  }
  return t;
}

}  // namespace mft::eval
