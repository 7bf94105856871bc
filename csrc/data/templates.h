#pragma once
// Chat templates: a conversation as text segments, each trained or not, with EOS tokens where the
// template ends a turn. Tokenised segment by segment (as torchtune does per message) so that the loss
// mask follows segment boundaries exactly.
#include <string>
#include <vector>

namespace mft::data {

struct Message {
  std::string role;  // system | user | assistant
  std::string content;
  bool trained = true;  // for assistant turns: false when the record's weight is 0
};

// A piece of the rendered conversation: text, or the tokenizer's EOS token when `eos`.
struct Segment {
  std::string text;
  bool trained = false;
  bool eos = false;
};

// Known templates: alpaca, chatml, zephyr, none. Throws std::runtime_error naming the valid ones.
void check_template(const std::string& template_name);

// `messages` in the template; assistant turns (content, end-of-turn text, EOS) are trained when their
// Message::trained, everything else is not. A conversation of one user and one assistant turn renders as
// render_prompt(template, user, "") followed by the response.
std::vector<Segment> render_conversation(const std::string& template_name, const std::vector<Message>& messages);

// The text after a response and before EOS: "<|im_end|>" for chatml, else "".
std::string end_of_turn(const std::string& template_name);

}  // namespace mft::data
