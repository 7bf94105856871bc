#include "data/templates.h"

#include "data/dataset.h"

#include <stdexcept>

namespace mft::data {
namespace {

// formats.md 6.1, verbatim (Stanford Alpaca train.py PROMPT_DICT).
constexpr const char* kAlpacaPreambleInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n";
constexpr const char* kAlpacaPreamble =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n";
// GPT-NeoX's EOS as text, which tokenizers recognise as the special token (zephyr prompts only).
constexpr const char* kEosText = "<|endoftext|>";

std::string user_text(const std::string& instruction, const std::string& input) {
  return input.empty() ? instruction : instruction + "\n\n" + input;
}

void push(std::vector<Segment>& out, std::string text, bool trained) {
  if (text.empty()) return;
  if (!out.empty() && !out.back().eos && out.back().trained == trained) {
    out.back().text += text;  // fewer, longer segments: tokenised as a whole
  } else {
    out.push_back({std::move(text), trained, false});
  }
}

void push_eos(std::vector<Segment>& out, bool trained) {
  out.push_back({"", trained, true});
}

// Alpaca-style turns: the system message (or the standard preamble), then "### Instruction:" and
// "### Response:" sections; the response follows "### Response:" directly, as in Alpaca.
std::vector<Segment> render_alpaca(const std::vector<Message>& messages) {
  std::vector<Segment> out;
  size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    push(out, messages[0].content + "\n\n", false);
    first = 1;
  } else {
    push(out, kAlpacaPreamble, false);
  }
  bool after_turn = false;
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const std::string sep = after_turn ? "\n\n" : "";
    if (m.role == "user") {
      push(out, sep + "### Instruction:\n" + m.content + "\n\n### Response:", false);
    } else if (m.role == "assistant") {
      push(out, m.content, m.trained);
      push_eos(out, m.trained);
    } else {
      push(out, sep + m.content, false);
    }
    after_turn = true;
  }
  return out;
}

// Turns of the form <open(role)> content <close> [EOS], separated by "\n" (chatml, zephyr, none).
std::vector<Segment> render_turns(const std::string& name, const std::vector<Message>& messages) {
  std::vector<Segment> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    std::string open = i > 0 ? "\n" : "";
    if (name == "chatml") open += "<|im_start|>" + m.role + "\n";
    if (name == "zephyr") open += "<|" + m.role + "|>\n";
    const bool assistant = m.role == "assistant";
    push(out, open, false);
    push(out, m.content + (name == "chatml" ? "<|im_end|>" : ""), assistant && m.trained);
    if (assistant || name == "zephyr") push_eos(out, assistant && m.trained);
  }
  return out;
}

}  // namespace

void check_template(const std::string& name) {
  if (name != "alpaca" && name != "chatml" && name != "zephyr" && name != "none")
    throw std::runtime_error("unknown template '" + name + "'; expected one of alpaca, chatml, zephyr, none");
}

std::string end_of_turn(const std::string& name) {
  return name == "chatml" ? "<|im_end|>" : "";
}

std::string render_prompt(const std::string& name, const std::string& instruction, const std::string& input) {
  check_template(name);
  const std::string u = user_text(instruction, input);
  if (name == "alpaca") {
    if (input.empty()) return std::string(kAlpacaPreamble) + "### Instruction:\n" + instruction + "\n\n### Response:";
    return std::string(kAlpacaPreambleInput) + "### Instruction:\n" + instruction + "\n\n### Input:\n" + input +
           "\n\n### Response:";
  }
  if (name == "chatml") return "<|im_start|>user\n" + u + "<|im_end|>\n<|im_start|>assistant\n";
  if (name == "zephyr") return "<|user|>\n" + u + kEosText + "\n<|assistant|>\n";
  return u + "\n";
}

std::vector<Segment> render_conversation(const std::string& name, const std::vector<Message>& messages) {
  check_template(name);
  if (name == "alpaca") return render_alpaca(messages);
  return render_turns(name, messages);
}

}  // namespace mft::data
