#include "train/metrics_log.h"

#include "core/json_parse.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace mft::train {

std::vector<std::pair<std::string, double>> tensorboard_scalars(const StepMetrics& m) {
  std::vector<std::pair<std::string, double>> s = {{"train/loss", m.loss},
                                                   {"train/lr", m.lr},
                                                   {"train/grad_norm", m.grad_norm},
                                                   {"train/loss_scale", m.loss_scale},
                                                   {"train/tokens_per_s", m.tokens_per_s},
                                                   {"train/peak_rss_mb", m.peak_rss_mb},
                                                   {"train/memory_per_token_kb", m.memory_per_token_kb}};
  if (m.eval_loss >= 0) s.emplace_back("eval/loss", m.eval_loss);
  return s;
}

namespace {
constexpr const char* kCsvHeader =
    "step,loss,lr,grad_norm,loss_scale,skipped,tokens_per_s,peak_rss_mb,memory_per_token_kb,eval_loss,elapsed_s\n";

// The lines of `text` for which keep(line) holds, each ending in '\n'.
template <typename Keep>
std::string filter_lines(const std::string& text, Keep keep) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (keep(line)) out += line + "\n";
  }
  return out;
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

std::string metrics_csv_up_to(const std::string& text, int64_t step) {
  bool first = true;
  return filter_lines(text, [&](const std::string& line) {
    if (std::exchange(first, false)) return true;  // the header
    char* end = nullptr;
    const long long s = std::strtoll(line.c_str(), &end, 10);
    return end != line.c_str() && *end == ',' && s <= step;
  });
}

std::string metrics_jsonl_up_to(const std::string& text, int64_t step) {
  return filter_lines(text, [&](const std::string& line) {
    const nlohmann::json j = try_parse_json(line);
    return j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step;
  });
}

MetricsLog::MetricsLog(const std::string& dir, int64_t resume_step, bool tensorboard) {
  namespace fs = std::filesystem;
  const fs::path csv = fs::path(dir) / "metrics.csv", jsonl = fs::path(dir) / "metrics.jsonl";
  const bool resume = resume_step >= 0 && fs::exists(csv);
  if (resume) {  // rows of steps after the checkpoint are trained again: drop them
    write_file_atomically(csv.string(), metrics_csv_up_to(read_all(csv), resume_step), "train");
    if (fs::exists(jsonl)) {
      const std::string kept = metrics_jsonl_up_to(read_all(jsonl), resume_step);
      write_file_atomically(jsonl.string(), kept, "train");
      const size_t start = kept.rfind('\n', kept.size() >= 2 ? kept.size() - 2 : 0);
      const nlohmann::json last = try_parse_json(kept.substr(start == std::string::npos ? 0 : start + 1));
      if (last.is_object() && last.contains("loss") && last["loss"].is_number())
        last_loss_ = last["loss"].get<double>();
    }
  }
  csv_ = std::make_unique<AppendFile>(csv.string(), "train", !resume);
  jsonl_ = std::make_unique<AppendFile>(jsonl.string(), "train", !resume);
  if (!resume) csv_->append(kCsvHeader);
  if (tensorboard) tensorboard_ = std::make_unique<TensorBoardWriter>((fs::path(dir) / "tensorboard").string());
}

void MetricsLog::write(const StepMetrics& m) {
  std::ostringstream row;
  row << m.step << ',' << m.loss << ',' << m.lr << ',' << m.grad_norm << ',' << m.loss_scale << ',' << int(m.skipped)
      << ',' << m.tokens_per_s << ',' << m.peak_rss_mb << ',' << m.memory_per_token_kb << ','
      << (m.eval_loss >= 0 ? std::to_string(m.eval_loss) : std::string()) << ',' << m.elapsed_s << '\n';
  csv_->append(row.str());
  last_loss_ = m.loss;
  nlohmann::json j{{"step", m.step},
                   {"loss", m.loss},
                   {"lr", m.lr},
                   {"grad_norm", m.grad_norm},
                   {"loss_scale", m.loss_scale},
                   {"skipped", m.skipped},
                   {"tokens_per_s", m.tokens_per_s},
                   {"peak_rss_mb", m.peak_rss_mb},
                   {"memory_per_token_kb", m.memory_per_token_kb},
                   {"elapsed_s", m.elapsed_s}};
  if (m.eval_loss >= 0) j["eval_loss"] = m.eval_loss;
  jsonl_->append(j.dump() + '\n');
  if (tensorboard_) tensorboard_->write_scalars(m.step, tensorboard_scalars(m));
}

}  // namespace mft::train
