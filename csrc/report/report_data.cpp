// JSON and JSONL readers with errors that name the file, tolerant field access, dates and durations.
#include "report/report_data.h"

#include "core/json_parse.h"

#include <fmt/format.h>

#include <sys/stat.h>

#include <cmath>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace mft::report {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("report: cannot read {}", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  try {
    return parse_json(text.str());
  } catch (const JsonError& e) {
    throw std::runtime_error(fmt::format("report: {}: {}", path.string(), e.what()));
  }
}

double num(const nlohmann::json& j, const std::string& key) {
  if (!j.is_object()) return std::numeric_limits<double>::quiet_NaN();
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

std::string str(const nlohmann::json& j, const std::string& key, const std::string& fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();  // depth-limited when parsed
}

TrainingLog read_training_log(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("report: cannot read {}", path.string()));
  TrainingLog log;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = parse_json(line);
    } catch (const JsonError& e) {
      throw std::runtime_error(fmt::format("report: {}:{}: {}", path.string(), line_no, e.what()));
    }
    const double step = num(j, "step");
    log.step.push_back(step);
    log.loss.push_back(num(j, "loss"));
    log.lr.push_back(num(j, "lr"));
    log.grad_norm.push_back(num(j, "grad_norm"));
    log.tokens_per_s.push_back(num(j, "tokens_per_s"));
    log.loss_scale.push_back(num(j, "loss_scale"));
    const double eval_loss = num(j, "eval_loss");
    if (eval_loss >= 0) {  // -1 (or absent) marks steps without evaluation
      log.eval_step.push_back(step);
      log.eval_loss.push_back(eval_loss);
    }
  }
  return log;
}

std::string file_date(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  std::tm utc{};
  gmtime_r(&st.st_mtime, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &utc);
  return buf;
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, s % 3600 / 60);
}

}  // namespace mft::report
