#pragma once
// Training recipes: a YAML file -> plain structs (`mamba-ft train RECIPE.yaml [key.sub=value ...]`).
// The defaults are the member initialisers below; everything else about a key (its YAML path, its
// documentation, its valid range) lives in one table, recipe_keys.cpp, from which parsing, to_yaml,
// the closest-key suggestions and recipe_reference_markdown() are generated. This library does not
// need LibTorch; every error is a std::runtime_error of the form
//   "<source>: <key.path>: <problem>[; did you mean '<closest.key>'?]"
// (with "(line N)" or "(from override 'k=v')" saying where the value came from).
#include <cstdint>
#include <string>
#include <vector>

namespace mft::recipe {

struct ModelSection {
  std::string path;        // HF folder or preset:NAME (required)
  std::string tokenizer;   // tokenizer.json or a folder holding one; empty: the model's own
  uint64_t init_seed = 0;  // seed of the random weights of a preset
};

struct DataSection {
  std::string format = "alpaca";  // alpaca | sharegpt | text
  std::string train_file;         // required
  std::string val_file;           // optional; else val_fraction of train
  double val_fraction = 0.0;      // [0, 0.5]
  int64_t max_length = 512;       // tokens per sequence (>= 8)
  bool packing = true;
  bool response_only_loss = true;
  std::string template_name = "alpaca";  // alpaca | chatml | none
  bool skip_bad_records = false;
  uint64_t shuffle_seed = 0;
};

struct PeftSection {
  std::string method = "lora";  // lora | full
  int64_t rank = 8;
  double alpha = 16;
  double dropout = 0.0;
  bool use_rslora = false;
  std::vector<std::string> target_modules;  // empty: the family's defaults
  std::vector<std::string> freeze;          // name patterns (regex) frozen in full fine-tuning
};

struct PrecisionSection {
  std::string dtype = "fp32";  // fp32 | bf16 | fp16 (autocast, fp32 master weights)
  bool pure_half = false;      // base weights in dtype, adapters fp32
  double init_loss_scale = 65536;
  int64_t growth_interval = 2000;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
};

struct OptimizerSection {
  std::string name = "adamw";  // adamw | sgd
  double lr = 2e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double momentum = 0.0;
  double grad_clip = 1.0;  // max global grad norm; 0 disables clipping
};

struct ScheduleSection {
  std::string name = "cosine";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
};

struct TrainerSection {
  int64_t max_steps = 100;
  int64_t batch_size = 4;
  int64_t grad_accum = 1;
  int64_t eval_every = 50;
  int64_t eval_batches = 8;
  int64_t save_every = 100;
  int64_t keep_last = 2;
  int64_t log_every = 1;
  uint64_t seed = 0;
  bool deterministic = false;
  bool activation_checkpointing = false;
};

struct OutputSection {
  std::string dir;  // required
  bool merge = false;
  bool resume = false;
  bool overwrite = false;
  bool tensorboard = false;
};

// `mamba-ft eval RECIPE.yaml`: ICL evaluation (lm-evaluation-harness tasks) of the recipe's model, or of
// what training it wrote (output.dir/final, or output.dir/adapter on model.path).
struct EvalSection {
  std::vector<std::string> tasks;             // required by `mamba-ft eval`
  std::string data_dir = "data";              // DATA_DIR/<task>/<split>.jsonl
  std::vector<std::string> shots = {"0"};     // few-shot counts (integers >= 0)
  std::vector<std::string> seeds = {"1234"};  // few-shot sampling seeds (integers >= 0)
  int64_t limit = -1;                         // first N documents per task; -1: all
  int64_t batch_size = 8;
  int64_t max_length = 2048;
  std::string model;    // empty: output.dir/final, else model.path (+ output.dir/adapter)
  std::string adapter;  // PEFT adapter folder applied to the model
  std::string output;   // results JSON; empty: output.dir/eval.json (or none)
  bool log_samples = false;
  int64_t bootstrap_iters = 100000;
};

struct Recipe {
  std::string name;
  ModelSection model;
  DataSection data;
  PeftSection peft;
  PrecisionSection precision;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  TrainerSection trainer;
  OutputSection output;
  EvalSection eval;
};

// What a recipe is loaded for: training needs its data and output folder, evaluation only the model and
// the tasks (`eval.tasks`).
enum class Purpose { kTrain, kEval };

// Every key compared (generated from the key table).
bool operator==(const Recipe& a, const Recipe& b);
inline bool operator!=(const Recipe& a, const Recipe& b) {
  return !(a == b);
}

// Parses YAML text (source names the file in messages) with overrides "a.b=value" applied on top (value
// parsed as a YAML scalar or flow collection, e.g. `peft.target_modules=[in_proj,out_proj]`), validates,
// returns the recipe. Throws std::runtime_error on malformed YAML (with line/column), unknown keys (with
// the closest valid key), wrong types ("expected an integer, got 'abc'"), out-of-range values, missing
// required keys and malformed overrides ("expected key.path=value").
Recipe parse_recipe(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
// parse_recipe on the contents of `path`; an empty `name` becomes the file's stem.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// The resolved recipe as YAML (every key, defaults filled), which parse_recipe reads back to an equal Recipe.
std::string to_yaml(const Recipe& r);

// Multi-run files: a top-level `runs:` list; each item is deep-merged over the file's other top-level keys
// (the shared base), giving one Recipe per run in order (e.g. pretrain then instruction-tune). A file
// without `runs:` is one run. Overrides apply to every run; `runs.N.key=value` to run N only (N from 0).
// A run without a name is called "<file stem>.<N>" (load_recipe_runs) or "run<N>" (parse_recipe_runs).
std::vector<Recipe> parse_recipe_runs(const std::string& yaml_text, const std::string& source,
                                      const std::vector<std::string>& overrides = {},
                                      Purpose purpose = Purpose::kTrain);
std::vector<Recipe> load_recipe_runs(const std::string& path, const std::vector<std::string>& overrides = {},
                                     Purpose purpose = Purpose::kTrain);

// Markdown documentation of every key (type, default, valid values, meaning), one table per section.
std::string recipe_reference_markdown();

}  // namespace mft::recipe
