#include "eval/task.h"

#include "eval/python_random.h"

#include <c10/util/Exception.h>

namespace mft::eval {

std::vector<std::vector<const Doc*>> fewshot_examples(const Task& task, int64_t shots, uint64_t seed, int64_t limit) {
  TORCH_CHECK(shots >= 0, task.name, ": the number of few-shot examples must be >= 0; got ", shots);
  const auto n_docs = static_cast<int64_t>(task.eval_docs.size());
  const int64_t count = limit >= 0 ? std::min(limit, n_docs) : n_docs;
  std::vector<std::vector<const Doc*>> out(static_cast<size_t>(count));
  if (shots == 0) return out;
  const auto pool_size = static_cast<int64_t>(task.fewshot_docs.size());
  const int64_t needed = shots + (task.fewshot_excludes_eval_doc ? 1 : 0);
  TORCH_CHECK(pool_size >= needed, task.name, ": ", shots, "-shot evaluation needs ", needed, " few-shot examples but ",
              task.fewshot_file, " has ", pool_size);
  PythonRandom rnd(seed);
  for (int64_t d = 0; d < count; ++d) {
    const Doc& doc = task.eval_docs[static_cast<size_t>(d)];
    std::vector<const Doc*>& shots_of = out[static_cast<size_t>(d)];
    if (task.first_n) {  // FirstNSampler: the pool's first k, in order
      for (int64_t i = 0; i < shots; ++i) shots_of.push_back(&task.fewshot_docs[static_cast<size_t>(i)]);
      continue;
    }
    if (!task.fewshot_excludes_eval_doc) {
      for (const int64_t i : rnd.sample(pool_size, shots))
        shots_of.push_back(&task.fewshot_docs[static_cast<size_t>(i)]);
      continue;
    }
    // k + 1 drawn, every copy of the eval doc removed, the first k kept; when that leaves too few (the doc
    // was drawn and the pool holds it), k drawn again from the pool without it.
    for (const int64_t i : rnd.sample(pool_size, shots + 1)) {
      const Doc& c = task.fewshot_docs[static_cast<size_t>(i)];
      if (c.json != doc.json && static_cast<int64_t>(shots_of.size()) < shots) shots_of.push_back(&c);
    }
    if (static_cast<int64_t>(shots_of.size()) < shots) {
      std::vector<const Doc*> pool;
      for (const Doc& c : task.fewshot_docs) {
        if (c.json != doc.json) pool.push_back(&c);
      }
      TORCH_CHECK(static_cast<int64_t>(pool.size()) >= shots, task.name, ": ", doc.where(), " has only ", pool.size(),
                  " other documents to draw ", shots, " examples from");
      shots_of.clear();
      for (const int64_t i : rnd.sample(static_cast<int64_t>(pool.size()), shots))
        shots_of.push_back(pool[static_cast<size_t>(i)]);
    }
  }
  return out;
}

namespace {
// Gold index and choices of a multiple-choice or multiple-input doc, checked.
int64_t checked_gold(const Task& task, const Doc& doc, const std::vector<std::string>& choices) {
  TORCH_CHECK(!choices.empty(), task.name, ": ", doc.where(), ": the document has no choices");
  const int64_t gold = task.gold_index(doc);
  TORCH_CHECK(gold >= 0 && gold < static_cast<int64_t>(choices.size()), task.name, ": ", doc.where(),
              ": the gold answer index ", gold, " is out of range for ", choices.size(), " choices");
  return gold;
}

// One solved example: question + target delimiter + answer + few-shot delimiter.
std::string shot_text(const Task& task, const Doc& shot) {
  std::string question, answer;
  switch (task.kind) {
    case TaskKind::kMultipleChoice: {
      const std::vector<std::string> choices = task.doc_to_choice(shot);
      question = task.doc_to_text(shot);
      answer = choices[static_cast<size_t>(checked_gold(task, shot, choices))];
      break;
    }
    case TaskKind::kMultipleInput: {
      const std::vector<std::string> contexts = task.doc_to_choice(shot);
      question = contexts[static_cast<size_t>(checked_gold(task, shot, contexts))];
      answer = task.doc_to_target(shot);
      break;
    }
    case TaskKind::kLoglikelihood:
      question = task.doc_to_text(shot);
      answer = task.doc_to_target(shot);  // lm-eval joins " " + " word": two spaces for lambada, as it does
      break;
  }
  // build_qa_turn: a string answer that is empty counts as no answer (the question alone, no delimiters);
  // an index always does (even to an empty choice).
  if (answer.empty() && task.kind != TaskKind::kMultipleChoice) return question;
  return question + task.target_delimiter + answer + task.fewshot_delimiter;
}
}  // namespace

Instance build_instance(const Task& task, const Doc& doc, const std::vector<const Doc*>& shots) {
  std::string prefix = task.description ? task.description(doc) : std::string();
  for (const Doc* s : shots) prefix += shot_text(task, *s);
  Instance in;
  in.doc_index = doc.index;
  switch (task.kind) {
    case TaskKind::kMultipleChoice: {
      in.choices = task.doc_to_choice(doc);
      in.gold = checked_gold(task, doc, in.choices);
      in.contexts = {prefix + task.doc_to_text(doc)};
      for (const auto& c : in.choices) in.continuations.push_back(task.target_delimiter + c);
      break;
    }
    case TaskKind::kMultipleInput: {
      const std::vector<std::string> options = task.doc_to_choice(doc);
      in.gold = checked_gold(task, doc, options);
      for (const auto& o : options) in.contexts.push_back(prefix + o);
      in.choices = options;
      in.continuations = {task.target_delimiter + task.doc_to_target(doc)};
      break;
    }
    case TaskKind::kLoglikelihood: {
      in.contexts = {prefix + task.doc_to_text(doc)};
      in.continuations = {task.doc_to_target(doc)};
      break;
    }
  }
  return in;
}

}  // namespace mft::eval
