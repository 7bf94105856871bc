#pragma once
// One owner per output folder. A run takes DIR/.mamba-ft.lock before writing anything there and holds it
// to the end; the file (created whole with link(2), which is atomic where O_EXCL is not: NFS) records
// {"host", "pid", "started", "command"}, and its modification time is a heartbeat refreshed every 30 s.
// A lock is stale when its pid is gone on this host, or when its heartbeat is over 10 minutes old (a run
// on another host of a shared file system); a stale lock is taken over with a note. A live one makes the
// second run fail at once, naming the owner. No LibTorch: every command and later worker processes use it.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace mft {

constexpr const char* kLockFileName = ".mamba-ft.lock";
constexpr auto kLockHeartbeat = std::chrono::seconds(30);
// Twenty missed heartbeats: a live run refreshes every 30 s even while a step takes minutes.
constexpr auto kLockStaleAfter = std::chrono::minutes(10);

struct LockOwner {
  std::string host, command;
  long pid = 0;
  int64_t started = 0;           // Unix seconds
  double heartbeat_age_s = 0;    // seconds since the lock file was last touched
  std::string describe() const;  // "train (pid 123 on host-a, started 2026-12-07 10:00:00, heartbeat 12 s ago)"
};

// The owner recorded in DIR's lock file, if there is one.
std::optional<LockOwner> read_output_lock(const std::string& dir);

class OutputLock {
 public:
  // Creates DIR (and parents) if needed and takes its lock for `command`; throws std::runtime_error
  // "<command>: output folder DIR is in use by <owner>" when a live run holds it. `note` hears about a
  // stale lock taken over.
  OutputLock(const std::string& dir, const std::string& command,
             const std::function<void(const std::string&)>& note = {});
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  ~OutputLock();  // stops the heartbeat and removes the lock file if it is still ours

  const std::string& path() const { return path_; }

 private:
  void beat();

  std::string path_, identity_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace mft
