// `mamba-ft info [--json]`: versions, CUDA/cuDNN, threads, the op library and every registered op.
#include "commands.h"
#include "core/library_info.h"
#include "models/model_info.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

namespace mft::app {
namespace {
struct Info {
  bool cuda_available = false;
  int cuda_devices = 0;
  std::string cudnn = "n/a";
};

Info probe() {
  Info i;
  // hasCUDA() is false without libtorch_cuda loaded or without a driver/GPU: never an error here.
  if (at::hasCUDA()) {
    i.cuda_available = true;
    i.cuda_devices = static_cast<int>(at::detail::getCUDAHooks().deviceCount());
    if (at::globalContext().hasCuDNN()) {
      const long v = at::detail::getCUDAHooks().versionCuDNN();
      i.cudnn = fmt::format("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100);
    }
  }
  return i;
}

int run_info(bool json) {
  const Info i = probe();
  const auto ops = registered_ops();
  if (json) {
    nlohmann::json j;
    j["mamba_ft_version"] = version();
    j["libtorch_version"] = TORCH_VERSION;
    j["cuda"] = {{"compiled", built_with_cuda()}, {"available", i.cuda_available}, {"devices", i.cuda_devices}};
    j["cudnn"] = i.cudnn;
    j["threads"] = at::get_num_threads();
    j["kernel_threads_used"] = kernel_threads_used();
    j["op_library"] = op_library_path();
    j["ops"] = nlohmann::json::object();
    for (const auto& op : ops) j["ops"][op.name] = op.keys;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("mamba-ft     {}\n", version());
  fmt::print("LibTorch     {}\n", TORCH_VERSION);
  fmt::print("CUDA         compiled: {}, available: {} ({} devices)\n", built_with_cuda() ? "yes" : "no",
             i.cuda_available ? "yes" : "no", i.cuda_devices);
  fmt::print("cuDNN        {}\n", i.cudnn);
  fmt::print("threads      {} (kernels ran on {})\n", at::get_num_threads(), kernel_threads_used());
  fmt::print("op library   {}\n", op_library_path());
  fmt::print("ops ({}):\n", ops.size());
  for (const auto& op : ops) fmt::print("  {:<30} {}\n", op.name, fmt::join(op.keys, " "));
  return 0;
}
int run_model_info(const std::string& dir, bool json) {
  const auto m = models::describe_model(dir);
  if (json) {
    nlohmann::json j;
    j["model"] = m.dir;
    j["family"] = m.family;
    j["sizes"] = m.sizes;
    j["parameters"] = m.parameters;
    j["checkpoint_dtypes"] = m.checkpoint_dtypes;
    j["tokenizer"] = m.has_tokenizer;
    j["files_read"] = m.files;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("model        {}\n", m.dir);
  fmt::print("family       {}\n", m.family);
  for (const auto& [k, v] : m.sizes) fmt::print("  {:<22} {}\n", k, v);
  fmt::print("parameters   {} ({:.1f} M)\n", m.parameters, m.parameters / 1e6);
  std::vector<std::string> dtypes;
  for (const auto& [d, n] : m.checkpoint_dtypes) dtypes.push_back(fmt::format("{} x{}", d, n));
  fmt::print("dtypes       {}\n", fmt::join(dtypes, ", "));
  fmt::print("tokenizer    {}\n", m.has_tokenizer ? "tokenizer.json" : "none");
  fmt::print("files read   {}\n", fmt::join(m.files, "\n             "));
  return 0;
}
}  // namespace

Runner add_info(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "info", "Versions, CUDA, threads, the op library and its ops; or, given MODEL, what that model folder holds");
  auto json = std::make_shared<bool>(false);
  auto model = std::make_shared<std::string>();
  sub->add_option("MODEL", *model, "HF model folder (config.json + weights) or preset:NAME");
  sub->add_flag("--json", *json, "Print as JSON");
  return [json, model] { return model->empty() ? run_info(*json) : run_model_info(*model, *json); };
}

}  // namespace mft::app
