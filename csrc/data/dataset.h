#pragma once
// Instruction and causal-LM datasets read from local files into token ids and per-token loss labels.
// Formats (formats.md section 6): Alpaca records, ShareGPT / messages conversations rendered with a
// chat template, and plain text. Errors are std::runtime_error naming the file and line.
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mft::data {

// Label of a token that is not trained (PyTorch cross_entropy's default ignore_index).
constexpr int64_t kIgnoreIndex = -100;

// One training document. `labels` is aligned with `ids` (NOT shifted; BatchStream shifts):
// labels[i] = ids[i] where token i is a target, kIgnoreIndex where it is not (the prompt when
// response_only_loss). Responses end with the tokenizer's EOS, which is trained.
struct Example {
  std::vector<int64_t> ids;
  std::vector<int64_t> labels;
};

struct DataOptions {
  std::string format = "alpaca";         // alpaca | sharegpt (also reads {"messages": ...}) | text
  int64_t max_length = 512;              // examples are cut to this many tokens; text is chunked to it
  bool packing = true;                   // not used by the loader; read by whoever builds the BatchStream
  bool response_only_loss = true;        // train only responses / assistant turns
  std::string template_name = "alpaca";  // alpaca | chatml | zephyr | none
  bool skip_bad_records = false;         // count bad records instead of failing
};

struct LoadReport {
  int64_t records = 0;    // good records read (text: documents)
  int64_t skipped = 0;    // bad records skipped (skip_bad_records)
  int64_t truncated = 0;  // examples cut to max_length
  int64_t dropped = 0;    // examples left out: nothing to train in their first max_length tokens
};

// Reads `path`:
//  alpaca:   a JSON array or JSONL of {"instruction", "input" (optional, may be ""), "output"} strings.
//            Prompt = render_prompt(template_name, instruction, input); response = output (plus the
//            template's end-of-turn text) + EOS.
//  sharegpt: a JSON array or JSONL of {"conversations": [{"from": "system"|"human"|"gpt", "value",
//            "weight" (optional; 0 = do not train this turn)}]} or {"messages": [{"role":
//            "system"|"user"|"assistant", "content"}]}, rendered with template_name.
//  text:     a file of documents separated by blank lines, or a folder whose *.txt files are one
//            document each (name order). Each document + EOS is cut into windows of max_length tokens
//            overlapping by one token, so every token but a document's first is a target exactly once.
// Truncation keeps the first max_length tokens. No BOS is added (Mamba / GPT-NeoX fine-tuning has none).
std::vector<Example> load_examples(const std::string& path, const Tokenizer& tok, const DataOptions& opt,
                                   LoadReport* report = nullptr);

// The prompt text for one instruction in a template, ending where the response starts (what
// `mamba-ft generate --template` applies and what the loader uses for Alpaca records):
//  alpaca: formats.md 6.1 verbatim, the with-input template when input is non-empty;
//  chatml: "<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n";
//  zephyr: "<|user|>\n{u}<|endoftext|>\n<|assistant|>\n" (mamba-chat; GPT-NeoX EOS);
//  none:   "{u}\n";
// where u = instruction, or instruction + "\n\n" + input when input is non-empty.
std::string render_prompt(const std::string& template_name, const std::string& instruction, const std::string& input);

// Deterministic train/validation split: round(n * val_fraction) examples (at least 1 when the fraction
// is positive, at most n - 1) chosen by a seeded shuffle go to validation; both keep file order.
// (A validation set from its own file is just another load_examples call.)
std::pair<std::vector<Example>, std::vector<Example>> split(std::vector<Example> all, double val_fraction,
                                                            uint64_t seed);

}  // namespace mft::data
