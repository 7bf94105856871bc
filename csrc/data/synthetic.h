#pragma once
// The quickstart's training data, made here so that nothing has to be downloaded and its licence is
// ours: facts about made-up countries, string transformations, arithmetic and copy/recall, as a plain
// text corpus and as Alpaca instructions whose answers agree with the corpus.
#include <cstdint>
#include <string>

namespace mft::data {

// Target size of corpus.txt: big enough for a small model to learn the facts in a few minutes of CPU
// training, small enough to tokenise at once.
constexpr size_t kQuickstartCorpusBytes = 400'000;
// Records in instruct.jsonl.
constexpr int64_t kQuickstartInstructions = 2000;
// Documents per split (test, train) of each few-shot task in icl/.
constexpr int64_t kQuickstartIclDocs = 60;

// Writes dir/corpus.txt (paragraphs separated by blank lines; `text` format), dir/instruct.jsonl
// (`alpaca` format) and the few-shot tasks dir/icl/{capitals,arithmetic,reverse,recall}.yaml with their
// test.jsonl / train.jsonl (task YAML of eval/yaml_task.h: `mamba-ft eval --tasks dir/icl/capitals.yaml`),
// creating dir. The same seed gives the same bytes on every machine (integer-only
// randomness from random.h). Throws std::runtime_error when a file cannot be written.
void write_quickstart_data(const std::string& dir, uint64_t seed);

}  // namespace mft::data
