// The recipe key table (see recipe_keys.h). To add a key: a field with its default in recipe.h, one
// entry here; parsing, to_yaml, comparison and the reference documentation follow.
#include "recipe/recipe_keys.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>

namespace mft::recipe {
namespace {

// ---- field accessors ---------------------------------------------------------------------------------
template <class S, class T>
std::function<FieldPtr(Recipe&)> at(S Recipe::*section, T S::*member) {
  return [section, member](Recipe& r) -> FieldPtr { return &((r.*section).*member); };
}

// ---- bounds ---------------------------------------------------------------------------------------------
// Far above any real run, low enough that a typo fails here naming the key, not as an allocation of
// terabytes (what the job needs within these bounds is checked against memory before allocating).
constexpr double kMaxTokens = 1 << 20;  // per sequence
constexpr double kMaxBatch = 65536;     // sequences per batch
constexpr double kMaxRank = 65536;      // LoRA rank
constexpr double kMaxSteps = 1e12;      // optimizer steps
constexpr double kMaxCount = 1 << 20;   // accumulation steps, eval batches

// ---- checks --------------------------------------------------------------------------------------------
double as_number(const FieldPtr& f) {
  if (auto p = std::get_if<int64_t*>(&f)) return static_cast<double>(**p);
  if (auto p = std::get_if<uint64_t*>(&f)) return static_cast<double>(**p);
  if (auto p = std::get_if<double*>(&f)) return **p;
  return 0.0;  // checks on numbers are only attached to numeric keys
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

Check compare(const std::string& op, double bound) {
  return {op + " " + number_text(bound), [op, bound](const FieldPtr& f) -> std::string {
            const double v = as_number(f);
            const bool ok = op == ">" ? v > bound : op == ">=" ? v >= bound : op == "<" ? v < bound : v <= bound;
            return ok ? "" : "must be " + op + " " + number_text(bound) + ", got " + value_text(f);
          }};
}
Check gt(double b) {
  return compare(">", b);
}
Check ge(double b) {
  return compare(">=", b);
}
Check lt(double b) {
  return compare("<", b);
}
Check le(double b) {
  return compare("<=", b);
}

Check one_of(std::vector<std::string> choices) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  return {"one of: " + list, [choices, list](const FieldPtr& f) -> std::string {
            const std::string& v = **std::get_if<std::string*>(&f);
            if (std::find(choices.begin(), choices.end(), v) != choices.end()) return "";
            return "must be one of: " + list + "; got '" + v + "'";
          }};
}

Check non_empty_items() {
  return {"items non-empty", [](const FieldPtr& f) -> std::string {
            for (const auto& s : **std::get_if<std::vector<std::string>*>(&f))
              if (s.empty()) return "items must be non-empty strings";
            return "";
          }};
}

Check regex_items() {
  return {"ECMAScript regular expressions", [](const FieldPtr& f) -> std::string {
            for (const auto& s : **std::get_if<std::vector<std::string>*>(&f)) {
              try {
                std::regex re(s);
              } catch (const std::regex_error& e) {
                return "invalid regular expression '" + s + "': " + e.what();
              }
            }
            return "";
          }};
}

// Keys that must be given for training: a string (or list) that stays empty is reported as missing.
KeyInfo required(KeyInfo k) {
  k.required = true;
  return k;
}
// Keys that must be given for evaluation only / for both.
KeyInfo required_for_eval(KeyInfo k) {
  k.required_for_eval = true;
  return k;
}
KeyInfo required_always(KeyInfo k) {
  k.required = k.required_for_eval = true;
  return k;
}

// Each item of a list of strings is an integer >= 0 (few-shot counts, seeds).
Check all_non_negative_integers() {
  return {"integers >= 0", [](const FieldPtr& f) -> std::string {
            for (const auto& s : **std::get_if<std::vector<std::string>*>(&f)) {
              if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
                return "expected integers >= 0, got '" + s + "'";
            }
            return "";
          }};
}

}  // namespace

const std::vector<SectionInfo>& recipe_sections() {
  static const std::vector<SectionInfo> sections = {
      {"", "Top-level keys."},
      {"model", "The model to fine-tune: a Hugging Face checkpoint folder or a built-in preset."},
      {"data", "Training data: file format, prompt template, sequence length and packing."},
      {"peft", "What is trained: LoRA adapters (`lora`) or all weights (`full`)."},
      {"precision",
       "Mixed precision: autocast dtype with fp32 master weights, optional pure half base weights, "
       "and the dynamic loss scaler used with fp16."},
      {"optimizer", "Optimizer and gradient clipping."},
      {"schedule",
       "Learning-rate schedule: linear warm-up from 0, then constant, linear or cosine decay to "
       "`min_lr_ratio * lr` at `trainer.max_steps`."},
      {"trainer", "Loop: steps, batch, evaluation, checkpoints, logging and determinism."},
      {"output", "Where and how results are written."},
      {"eval",
       "ICL evaluation by `mamba-ft eval RECIPE.yaml` (lm-evaluation-harness tasks and metrics): of `eval.model`, "
       "else of what training wrote (`output.dir`/final, or `output.dir`/adapter on `model.path`), else of "
       "`model.path`."},
  };
  return sections;
}

const std::vector<KeyInfo>& recipe_keys() {
  using R = Recipe;
  static const std::vector<KeyInfo> keys = {
      {"name", "Name of the run in logs and output files; empty: the recipe file's stem.",
       [](Recipe& r) -> FieldPtr { return &r.name; }},

      required_always({"model.path",
                       "Hugging Face checkpoint folder (config.json + safetensors/bin), or `preset:NAME` "
                       "for a randomly initialised built-in model (e.g. `preset:mamba-tiny`).",
                       at(&R::model, &ModelSection::path)}),
      {"model.tokenizer",
       "A tokenizer.json file, or `bytes` for the byte tokenizer; empty: the model folder's tokenizer.json "
       "(the tiny presets use `bytes`).",
       at(&R::model, &ModelSection::tokenizer)},
      {"model.init_seed", "Seed of the random initial weights of a `preset:` model.",
       at(&R::model, &ModelSection::init_seed)},

      {"data.format",
       "Record format: `alpaca` (JSON list or JSONL of instruction/input/output records), `sharegpt` "
       "(conversations), `text` (plain text for language-model training).",
       at(&R::data, &DataSection::format),
       {one_of({"alpaca", "sharegpt", "text"})}},
      required({"data.train_file", "Training data file.", at(&R::data, &DataSection::train_file)}),
      {"data.val_file", "Validation data file; empty: hold out `val_fraction` of the training records.",
       at(&R::data, &DataSection::val_file)},
      {"data.val_fraction",
       "Fraction of the training records held out for validation when no `val_file`.",
       at(&R::data, &DataSection::val_fraction),
       {ge(0), le(0.5)}},
      {"data.max_length",
       "Tokens per training sequence; longer records are truncated.",
       at(&R::data, &DataSection::max_length),
       {ge(8), le(kMaxTokens)}},
      {"data.packing", "Pack several records into each sequence instead of padding each one.",
       at(&R::data, &DataSection::packing)},
      {"data.response_only_loss", "Compute the loss on response tokens only (the prompt is masked).",
       at(&R::data, &DataSection::response_only_loss)},
      {"data.template_name",
       "Prompt template: `alpaca` (the Stanford Alpaca prompt), `chatml`, or `none` "
       "(prompt and response concatenated).",
       at(&R::data, &DataSection::template_name),
       {one_of({"alpaca", "chatml", "none"})}},
      {"data.skip_bad_records", "Skip malformed records with a warning instead of failing.",
       at(&R::data, &DataSection::skip_bad_records)},
      {"data.shuffle_seed", "Seed of the order in which records are visited.",
       at(&R::data, &DataSection::shuffle_seed)},

      {"peft.method",
       "`lora`: train low-rank adapters on `target_modules`, base frozen; `full`: train all "
       "weights except those matching `freeze`.",
       at(&R::peft, &PeftSection::method),
       {one_of({"lora", "full"})}},
      {"peft.rank", "LoRA rank r.", at(&R::peft, &PeftSection::rank), {gt(0), le(kMaxRank)}},
      {"peft.alpha",
       "LoRA alpha; the update is scaled by alpha/r (alpha/sqrt(r) with `use_rslora`).",
       at(&R::peft, &PeftSection::alpha),
       {gt(0)}},
      {"peft.dropout", "Dropout on the LoRA input.", at(&R::peft, &PeftSection::dropout), {ge(0), lt(1)}},
      {"peft.use_rslora", "Rank-stabilised scaling alpha/sqrt(r).", at(&R::peft, &PeftSection::use_rslora)},
      {"peft.target_modules",
       "Linear layers (module names, e.g. `in_proj`, `x_proj`, `out_proj`, "
       "`embeddings`) that get adapters; empty: the model family's defaults.",
       at(&R::peft, &PeftSection::target_modules),
       {non_empty_items()}},
      {"peft.freeze",
       "Parameters whose names match (search) one of these regular expressions stay frozen in full "
       "fine-tuning; a pattern that matches no parameter is an error.",
       at(&R::peft, &PeftSection::freeze),
       {regex_items()}},

      {"precision.dtype",
       "Compute dtype: `fp32`, or `bf16`/`fp16` autocast with fp32 master weights.",
       at(&R::precision, &PrecisionSection::dtype),
       {one_of({"fp32", "bf16", "fp16"})}},
      {"precision.pure_half",
       "Keep the frozen base weights in `dtype` (LoRA adapters stay fp32); needs a half "
       "dtype and `peft.method: lora`.",
       at(&R::precision, &PrecisionSection::pure_half)},
      {"precision.init_loss_scale",
       "fp16: initial dynamic loss scale.",
       at(&R::precision, &PrecisionSection::init_loss_scale),
       {gt(0)}},
      {"precision.growth_interval",
       "fp16: steps without overflow before the scale grows.",
       at(&R::precision, &PrecisionSection::growth_interval),
       {gt(0)}},
      {"precision.growth_factor",
       "fp16: factor the scale grows by.",
       at(&R::precision, &PrecisionSection::growth_factor),
       {gt(1)}},
      {"precision.backoff_factor",
       "fp16: factor the scale shrinks by after an overflow (the step is skipped).",
       at(&R::precision, &PrecisionSection::backoff_factor),
       {gt(0), lt(1)}},

      {"optimizer.name",
       "`adamw` (decoupled weight decay) or `sgd` (with `momentum`).",
       at(&R::optimizer, &OptimizerSection::name),
       {one_of({"adamw", "sgd"})}},
      {"optimizer.lr", "Peak learning rate.", at(&R::optimizer, &OptimizerSection::lr), {gt(0)}},
      {"optimizer.weight_decay", "Weight decay.", at(&R::optimizer, &OptimizerSection::weight_decay), {ge(0)}},
      {"optimizer.beta1", "Adam beta1.", at(&R::optimizer, &OptimizerSection::beta1), {ge(0), lt(1)}},
      {"optimizer.beta2", "Adam beta2.", at(&R::optimizer, &OptimizerSection::beta2), {ge(0), lt(1)}},
      {"optimizer.eps", "Adam epsilon.", at(&R::optimizer, &OptimizerSection::eps), {gt(0)}},
      {"optimizer.momentum", "SGD momentum.", at(&R::optimizer, &OptimizerSection::momentum), {ge(0), lt(1)}},
      {"optimizer.grad_clip",
       "Clip the global gradient norm to this value; 0 disables clipping.",
       at(&R::optimizer, &OptimizerSection::grad_clip),
       {ge(0)}},

      {"schedule.name",
       "Decay after warm-up: `constant`, `linear` or `cosine`.",
       at(&R::schedule, &ScheduleSection::name),
       {one_of({"constant", "linear", "cosine"})}},
      {"schedule.warmup_steps",
       "Steps of linear warm-up from 0 to `lr`.",
       at(&R::schedule, &ScheduleSection::warmup_steps),
       {ge(0)}},
      {"schedule.min_lr_ratio",
       "Final learning rate as a fraction of `lr` (linear and cosine).",
       at(&R::schedule, &ScheduleSection::min_lr_ratio),
       {ge(0), le(1)}},

      {"trainer.max_steps",
       "Optimizer steps to run.",
       at(&R::trainer, &TrainerSection::max_steps),
       {gt(0), le(kMaxSteps)}},
      {"trainer.batch_size",
       "Sequences per micro-batch.",
       at(&R::trainer, &TrainerSection::batch_size),
       {gt(0), le(kMaxBatch)}},
      {"trainer.grad_accum",
       "Micro-batches accumulated per optimizer step.",
       at(&R::trainer, &TrainerSection::grad_accum),
       {gt(0), le(kMaxCount)}},
      {"trainer.eval_every",
       "Evaluate on the validation set every this many steps; 0: never.",
       at(&R::trainer, &TrainerSection::eval_every),
       {ge(0)}},
      {"trainer.eval_batches",
       "Validation batches per evaluation.",
       at(&R::trainer, &TrainerSection::eval_batches),
       {gt(0), le(kMaxCount)}},
      {"trainer.save_every",
       "Write a checkpoint every this many steps; 0: only at the end.",
       at(&R::trainer, &TrainerSection::save_every),
       {ge(0)}},
      {"trainer.keep_last",
       "Checkpoints kept (older ones are deleted); 0: keep all.",
       at(&R::trainer, &TrainerSection::keep_last),
       {ge(0)}},
      {"trainer.log_every", "Log a line every this many steps.", at(&R::trainer, &TrainerSection::log_every), {gt(0)}},
      {"trainer.seed", "Seed of dropout and every other random choice in training.",
       at(&R::trainer, &TrainerSection::seed)},
      {"trainer.deterministic", "Use deterministic kernels only (slower; bitwise-repeatable runs).",
       at(&R::trainer, &TrainerSection::deterministic)},
      {"trainer.activation_checkpointing",
       "Activation checkpointing per block: keep only each block's input and recompute the block in "
       "backward (same autocast and dropout masks): far less activation memory for long sequences and big "
       "models, for about one extra forward pass.",
       at(&R::trainer, &TrainerSection::activation_checkpointing)},

      required({"output.dir", "Output folder: checkpoints (`step-N/`), `final/`, logs, the resolved recipe.",
                at(&R::output, &OutputSection::dir)}),
      {"output.merge",
       "LoRA: also write `final/` with the adapters merged into the base weights (else "
       "`final/` holds the adapter only).",
       at(&R::output, &OutputSection::merge)},
      {"output.resume",
       "Resume from the newest checkpoint in `dir` (model, optimizer, schedule, RNG, data "
       "position).",
       at(&R::output, &OutputSection::resume)},
      {"output.overwrite", "Replace a non-empty `dir` (its contents are deleted) instead of failing.",
       at(&R::output, &OutputSection::overwrite)},
      {"output.tensorboard",
       "Also write TensorBoard event files to `dir`/tensorboard/ (the scalars of every logged step: "
       "train/loss, lr, grad_norm, loss_scale, tokens_per_s, peak_rss_mb, memory_per_token_kb, and "
       "eval/loss; a resumed run adds a file there); view with `tensorboard --logdir DIR/tensorboard`.",
       at(&R::output, &OutputSection::tensorboard)},

      required_for_eval({"eval.tasks",
                         "Tasks: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande, mmlu (57 "
                         "subjects and the group), mmlu_<subject>, or task YAML files.",
                         at(&R::eval, &EvalSection::tasks)}),
      {"eval.data_dir",
       "Folder of the built-in tasks' files: DATA_DIR/<task>/<split>.jsonl as `datasets` exports them.",
       at(&R::eval, &EvalSection::data_dir)},
      {"eval.shots",
       "Few-shot counts, each a separate evaluation (e.g. [0, 1, 3, 5]).",
       at(&R::eval, &EvalSection::shots),
       {all_non_negative_integers()}},
      {"eval.seeds",
       "Few-shot sampling seeds (lm-eval's fewshot_random_seed); several give mean and spread.",
       at(&R::eval, &EvalSection::seeds),
       {all_non_negative_integers()}},
      {"eval.limit",
       "Score only the first N documents of each task; -1: all.",
       at(&R::eval, &EvalSection::limit),
       {ge(-1)}},
      {"eval.batch_size",
       "Sequences per forward pass.",
       at(&R::eval, &EvalSection::batch_size),
       {gt(0), le(kMaxBatch)}},
      {"eval.max_length",
       "Longest model input in tokens (longer inputs keep their last tokens), as lm-eval.",
       at(&R::eval, &EvalSection::max_length),
       {gt(0), le(kMaxTokens)}},
      {"eval.model", "Model to evaluate (HF folder or preset:NAME); empty: the trained one (see the section).",
       at(&R::eval, &EvalSection::model)},
      {"eval.adapter", "PEFT adapter folder applied before evaluation; empty: `output.dir`/adapter when it exists.",
       at(&R::eval, &EvalSection::adapter)},
      {"eval.output", "Results JSON; empty: `output.dir`/eval.json when `output.dir` is set.",
       at(&R::eval, &EvalSection::output)},
      {"eval.log_samples", "Also write every document's requests, loglikelihoods and metrics.",
       at(&R::eval, &EvalSection::log_samples)},
      {"eval.bootstrap_iters",
       "Bootstrap draws for perplexity's standard error (lm-eval's bootstrap_iters).",
       at(&R::eval, &EvalSection::bootstrap_iters),
       {ge(0)}},
  };
  return keys;
}

const std::vector<CrossCheck>& recipe_cross_checks() {
  static const std::vector<CrossCheck> checks = {
      {"precision.pure_half", "needs `precision.dtype` bf16 or fp16 and `peft.method: lora`",
       [](const Recipe& r) -> std::string {
         if (!r.precision.pure_half) return "";
         if (r.precision.dtype == "fp32") return "needs precision.dtype bf16 or fp16, got fp32";
         if (r.peft.method != "lora")
           return "needs peft.method lora (full fine-tuning keeps fp32 master weights), got " + r.peft.method;
         return "";
       }},
      {"data.val_fraction", "give `data.val_file` or `data.val_fraction`, not both",
       [](const Recipe& r) -> std::string {
         return !r.data.val_file.empty() && r.data.val_fraction > 0
                    ? "give data.val_file or data.val_fraction, not both"
                    : "";
       }},
      {"output.overwrite", "cannot be combined with `output.resume`",
       [](const Recipe& r) -> std::string {
         return r.output.overwrite && r.output.resume ? "cannot be combined with output.resume" : "";
       }},
  };
  return checks;
}

std::string type_name(const FieldPtr& f) {
  static const char* names[] = {"string", "integer", "non-negative integer", "number", "boolean", "list of strings"};
  return names[f.index()];
}

namespace {
// Shortest decimal text that reads back to exactly v.
std::string shortest_double(double v) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// The string as a YAML scalar that reads back to itself in block or flow context: plain when it is
// safe (paths, names, `preset:mamba-tiny`), else double-quoted with escapes.
std::string quoted_if_needed(const std::string& s) {
  static const std::string kSpecialFirst = "-?:,[]{}#&*!|>'\"%@` ";
  const bool null_like = s == "~" || s == "null" || s == "Null" || s == "NULL";
  bool plain = !s.empty() && !null_like && kSpecialFirst.find(s.front()) == std::string::npos && s.back() != ' ' &&
               s.back() != ':' && s.find(": ") == std::string::npos && s.find(" #") == std::string::npos &&
               s.find_first_of(",[]{}") == std::string::npos;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20) plain = false;
  if (plain) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
}  // namespace

std::string value_text(const FieldPtr& f) {
  struct Visitor {
    std::string operator()(std::string* p) const { return quoted_if_needed(*p); }
    std::string operator()(int64_t* p) const { return std::to_string(*p); }
    std::string operator()(uint64_t* p) const { return std::to_string(*p); }
    std::string operator()(double* p) const { return shortest_double(*p); }
    std::string operator()(bool* p) const { return *p ? "true" : "false"; }
    std::string operator()(std::vector<std::string>* p) const {
      std::string out = "[";
      for (size_t i = 0; i < p->size(); ++i) out += (i ? ", " : "") + quoted_if_needed((*p)[i]);
      return out + "]";
    }
  };
  return std::visit(Visitor{}, f);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace mft::recipe
