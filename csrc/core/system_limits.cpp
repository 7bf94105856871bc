#include "core/system_limits.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace mft {
namespace {
// cgroup v1 writes "no limit" as a number near 2^63; anything above this is unlimited.
constexpr uint64_t kUnlimited = uint64_t(1) << 60;

// The first number in `path` ("max" and unreadable files: none).
bool read_number(const std::string& path, uint64_t& out) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word.empty() || word.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::strtoull(word.c_str(), nullptr, 10);
  return out < kUnlimited;
}

// kB value of a /proc/meminfo or /proc/self/status line.
uint64_t proc_kb(const char* file, const std::string& key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10) * 1024;
  }
  return 0;
}

// The smallest memory limit of this process's cgroup and its ancestors (v2 and v1 layouts), if any.
bool cgroup_limit(uint64_t& limit) {
  std::ifstream in("/proc/self/cgroup");
  bool found = false;
  limit = kUnlimited;
  for (std::string line; std::getline(in, line);) {
    // "0::/path" (v2) or "4:memory:/path" (v1).
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::string root, file;
    if (controllers.empty()) {
      root = "/sys/fs/cgroup";
      file = "memory.max";
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      root = "/sys/fs/cgroup/memory";
      file = "memory.limit_in_bytes";
    } else {
      continue;
    }
    // Walk up from the process's group to the root (inside a cgroup namespace the path may be "/").
    while (true) {
      uint64_t v = 0;
      if (read_number(root + path + (path == "/" ? "" : "/") + file, v)) {
        limit = std::min(limit, v);
        found = true;
      }
      if (path.empty() || path == "/") break;
      const size_t slash = path.rfind('/');
      path = slash == 0 ? "/" : path.substr(0, slash);
    }
  }
  return found;
}

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  return std::max(0, std::atoi(v));  // "4(x2)" (SLURM_TASKS_PER_NODE) reads as 4
}
}  // namespace

std::string format_bytes(double bytes) {
  char buf[32];
  if (bytes >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof(buf), "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  else
    std::snprintf(buf, sizeof(buf), "%.0f MiB", bytes / (1024.0 * 1024));
  return buf;
}

int local_ranks() {
  for (const char* name :
       {"LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_TASKS_PER_NODE"}) {
    if (const int n = env_int(name); n > 0) return n;
  }
  return 1;
}

int max_threads() {
  return 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

MemoryBudget memory_budget() {
  MemoryBudget b;
  const uint64_t rss = proc_kb("/proc/self/status", "VmRSS");
  const uint64_t available = proc_kb("/proc/meminfo", "MemAvailable") + rss;
  b.bytes = available;
  b.source = "MemAvailable " + format_bytes(double(available - rss)) + " + this process's " + format_bytes(double(rss));
  uint64_t limit = 0;
  if (cgroup_limit(limit) && limit < available) {
    b.bytes = limit;
    b.source = "cgroup memory limit " + format_bytes(double(limit));
  }
  b.local_ranks = local_ranks();
  b.bytes /= uint64_t(b.local_ranks);
  return b;
}

std::string MemoryBudget::describe() const {
  std::string s = format_bytes(double(bytes)) + " (" + source;
  if (local_ranks > 1) s += ", divided among " + std::to_string(local_ranks) + " local ranks";
  return s + ")";
}

}  // namespace mft
