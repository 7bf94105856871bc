// `mamba-ft generate --model MODEL --prompt TEXT [--max-new-tokens --temperature --top-k --top-p --seed
// --stop ...]`: streams the continuation to stdout as it decodes (Mamba / Mamba-2: O(1) state per token;
// GPT-NeoX: KV cache); timing on stderr.
#include "cli_checks.h"
#include "commands.h"
#include "model_args.h"

#include "core/json_parse.h"
#include "data/dataset.h"
#include "models/generation.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

namespace mft::app {
namespace {
struct GenerateArgs {
  ModelArgs model;
  std::string prompt;
  models::GenerationOptions gen;
  std::vector<std::string> stop;
  bool no_eos = false;
  std::string template_name;  // a template name, or a training output folder holding template.json
};

// The prompt template: a name (alpaca, chatml, zephyr, none) or a `mamba-ft train` output folder, whose
// template.json says what the model was tuned with.
std::string resolve_template(const std::string& spec) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(spec)) return spec;
  fs::path file = fs::path(spec) / "template.json";
  if (!fs::exists(file)) file = fs::path(spec).parent_path() / "template.json";  // OUTPUT/final -> OUTPUT
  TORCH_CHECK(fs::exists(file), "generate: --template ", spec, " is a folder without template.json");
  const auto j = load_json_file(file.string());
  TORCH_CHECK(j.is_object() && j.contains("template") && j["template"].is_string(), "generate: ", file.string(),
              " must hold {\"template\": NAME}");
  return j["template"];
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string: text that
// may still turn into a stop string is held back.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops) {
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n) {
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

int run_generate(GenerateArgs& a) {
  TORCH_CHECK(!a.prompt.empty(), "generate: --prompt must not be empty");
  for (const auto& s : a.stop) TORCH_CHECK(!s.empty(), "generate: --stop strings must not be empty");
  // The prompt's bytes bound its tokens from above: the memory check needs no tokenizer.
  auto loaded = load_model_and_tokenizer(a.model, 1, int64_t(a.prompt.size()) + a.gen.max_new_tokens,
                                         "shorten --prompt or lower --max-new-tokens");
  const std::string prompt_text =
      a.template_name.empty() ? a.prompt : data::render_prompt(resolve_template(a.template_name), a.prompt, "");
  const auto prompt = loaded.tokenizer->encode(prompt_text);
  TORCH_CHECK(!prompt.empty(), "generate: the prompt encodes to no tokens");
  a.gen.seed = a.model.seed;
  if (!a.no_eos) a.gen.eos_token_id = loaded.tokenizer->eos_token_id();

  std::vector<int64_t> ids;
  size_t printed = 0;
  bool first = true;
  auto t0 = std::chrono::steady_clock::now(), t_first = t0;
  const auto emit = [&](int64_t id) {
    if (first) {
      t_first = std::chrono::steady_clock::now();
      first = false;
    }
    if (a.gen.eos_token_id && id == *a.gen.eos_token_id) return false;
    ids.push_back(id);
    const std::string text = loaded.tokenizer->decode(ids, /*skip_special_tokens=*/true);
    size_t stop_at = std::string::npos;
    for (const auto& s : a.stop) stop_at = std::min(stop_at, text.find(s));
    size_t end = stop_at != std::string::npos ? stop_at : text.size() - held_back(text, a.stop);
    // An incomplete UTF-8 sequence decodes to U+FFFD until its last byte arrives: wait for it.
    const std::string replacement = "\xEF\xBF\xBD";
    if (stop_at == std::string::npos && end >= 3 && text.compare(end - 3, 3, replacement) == 0) end -= 3;
    if (end > printed) {
      std::fwrite(text.data() + printed, 1, end - printed, stdout);
      std::fflush(stdout);
      printed = end;
    }
    return stop_at == std::string::npos;
  };
  const auto out = models::generate(*loaded.model, prompt, a.gen, emit);
  const auto t1 = std::chrono::steady_clock::now();
  // Whatever was held back for a stop string that never came.
  const std::string text = loaded.tokenizer->decode(ids, true);
  bool stopped = false;
  for (const auto& s : a.stop) stopped = stopped || text.find(s) != std::string::npos;
  if (!stopped && text.size() > printed) std::fwrite(text.data() + printed, 1, text.size() - printed, stdout);
  std::fputc('\n', stdout);
  const double prefill_s = std::chrono::duration<double>(t_first - t0).count();
  const double decode_s = std::chrono::duration<double>(t1 - t_first).count();
  fmt::print(stderr, "[{} prompt tokens in {:.3f} s; {} new tokens, {:.1f} tokens/s decoding]\n", prompt.size(),
             prefill_s, out.size(), out.size() > 1 ? double(out.size() - 1) / decode_s : 0.0);
  return 0;
}
}  // namespace

Runner add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Continue a prompt, streaming the text as it is decoded");
  a->model.add_to(cmd);
  cmd->add_option("--prompt", a->prompt, "prompt text")->required();
  cmd->add_option("--max-new-tokens", a->gen.max_new_tokens, "tokens to generate at most")
      ->check(int_in(0, kMaxTokens))
      ->capture_default_str();
  cmd->add_option("--temperature", a->gen.temperature, "0 = greedy; otherwise sampling temperature")
      ->check(number_in(0, 100, "0", "100"))
      ->capture_default_str();
  cmd->add_option("--top-k", a->gen.top_k, "sample among the k most likely tokens (0 = all)")
      ->check(int_in(0, INT32_MAX))
      ->capture_default_str();
  cmd->add_option("--top-p", a->gen.top_p, "nucleus sampling mass in (0, 1]")
      ->check(number_in(0, 1, "0", "1"))
      ->capture_default_str();
  cmd->add_option("--stop", a->stop, "stop before this string (repeatable)");
  cmd->add_flag("--ignore-eos", a->no_eos, "keep going after the end-of-text token");
  cmd->add_option("--template", a->template_name,
                  "wrap the prompt as an instruction: alpaca, chatml, zephyr, none, or a `train` output folder");
  return [a] { return run_generate(*a); };
}

}  // namespace mft::app
