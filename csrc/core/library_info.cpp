#include "core/library_info.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <dlfcn.h>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#ifndef MFT_VERSION
#error "MFT_VERSION must be defined by the build"
#endif

namespace mft {

std::string version() {
  return MFT_VERSION;
}

std::string op_library_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&op_library_path), &info) == 0 || info.dli_fname == nullptr) return "";
  char resolved[PATH_MAX];
  return realpath(info.dli_fname, resolved) != nullptr ? std::string(resolved) : std::string(info.dli_fname);
}

bool built_with_cuda() {
#ifdef MFT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int kernel_threads_used() {
  std::mutex mu;
  std::set<std::thread::id> ids;
  const int64_t tasks = 64 * int64_t(at::get_num_threads());
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    volatile double sink = 0;
    for (int64_t i = begin; i < end; ++i) {
      for (int k = 0; k < 20000; ++k) sink = sink + double(k);  // long enough for every thread to join in
    }
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  return static_cast<int>(ids.size());
}

namespace {
struct KeyName {
  c10::DispatchKey key;
  const char* name;
};
const std::vector<KeyName>& keys() {
  static const std::vector<KeyName> k = {{c10::DispatchKey::CPU, "CPU"},
                                         {c10::DispatchKey::CUDA, "CUDA"},
                                         {c10::DispatchKey::Autograd, "Autograd"},
                                         {c10::DispatchKey::AutocastCPU, "AutocastCPU"},
                                         {c10::DispatchKey::AutocastCUDA, "AutocastCUDA"},
                                         // Kernels written with ATen ops serve every backend.
                                         {c10::DispatchKey::CompositeExplicitAutograd, "CompositeExplicitAutograd"}};
  return k;
}
}  // namespace

const std::vector<std::string>& reported_dispatch_keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& k : keys()) n.emplace_back(k.name);
    return n;
  }();
  return names;
}

std::vector<RegisteredOp> registered_ops() {
  std::vector<RegisteredOp> ops;
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const auto& op_name : dispatcher.getAllOpNames()) {
    if (op_name.name.rfind("mft::", 0) != 0) continue;
    const auto handle = dispatcher.findOp(op_name);
    if (!handle) continue;
    RegisteredOp r;
    r.name = op_name.overload_name.empty() ? op_name.name : op_name.name + "." + op_name.overload_name;
    for (const auto& k : keys()) {
      if (handle->hasKernelForDispatchKey(k.key)) r.keys.emplace_back(k.name);
    }
    ops.push_back(std::move(r));
  }
  std::sort(ops.begin(), ops.end(), [](const RegisteredOp& a, const RegisteredOp& b) { return a.name < b.name; });
  return ops;
}

}  // namespace mft
