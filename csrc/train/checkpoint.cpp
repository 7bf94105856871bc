#include "train/checkpoint.h"

#include "core/file_io.h"
#include "core/manifest.h"
#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <algorithm>
#include <filesystem>
#include <regex>

namespace mft::train {
namespace fs = std::filesystem;

namespace {
std::map<std::string, at::Tensor> trainable(torch::nn::Module& model) {
  std::map<std::string, at::Tensor> t;
  for (const auto& p : model.named_parameters()) {
    if (p.value().requires_grad()) t[p.key()] = p.value();
  }
  return t;
}

std::vector<fs::path> complete_checkpoints(const std::string& output_dir) {
  std::vector<fs::path> out;
  const fs::path root = fs::path(output_dir) / "checkpoints";
  if (!fs::exists(root)) return out;
  static const std::regex name(R"(step-\d{8})");
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory() && std::regex_match(e.path().filename().string(), name)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

void save_checkpoint(const std::string& output_dir, torch::nn::Module& model, torch::optim::Optimizer& opt,
                     const TrainerState& state, int64_t keep_last) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(state.step));
  const fs::path root = fs::path(output_dir) / "checkpoints";
  std::error_code ec;
  fs::create_directories(root, ec);
  TORCH_CHECK(!ec, "train: cannot create ", root.string(), ": ", io_error_text(ec.value()));
  remove_stale_temporaries(root.string());
  AtomicDir folder((root / name).string(), "train");
  const fs::path tmp = folder.path_to_fill();
  Manifest manifest;
  std::map<std::string, at::Tensor> params;
  for (const auto& [k, v] : trainable(model)) params[k] = v.detach().to(at::kFloat).contiguous();
  manifest["params.safetensors"] = io::save_safetensors((tmp / "params.safetensors").string(), params);
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive opt_archive;
  opt.save(opt_archive);
  archive.write("optimizer", opt_archive);
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state());
  archive.write("step", c10::IValue(state.step));
  archive.write("data_epoch", c10::IValue(state.data.epoch));
  archive.write("data_cursor", c10::IValue(state.data.cursor));
  archive.write("scaler_scale", c10::IValue(state.scaler.scale));
  archive.write("scaler_good_steps", c10::IValue(state.scaler.good_steps));
  archive.write("scaler_skipped", c10::IValue(state.scaler.skipped_steps));
  {
    // LibTorch's writer must not see an exception (it would terminate in its destructor): the file
    // keeps the first error and commit() throws it.
    AtomicFile state_file((tmp / "trainer_state.pt").string(), "train");
    archive.save_to([&](const void* data, size_t n) { return state_file.write_deferred(data, n); });
    state_file.commit();
    manifest["trainer_state.pt"] = state_file.digest();
  }
  write_manifest(tmp.string(), manifest, "train");  // last: a folder with a manifest is whole
  folder.commit();
  auto all = complete_checkpoints(output_dir);
  for (size_t i = 0; keep_last > 0 && i + size_t(keep_last) < all.size(); ++i) fs::remove_all(all[i], ec);
}

std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
  const auto all = complete_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().string();
}

std::optional<std::string> latest_intact_checkpoint(const std::string& output_dir,
                                                    const std::function<void(const std::string&)>& warn) {
  const auto all = complete_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  std::string problems;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const std::string dir = it->string();
    const ManifestCheck check = verify_manifest(dir);
    if (check.status == ManifestCheck::Status::kOk) return dir;
    if (check.status == ManifestCheck::Status::kAbsent) {
      if (warn) warn("checkpoint " + dir + " is not verified: " + check.problem);
      return dir;
    }
    if (warn) warn("checkpoint " + dir + " is damaged (" + check.problem + "); trying an older one");
    problems += (problems.empty() ? "" : "; ") + it->filename().string() + ": " + check.problem;
  }
  TORCH_CHECK(false, "train: no intact checkpoint to resume from in ", (fs::path(output_dir) / "checkpoints").string(),
              " (", problems, "); start again with output.overwrite=true");
}

TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& opt) {
  const fs::path params_path = fs::path(dir) / "params.safetensors", state_path = fs::path(dir) / "trainer_state.pt";
  TORCH_CHECK(fs::exists(params_path) && fs::exists(state_path), "resume: checkpoint ", dir,
              " is incomplete (needs params.safetensors and trainer_state.pt)");
  const auto file = io::SafetensorsFile::open(params_path.string());
  {
    at::NoGradGuard no_grad;
    for (auto& [name, p] : trainable(model)) {
      TORCH_CHECK(file.contains(name), "resume: checkpoint ", dir, " lacks trainable parameter '", name,
                  "' (was it written by another recipe?)");
      const at::Tensor saved = file.tensor(name);
      TORCH_CHECK(saved.sizes() == p.sizes(), "resume: ", dir, ": '", name, "' has shape ", saved.sizes(),
                  " but the model's is ", p.sizes());
      p.copy_(saved);
    }
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(state_path.string());
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "resume: cannot read ", state_path.string(), " (", e.what_without_backtrace(), ")");
  }
  torch::serialize::InputArchive opt_archive;
  archive.read("optimizer", opt_archive);
  opt.load(opt_archive);
  at::Tensor rng;
  archive.read("rng", rng);
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng);
  TrainerState s;
  c10::IValue v;
  archive.read("step", v);
  s.step = v.toInt();
  archive.read("data_epoch", v);
  s.data.epoch = v.toInt();
  archive.read("data_cursor", v);
  s.data.cursor = v.toInt();
  archive.read("scaler_scale", v);
  s.scaler.scale = v.toDouble();
  archive.read("scaler_good_steps", v);
  s.scaler.good_steps = v.toInt();
  archive.read("scaler_skipped", v);
  s.scaler.skipped_steps = v.toInt();
  return s;
}

}  // namespace mft::train
