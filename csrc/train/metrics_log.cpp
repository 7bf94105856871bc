#include "train/metrics_log.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <filesystem>

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

MetricsLog::MetricsLog(const std::string& dir, bool append, bool tensorboard) {
  namespace fs = std::filesystem;
  const fs::path csv = fs::path(dir) / "metrics.csv", jsonl = fs::path(dir) / "metrics.jsonl";
  const bool header = !append || !fs::exists(csv);
  const auto mode = append ? std::ios::app : std::ios::trunc;
  csv_.open(csv, std::ios::out | mode);
  jsonl_.open(jsonl, std::ios::out | mode);
  TORCH_CHECK(csv_ && jsonl_, "train: cannot write metrics in ", dir);
  if (header) {
    csv_ << "step,loss,lr,grad_norm,loss_scale,skipped,tokens_per_s,peak_rss_mb,memory_per_token_kb,eval_loss,"
            "elapsed_s\n";
  }
  if (tensorboard) tensorboard_ = std::make_unique<TensorBoardWriter>((fs::path(dir) / "tensorboard").string());
}

void MetricsLog::write(const StepMetrics& m) {
  csv_ << m.step << ',' << m.loss << ',' << m.lr << ',' << m.grad_norm << ',' << m.loss_scale << ','
       << int(m.skipped) << ',' << m.tokens_per_s << ',' << m.peak_rss_mb << ',' << m.memory_per_token_kb << ','
       << (m.eval_loss >= 0 ? std::to_string(m.eval_loss) : std::string()) << ',' << m.elapsed_s << '\n';
  csv_.flush();
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
  jsonl_ << j.dump() << '\n';
  jsonl_.flush();
  if (tensorboard_) tensorboard_->write_scalars(m.step, tensorboard_scalars(m));
}

}  // namespace mft::train
