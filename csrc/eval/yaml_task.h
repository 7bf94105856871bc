#pragma once
// User-defined tasks from a small YAML file, in lm-eval's own key names (a subset):
//   task: capitals                           # name in the results
//   data_file: data/capitals/test.jsonl      # the documents scored (path relative to the YAML file)
//   fewshot_file: data/capitals/train.jsonl  # few-shot pool (default: data_file, each doc removed from its own)
//   output_type: multiple_choice             # or loglikelihood
//   description: "Capitals of countries.\n\n"
//   doc_to_text: "Q: What is the capital of {{country}}?\nA:"
//   doc_to_choice: "{{options}}"             # a list field, or a list of templates ["{{a}}", "{{b}}"]
//   doc_to_target: "{{label}}"               # multiple choice: an index (or the text of a choice);
//                                            # loglikelihood: the continuation text
//   target_delimiter: " "                    # defaults as lm-eval
//   fewshot_delimiter: "\n\n"
//   fewshot_sampler: default                 # or first_n
//   metric_list: [acc, acc_norm]             # default: acc, acc_norm, acc_bytes (perplexity, acc)
// Templates substitute {{field}}, {{field.sub}} and {{field[i]}} (strings as they are, numbers as JSON).
// Unknown keys and missing fields are errors naming the file and line.
#include "eval/task.h"

#include <string>

namespace mft::eval {

Task load_yaml_task(const std::string& path);

// Renders a {{...}} template against a document (exposed for tests).
std::string render_template(const std::string& tmpl, const Doc& doc);

}  // namespace mft::eval
