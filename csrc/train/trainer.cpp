// One training run, top to bottom. See trainer.h for the outline.
#include "train/trainer.h"

#include "core/cast_cache.h"
#include "core/file_io.h"
#include "core/json_parse.h"
#include "core/memory.h"
#include "core/output_lock.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "models/checkpoint.h"
#include "models/memory_estimate.h"
#include "models/registry.h"
#include "ops/cross_entropy.h"
#include "peft/lora.h"
#include "train/autocast_scope.h"
#include "train/checkpoint.h"
#include "train/loss_scaler.h"
#include "train/model_setup.h"
#include "train/optimizer.h"
#include "train/schedule.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <vector>

namespace mft::train {
namespace fs = std::filesystem;

namespace {
using Clock = std::chrono::steady_clock;

void write_file_atomically(const fs::path& path, const std::string& text) {
  mft::write_file_atomically(path.string(), text, "train");
}

// result.json: what train() returns, for whoever ran the trainer in another process (`mamba-ft sweep`).
void write_train_result(const TrainResult& t) {
  const nlohmann::json j = {{"steps", t.steps},
                            {"interrupted", t.interrupted},
                            {"last_loss", t.last_loss},
                            {"last_eval_loss", t.last_eval_loss},
                            {"tokens_per_s", t.tokens_per_s},
                            {"peak_rss_over_load_mb", t.peak_rss_over_load_mb},
                            {"output_dir", t.output_dir},
                            {"final_dir", t.final_dir}};
  write_file_atomically(fs::path(t.output_dir) / "result.json", j.dump(1) + "\n");
}

// The output folder (locked by this run): new (or empty), or an existing run when resuming (or overwrite,
// which clears it). Temporaries of killed runs are removed.
bool prepare_output(const recipe::OutputSection& o) {
  bool has_content = false;
  for (const auto& e : fs::directory_iterator(o.dir)) has_content |= e.path().filename() != kLockFileName;
  if (has_content && o.resume) {
    for (const char* sub : {"", "checkpoints"}) remove_stale_temporaries((fs::path(o.dir) / sub).string());
    return true;
  }
  TORCH_CHECK(!has_content || o.overwrite, "train: output folder ", o.dir,
              " already exists; set output.resume=true to continue it or output.overwrite=true to replace it");
  std::vector<fs::path> old;  // collected first: removing while iterating is unspecified
  for (const auto& e : fs::directory_iterator(o.dir)) {
    if (e.path().filename() != kLockFileName) old.push_back(e.path());
  }
  for (const auto& p : old) fs::remove_all(p);
  return false;
}

// A resumed run that already reached max_steps and wrote its outputs: its result, else nullopt.
std::optional<TrainResult> finished_run(const recipe::Recipe& r) {
  if (!fs::exists(fs::path(r.output.dir) / "result.json")) return std::nullopt;
  TrainResult done;
  try {
    done = read_train_result(r.output.dir);
  } catch (const c10::Error&) {
    return std::nullopt;  // unreadable: judged by the checkpoints instead
  }
  if (done.interrupted || done.steps < r.trainer.max_steps || done.final_dir.empty() || !fs::exists(done.final_dir))
    return std::nullopt;
  return done;
}

// Throws unless every trainable parameter is finite (before outputs are written from them).
void check_finite_weights(const std::vector<at::Tensor>& params, const std::string& when) {
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    TORCH_CHECK(at::isfinite(p).all().item<bool>(), "train: the weights hold NaN or Inf ", when,
                "; no model or adapter was written (lower optimizer.lr, or use precision.dtype=bf16 instead of fp16)");
  }
}

// What one micro-batch of this recipe asks of memory (models/memory_estimate.h).
models::TrainingShape training_shape(const recipe::Recipe& r, at::ScalarType dtype) {
  models::TrainingShape s;
  s.batch = r.trainer.batch_size;
  s.seq = r.data.max_length;
  s.dtype = dtype;
  s.lora = r.peft.method == "lora";
  s.lora_rank = r.peft.rank;
  s.pure_half = r.precision.pure_half;
  s.optimizer = r.optimizer.name;
  return s;
}

// Trainable parameters: LoRA adapters only, or everything except the `freeze` patterns.
void set_up_peft(models::CausalLM& model, const recipe::Recipe& r) {
  const auto& p = r.peft;
  if (p.method == "lora") {
    peft::LoraConfig cfg;
    cfg.rank = p.rank;
    cfg.alpha = p.alpha;
    cfg.dropout = p.dropout;
    cfg.use_rslora = p.use_rslora;
    cfg.target_modules = p.target_modules;
    peft::apply_lora(model, cfg, r.trainer.seed);
    return;
  }
  TORCH_CHECK(p.method == "full", "train: peft.method must be lora or full; got \"", p.method, "\"");
  for (const auto& pattern : p.freeze) {
    const std::regex re(pattern);
    bool matched = false;
    for (auto& param : model.named_parameters()) {
      if (std::regex_search(param.key(), re)) {
        param.value().requires_grad_(false);
        matched = true;
      }
    }
    TORCH_CHECK(matched, "train: peft.freeze pattern \"", pattern, "\" matches no parameter");
  }
}

// Sum of token losses (fp32) over trained positions.
at::Tensor token_loss_sum(models::CausalLM& model, const data::Batch& b, bool packed) {
  const models::NativeLogits native;  // the loss reads low-precision logits without an fp32 copy
  const at::Tensor logits = packed ? model.forward(b.input_ids, b.seq_idx) : model.forward(b.input_ids);
  return cross_entropy_sum(logits.view({-1, logits.size(-1)}), b.labels.view({-1}), -100);
}

double evaluate(models::CausalLM& model, const std::vector<data::Example>& val, const recipe::Recipe& r, int64_t pad_id,
                at::ScalarType dtype) {
  if (val.empty()) return -1;
  at::NoGradGuard no_grad;
  model.eval();
  data::BatchStream stream(val, r.trainer.batch_size, r.data.max_length, r.data.packing, r.data.shuffle_seed, pad_id);
  double sum = 0;
  int64_t tokens = 0;
  const int64_t batches = std::max<int64_t>(1, std::min<int64_t>(r.trainer.eval_batches, int64_t(val.size())));
  for (int64_t i = 0; i < batches; ++i) {
    const data::Batch b = stream.next();
    AutocastScope autocast(dtype);
    sum += token_loss_sum(model, b, r.data.packing).item<double>();
    tokens += b.trained_tokens;
    if (stream.epoch() > 0) break;
  }
  model.train();
  return tokens > 0 ? sum / double(tokens) : -1;
}
}  // namespace

TrainResult train(const recipe::Recipe& r, const TrainHooks& hooks) {
  auto say = [&](const std::string& m) {
    if (hooks.on_message) hooks.on_message(m);
  };
  // The frozen weights' low-precision copies (core/cast_cache.h) live as long as this run.
  struct ClearCastCache {
    ~ClearCastCache() { clear_cast_cache(); }
  } clear_cast_cache_at_exit;
  TrainResult result;
  result.output_dir = r.output.dir;
  TORCH_CHECK(!r.output.dir.empty(), "train: output.dir must be set");
  const OutputLock lock(r.output.dir, "train", say);  // held to the end of the run
  const bool resuming = prepare_output(r.output);
  if (resuming) {
    if (std::optional<TrainResult> done = finished_run(r)) {
      say("run in " + r.output.dir + " already finished (" + std::to_string(done->steps) +
          " steps); nothing to do (raise trainer.max_steps to train on)");
      done->already_finished = true;
      return *done;
    }
  }
  write_file_atomically(fs::path(r.output.dir) / "recipe.yaml", recipe::to_yaml(r));
  at::manual_seed(r.trainer.seed);
  if (r.trainer.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);

  // Memory, from the model's config and the recipe, before anything is allocated; then the model, its
  // adapters, precision.
  const at::ScalarType dtype = models::parse_dtype(r.precision.dtype);
  models::check_memory(models::estimate_training(models::model_footprint(r.model.path), training_shape(r, dtype)),
                       "train: this run", "lower trainer.batch_size or data.max_length (or set peft.method=lora)");
  auto model = models::load_model(r.model.path, r.model.init_seed);
  if (r.precision.pure_half) models::cast_model(*model, dtype);  // base weights in half, adapters (below) fp32
  set_up_peft(*model, r);
  model->train();
  model->set_activation_checkpointing(r.trainer.activation_checkpointing);
  std::vector<at::Tensor> params;
  for (const auto& p : model->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  TORCH_CHECK(!params.empty(), "train: nothing to train (every parameter is frozen)");

  // Data.
  const auto tokenizer = load_tokenizer_for(r.model.path, r.model.tokenizer);
  data::DataOptions dopt;
  dopt.format = r.data.format;
  dopt.max_length = r.data.max_length;
  dopt.packing = r.data.packing;
  dopt.response_only_loss = r.data.response_only_loss;
  dopt.template_name = r.data.template_name;
  dopt.skip_bad_records = r.data.skip_bad_records;
  data::LoadReport report;
  auto examples = data::load_examples(r.data.train_file, *tokenizer, dopt, &report);
  std::vector<data::Example> val;
  if (!r.data.val_file.empty()) {
    val = data::load_examples(r.data.val_file, *tokenizer, dopt);
  } else if (r.data.val_fraction > 0) {
    std::tie(examples, val) = data::split(std::move(examples), r.data.val_fraction, r.data.shuffle_seed);
  }
  TORCH_CHECK(!examples.empty(), "train: ", r.data.train_file, " gave no training examples (", report.records,
              " records, ", report.skipped, " skipped, ", report.dropped,
              " dropped because nothing trainable fit in data.max_length=", r.data.max_length, ")");
  say("data: " + std::to_string(examples.size()) + " training examples, " + std::to_string(val.size()) +
      " validation (" + std::to_string(report.skipped) + " skipped, " + std::to_string(report.truncated) +
      " truncated)");
  const int64_t pad_id = tokenizer->eos_token_id().value_or(0);
  data::BatchStream stream(std::move(examples), r.trainer.batch_size, r.data.max_length, r.data.packing,
                           r.data.shuffle_seed, pad_id);

  // Optimizer, schedule, loss scaling; then resume.
  auto opt = make_optimizer(params, r.optimizer);
  Schedule schedule{r.schedule.name, r.optimizer.lr, r.schedule.warmup_steps, r.trainer.max_steps,
                    r.schedule.min_lr_ratio};
  TrainerState state;
  state.scaler.enabled = dtype == at::kHalf;
  state.scaler.scale = r.precision.init_loss_scale;
  state.scaler.growth_factor = r.precision.growth_factor;
  state.scaler.backoff_factor = r.precision.backoff_factor;
  state.scaler.growth_interval = r.precision.growth_interval;
  if (resuming) {
    const auto last = latest_intact_checkpoint(r.output.dir, say);
    TORCH_CHECK(last, "train: output.resume is set but ", r.output.dir, " has no checkpoint to resume from");
    const LossScaler settings = state.scaler;
    state = load_checkpoint(*last, *model, *opt);
    state.scaler.enabled = settings.enabled;
    state.scaler.growth_factor = settings.growth_factor;
    state.scaler.backoff_factor = settings.backoff_factor;
    state.scaler.growth_interval = settings.growth_interval;
    stream.restore(state.data);
    check_finite_weights(params, "in checkpoint " + *last);
    TORCH_CHECK(state.step <= r.trainer.max_steps, "train: checkpoint ", *last, " is at step ", state.step,
                ", past trainer.max_steps=", r.trainer.max_steps, "; raise trainer.max_steps to continue from it");
    say("resumed from " + *last + " at step " + std::to_string(state.step));
  }
  // A resumed run's logs go back to its checkpoint: the steps after it are trained (and logged) again.
  MetricsLog log(r.output.dir, resuming ? state.step : -1, r.output.tensorboard);
  result.last_loss = log.last_loss();  // what a resumed run that has no step left reports

  // Steps.
  const double rss_loaded = rss_mb();
  reset_peak_rss();
  double run_tokens = 0, run_seconds = 0;
  int64_t run_steps = 0, skipped_steps = 0;
  const auto started = Clock::now();
  while (state.step < r.trainer.max_steps) {
    const auto t0 = Clock::now();
    const double lr = schedule.lr_at(state.step);
    set_lr(*opt, lr);
    opt->zero_grad();
    std::vector<data::Batch> micro;
    int64_t trained = 0, real = 0;
    for (int64_t i = 0; i < r.trainer.grad_accum; ++i) {
      micro.push_back(stream.next());
      trained += micro.back().trained_tokens;
      real += micro.back().real_tokens;
    }
    TORCH_CHECK(trained > 0, "train: a step has no trained tokens (are all responses truncated away?)");
    double loss_sum = 0;
    for (const auto& b : micro) {
      at::Tensor loss;
      {
        AutocastScope autocast(dtype);
        loss = token_loss_sum(*model, b, r.data.packing);
      }
      loss_sum += loss.item<double>();
      (loss * (state.scaler.loss_factor() / double(trained))).backward();
    }
    // Check, unscale and clip without passes of their own: one read for the norm, the factor applied in
    // the optimizer's pass (grad_clip <= 0: the norm is only measured).
    const GradNorm grads = measure_gradients(params, 1.0 / state.scaler.loss_factor(), r.optimizer.grad_clip);
    const bool finite = grads.finite;
    const double grad_norm = finite ? grads.norm : 0.0;
    if (finite) step_with_grad_factor(*opt, params, grads.factor);
    state.scaler.update(finite);
    ++state.step;
    state.data = stream.state();

    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    run_tokens += double(real);
    run_seconds += dt;
    StepMetrics m;
    m.step = state.step;
    m.loss = loss_sum / double(trained);
    m.lr = lr;
    m.grad_norm = grad_norm;
    m.loss_scale = state.scaler.enabled ? state.scaler.scale : 1.0;
    m.skipped = !finite;
    m.tokens_per_s = double(real) / dt;
    m.peak_rss_mb = peak_rss_mb();
    m.memory_per_token_kb = (m.peak_rss_mb - rss_loaded) * 1024.0 / double(std::max<int64_t>(real, 1));
    m.elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
    if (r.trainer.eval_every > 0 && (state.step % r.trainer.eval_every == 0 || state.step == r.trainer.max_steps)) {
      m.eval_loss = evaluate(*model, val, r, pad_id, dtype);
      result.last_eval_loss = m.eval_loss;
    }
    ++run_steps;
    skipped_steps += finite ? 0 : 1;
    if (!finite) say("step " + std::to_string(state.step) + ": non-finite gradients, step skipped");
    const bool last = state.step == r.trainer.max_steps;
    if (r.trainer.log_every > 0 && (state.step % r.trainer.log_every == 0 || m.eval_loss >= 0 || last)) log.write(m);
    if (hooks.on_step) hooks.on_step(m);
    result.last_loss = m.loss;

    const bool stop =
        (hooks.stop && hooks.stop->load()) || (hooks.stop_after_steps >= 0 && state.step >= hooks.stop_after_steps);
    const bool periodic = r.trainer.save_every > 0 && state.step % r.trainer.save_every == 0;
    if (stop || periodic || state.step == r.trainer.max_steps) {
      save_checkpoint(r.output.dir, *model, *opt, state, r.trainer.keep_last);
    }
    if (stop && state.step < r.trainer.max_steps) {
      result.interrupted = true;
      say("stopped at step " + std::to_string(state.step) + "; checkpoint saved (resume with output.resume=true)");
      break;
    }
  }
  result.steps = state.step;
  result.tokens_per_s = run_seconds > 0 ? run_tokens / run_seconds : 0;
  result.peak_rss_over_load_mb = peak_rss_mb() - rss_loaded;
  if (result.interrupted) {
    write_train_result(result);
    return result;
  }
  TORCH_CHECK(run_steps == 0 || skipped_steps < run_steps, "train: all ", run_steps,
              " steps had non-finite gradients (NaN or Inf) and were skipped; nothing was learned and no model or "
              "adapter was written (check the data and model for NaN/Inf, lower optimizer.lr, or raise "
              "trainer.max_steps if fp16 loss scaling is still settling)");
  check_finite_weights(params, "after training");

  // Outputs: the adapter (PEFT format) and/or the model in HF layout.
  const std::string tokenizer_path = resolve_tokenizer_path(r.model.path, r.model.tokenizer);
  const std::string tokenizer_file = tokenizer_path == "bytes" ? "" : tokenizer_path;
  model->eval();
  if (r.peft.method == "lora") {
    peft::save_peft_adapter(*model, (fs::path(r.output.dir) / "adapter").string(), r.model.path);
    if (r.output.merge) {
      peft::merge_lora(*model);
      result.final_dir = (fs::path(r.output.dir) / "final").string();
      models::save_hf_model(*model, result.final_dir, tokenizer_file);
    } else {
      result.final_dir = (fs::path(r.output.dir) / "adapter").string();
    }
  } else {
    if (r.precision.pure_half) models::cast_model(*model, at::kFloat);
    result.final_dir = (fs::path(r.output.dir) / "final").string();
    models::save_hf_model(*model, result.final_dir, tokenizer_file);
  }
  write_file_atomically(fs::path(r.output.dir) / "template.json",
                        "{\"template\": \"" + r.data.template_name + "\", \"format\": \"" + r.data.format + "\"}\n");
  write_train_result(result);
  return result;
}

TrainResult read_train_result(const std::string& output_dir) {
  const fs::path path = fs::path(output_dir) / "result.json";
  TORCH_CHECK(fs::exists(path), "train: ", path.string(), " is missing: the run did not finish");
  const nlohmann::json j = try_load_json_file(path.string());
  TORCH_CHECK(j.is_object(), "train: ", path.string(), " is not valid JSON");
  TrainResult r;
  r.steps = j.value("steps", int64_t{0});
  r.interrupted = j.value("interrupted", false);
  r.last_loss = j.value("last_loss", 0.0);
  r.last_eval_loss = j.value("last_eval_loss", -1.0);
  r.tokens_per_s = j.value("tokens_per_s", 0.0);
  r.peak_rss_over_load_mb = j.value("peak_rss_over_load_mb", 0.0);
  r.output_dir = j.value("output_dir", output_dir);
  r.final_dir = j.value("final_dir", "");
  return r;
}

}  // namespace mft::train
