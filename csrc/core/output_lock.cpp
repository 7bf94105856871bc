#include "core/output_lock.h"

#include "core/file_io.h"
#include "core/json_parse.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mft {
namespace fs = std::filesystem;

namespace {
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<LockOwner> parse_lock(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  LockOwner o;
  o.heartbeat_age_s = std::difftime(std::time(nullptr), st.st_mtime);
  try {
    const nlohmann::json j = parse_json(read_text(path));
    o.host = j.value("host", "");
    o.pid = j.value("pid", 0L);
    o.started = j.value("started", int64_t{0});
    o.command = j.value("command", "");
  } catch (const std::exception&) {
    // Unreadable content: judged by its heartbeat alone (host and pid stay unknown).
  }
  return o;
}

bool is_stale(const LockOwner& o) {
  if (!o.host.empty() && o.host == host_name()) return !process_alive(o.pid);
  return o.heartbeat_age_s > double(std::chrono::duration_cast<std::chrono::seconds>(kLockStaleAfter).count());
}

std::string identity_of(const LockOwner& o) {
  return o.host + "/" + std::to_string(o.pid) + "/" + std::to_string(o.started);
}

// Creates `lock` holding `text`, atomically and only if it does not exist: false when it exists.
bool create_whole(const std::string& lock, const std::string& text, const std::string& command) {
  const std::string tmp = temporary_path(lock);
  write_file_atomically(tmp, text, command);
  const int rc = ::link(tmp.c_str(), lock.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  throw std::runtime_error(command + ": cannot create the lock " + lock + ": " + io_error_text(err));
}
}  // namespace

std::string LockOwner::describe() const {
  char when[32] = "unknown time";
  const std::time_t t = static_cast<std::time_t>(started);
  std::tm tm{};
  if (started > 0 && ::localtime_r(&t, &tm) != nullptr) std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
  std::ostringstream s;
  s << (command.empty() ? "a mamba-ft run" : "mamba-ft " + command) << " (pid " << pid << " on "
    << (host.empty() ? "an unknown host" : host) << ", started " << when << ", heartbeat "
    << static_cast<long>(heartbeat_age_s) << " s ago)";
  return s.str();
}

std::optional<LockOwner> read_output_lock(const std::string& dir) {
  return parse_lock((fs::path(dir) / kLockFileName).string());
}

OutputLock::OutputLock(const std::string& dir, const std::string& command,
                       const std::function<void(const std::string&)>& note)
    : path_((fs::path(dir) / kLockFileName).string()) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error(command + ": cannot create the output folder " + dir + ": " + io_error_text(ec.value()));
  LockOwner me;
  me.host = host_name();
  me.pid = ::getpid();
  me.started = std::time(nullptr);
  me.command = command;
  identity_ = identity_of(me);
  const std::string text =
      nlohmann::json{{"host", me.host}, {"pid", me.pid}, {"started", me.started}, {"command", command}}.dump() + "\n";
  // Two tries: the second follows taking over a stale lock (or a lock released meanwhile).
  for (int attempt = 0; !create_whole(path_, text, command); ++attempt) {
    const std::optional<LockOwner> owner = parse_lock(path_);
    if (owner && (!is_stale(*owner) || attempt > 0)) {
      throw std::runtime_error(command + ": output folder " + dir + " is in use by " + owner->describe() +
                               "; wait for it to finish or choose another folder");
    }
    if (attempt > 0) throw std::runtime_error(command + ": cannot take the lock " + path_);
    if (!owner) continue;  // released in between
    // Stale: move it aside under a name of our own and check that it is the one judged stale (another
    // run may have taken it over meanwhile; then its lock goes back and this run fails).
    const std::string aside = temporary_path(path_ + ".stale");
    if (::rename(path_.c_str(), aside.c_str()) != 0) continue;
    const std::optional<LockOwner> moved = parse_lock(aside);
    if (moved && identity_of(*moved) != identity_of(*owner)) {
      (void)::link(aside.c_str(), path_.c_str());
      ::unlink(aside.c_str());
      throw std::runtime_error(command + ": output folder " + dir + " is in use by " + moved->describe());
    }
    ::unlink(aside.c_str());
    if (note) note("took over the stale lock of " + owner->describe() + " in " + dir);
  }
  heartbeat_ = std::thread([this] { beat(); });
}

void OutputLock::beat() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, kLockHeartbeat, [this] { return stopping_; })) {
    ::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0);  // mtime = now
  }
}

OutputLock::~OutputLock() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  const std::optional<LockOwner> owner = parse_lock(path_);
  if (owner && identity_of(*owner) == identity_) ::unlink(path_.c_str());
}

}  // namespace mft
