#pragma once
// Reading the files a report renders: JSON documents, training logs (metrics.jsonl), and tolerant field
// access (a missing or null number reads as NaN, which the charts skip and the tables show as "–").
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace mft::report {

// Parses PATH; throws std::runtime_error naming the path when it cannot be read or is not JSON.
nlohmann::json read_json(const std::filesystem::path& path);

// The number at j[key], or NaN when j is not an object, the key is absent or the value is not a number.
double num(const nlohmann::json& j, const std::string& key);
// The string at j[key] (numbers are printed), or `fallback`.
std::string str(const nlohmann::json& j, const std::string& key, const std::string& fallback = "");

// One training run's metrics.jsonl as columns (steps ascending as logged).
struct TrainingLog {
  std::vector<double> step, loss, lr, grad_norm, tokens_per_s, loss_scale;
  std::vector<double> eval_step, eval_loss;  // only the steps that evaluated (eval_loss >= 0)
};
// Throws naming PATH and the line when a line is not JSON.
TrainingLog read_training_log(const std::filesystem::path& path);

// Modification time of PATH as "YYYY-MM-DD HH:MM UTC" ("" when unavailable).
std::string file_date(const std::filesystem::path& path);
// "1 h 02 min", "3 min 05 s", "12.3 s".
std::string duration(double seconds);

}  // namespace mft::report
