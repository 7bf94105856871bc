#include "core/file_io.h"

#include "core/crc32c.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

namespace mft {
namespace fs = std::filesystem;

namespace {
constexpr const char* kTempMarker = ".tmp-";
// Another host's temporary is only judged by its age: a day without a write is no live run.
constexpr auto kForeignTempAge = std::chrono::hours(24);

// "HOST-PID" of a temporary's name ("" when `name` is not one of ours), split at the last '-'.
bool parse_temporary(const std::string& name, std::string& host, long& pid) {
  const size_t at = name.rfind(kTempMarker);
  if (at == std::string::npos || at == 0) return false;
  const std::string tail = name.substr(at + std::strlen(kTempMarker));
  const size_t dash = tail.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == tail.size()) return false;
  const std::string digits = tail.substr(dash + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return false;
  host = tail.substr(0, dash);
  pid = std::stol(digits);
  return true;
}

// Removes stale temporaries of `path` (its own NAME.tmp-* siblings).
void clean_siblings(const std::string& path) {
  fs::path p = path;
  while (p.has_filename() == false && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  const fs::path parent = p.parent_path();
  remove_stale_temporaries(parent.empty() ? "." : parent.string(), p.filename().string());
}

// The newest modification time of `p` and, for a folder, of what is directly inside it.
fs::file_time_type last_write(const fs::path& p) {
  std::error_code ec;
  auto newest = fs::last_write_time(p, ec);
  if (fs::is_directory(p, ec)) {
    for (const auto& e : fs::directory_iterator(p, ec)) newest = std::max(newest, fs::last_write_time(e.path(), ec));
  }
  return newest;
}
}  // namespace

std::string io_error_text(int err) {
  std::string s = std::strerror(err);
  switch (err) {
    case ENOSPC:
      return s + " (the disk is full: free space or write elsewhere)";
    case EDQUOT:
      return s + " (disk quota exceeded)";
    case EROFS:
      return s + " (the file system is read-only)";
    case EACCES:
    case EPERM:
      return s + " (no permission to write there)";
    case EFBIG:
      return s + " (file size limit reached)";
    default:
      return s;
  }
}

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h = buf;
  for (char& c : h) {
    if (c == '/' || c == ' ') c = '_';  // safe inside a file name
  }
  return h;
}

bool process_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string temporary_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p + kTempMarker + host_name() + "-" + std::to_string(::getpid());
}

// ---- AtomicFile ------------------------------------------------------------------------------------
AtomicFile::AtomicFile(std::string path, std::string who)
    : path_(std::move(path)), who_(std::move(who)), tmp_(temporary_path(path_)) {
  if (path_.empty()) throw std::runtime_error(who_ + ": the output path is empty");
  std::error_code ec;
  if (fs::is_directory(path_, ec)) {
    throw std::runtime_error(who_ + ": cannot write " + path_ + ": it is a folder (expected a file name)");
  }
  clean_siblings(path_);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    const fs::path parent = fs::path(path_).parent_path();
    if (err == ENOENT && !parent.empty() && !fs::is_directory(parent, ec)) {
      throw std::runtime_error(who_ + ": cannot write " + path_ + ": folder " + parent.string() + " does not exist");
    }
    throw std::runtime_error(who_ + ": cannot write " + path_ + ": " + io_error_text(err));
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const std::string& what, int err) {
  discard();
  committed_ = true;  // nothing left to clean up
  throw std::runtime_error(who_ + ": " + what + " " + path_ + ": " + io_error_text(err));
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd_ < 0) throw std::runtime_error(who_ + ": " + path_ + " was already closed");
  const auto* p = static_cast<const char*>(data);
  crc_ = crc32c_extend(crc_, p, n);
  bytes_ += n;
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("cannot write", w < 0 ? errno : ENOSPC);
    p += w;
    n -= size_t(w);
  }
}

size_t AtomicFile::write_deferred(const void* data, size_t n) noexcept {
  if (deferred_errno_ != 0 || fd_ < 0) return n;
  const auto* p = static_cast<const char*>(data);
  crc_ = crc32c_extend(crc_, p, n);
  bytes_ += n;
  for (size_t left = n; left > 0;) {
    const ssize_t w = ::write(fd_, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      deferred_errno_ = w < 0 ? errno : ENOSPC;
      break;
    }
    p += w;
    left -= size_t(w);
  }
  return n;
}

void AtomicFile::commit() {
  if (committed_) throw std::runtime_error(who_ + ": " + path_ + " was already committed");
  if (deferred_errno_ != 0) fail("cannot write", deferred_errno_);
  if (::fsync(fd_) != 0 && errno != EINVAL) fail("cannot write", errno);  // EINVAL: no fsync here (pipes)
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) fail("cannot write", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot move the finished file to", errno);
  committed_ = true;
}

FileDigest write_file_atomically(const std::string& path, const std::string& text, const std::string& who) {
  AtomicFile f(path, who);
  f.write(text);
  f.commit();
  return f.digest();
}

FileDigest digest_file(const std::string& path, const std::string& who) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw std::runtime_error(who + ": cannot read " + path + ": " + std::strerror(err));
  }
  constexpr size_t kChunk = size_t(1) << 20;  // large enough to stream at disk speed
  std::vector<char> buf(kChunk);
  FileDigest d;
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(who + ": cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    d.crc32c = crc32c_extend(d.crc32c, buf.data(), size_t(n));
    d.bytes += uint64_t(n);
  }
  ::close(fd);
  return d;
}

// ---- AtomicDir -------------------------------------------------------------------------------------
AtomicDir::AtomicDir(std::string dir, std::string who)
    : dir_(std::move(dir)), who_(std::move(who)), tmp_(temporary_path(dir_)) {
  if (dir_.empty()) throw std::runtime_error(who_ + ": the output folder is empty");
  std::error_code ec;
  if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec)) {
    throw std::runtime_error(who_ + ": cannot write " + dir_ + ": it exists and is not a folder");
  }
  clean_siblings(dir_);
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  if (ec) throw std::runtime_error(who_ + ": cannot write " + dir_ + ": " + io_error_text(ec.value()));
}

AtomicDir::~AtomicDir() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(tmp_, ignored);
}

void AtomicDir::commit() {
  std::error_code ec;
  if (::rename(tmp_.c_str(), dir_.c_str()) == 0) {
    committed_ = true;
    return;
  }
  if (errno != ENOTEMPTY && errno != EEXIST) {
    const int err = errno;
    throw std::runtime_error(who_ + ": cannot move the finished folder to " + dir_ + ": " + io_error_text(err));
  }
  // DIR exists: exchange the two atomically, then the temporary name holds the old content.
  if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS) {
      const int err = errno;
      throw std::runtime_error(who_ + ": cannot replace " + dir_ + ": " + io_error_text(err));
    }
    // No exchange on this file system (NFS): move the old folder aside under a temporary name first.
    const std::string aside = temporary_path(dir_ + ".old");
    fs::remove_all(aside, ec);
    if (::rename(dir_.c_str(), aside.c_str()) != 0 || ::rename(tmp_.c_str(), dir_.c_str()) != 0) {
      const int err = errno;
      throw std::runtime_error(who_ + ": cannot replace " + dir_ + ": " + io_error_text(err));
    }
    fs::remove_all(aside, ec);
    committed_ = true;
    return;
  }
  committed_ = true;
  fs::remove_all(tmp_, ec);
}

// ---- AppendFile ------------------------------------------------------------------------------------
AppendFile::AppendFile(std::string path, std::string who, bool truncate)
    : path_(std::move(path)), who_(std::move(who)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
  if (fd_ < 0) {
    const int err = errno;
    throw std::runtime_error(who_ + ": cannot write " + path_ + ": " + io_error_text(err));
  }
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(const std::string& text) {
  const char* p = text.data();
  size_t n = text.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      throw std::runtime_error(who_ + ": cannot write " + path_ + ": " + io_error_text(err));
    }
    p += w;
    n -= size_t(w);
  }
}

// ---- stale temporaries -----------------------------------------------------------------------------
int remove_stale_temporaries(const std::string& dir, const std::string& name) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  const std::string prefix = name.empty() ? "" : name + kTempMarker;
  const std::string me = host_name();
  const auto now = fs::file_time_type::clock::now();
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string host;
    long pid = 0;
    const std::string entry = e.path().filename().string();
    if (!prefix.empty() && entry.rfind(prefix, 0) != 0) continue;
    if (!parse_temporary(entry, host, pid)) continue;
    const bool stale = host == me ? !process_alive(pid) : now - last_write(e.path()) > kForeignTempAge;
    if (!stale) continue;
    std::error_code rm;
    if (fs::remove_all(e.path(), rm) > 0 && !rm) ++removed;
  }
  return removed;
}

}  // namespace mft
