#pragma once
// Outputs that appear whole or not at all, and clear errors when the disk says no.
//   AtomicFile: PATH.tmp-HOST-PID written with checked write(2) calls (a CRC32C kept on the way), fsync'd
//               and renamed onto PATH; removed when not committed (an error, an exception unwinding).
//   AtomicDir:  a folder built as DIR.tmp-HOST-PID and swapped into place whole.
// Every failure throws std::runtime_error "<who>: cannot write <path>: <reason>[ (hint)]": ENOSPC, EDQUOT,
// EIO, EROFS, EACCES, ... say so in words. Temporaries of dead processes are found by
// remove_stale_temporaries (same host: the pid is gone; another host: a day old).
#include <cstddef>
#include <cstdint>
#include <string>

namespace mft {

// What was written to a file: its size and CRC32C (core/crc32c.h), for checkpoint manifests.
struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

// strerror(err) plus a hint for the errors a user can act on (full disk, quota, read-only file system).
std::string io_error_text(int err);

// The temporary name this process uses for `path`: PATH.tmp-HOST-PID.
std::string temporary_path(const std::string& path);

class AtomicFile {
 public:
  // Opens the temporary file at once, so an unwritable destination fails before any long work. Stale
  // temporaries of the same destination (a killed run's) are removed first.
  AtomicFile(std::string path, std::string who);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // not committed: closed and removed

  // Appends n bytes; throws (and removes the temporary file) when the system refuses.
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // For writers that must not see an exception (LibTorch's archive writers would terminate): the first
  // error is kept, later bytes are dropped, and commit() throws it. Always returns n.
  size_t write_deferred(const void* data, size_t n) noexcept;

  // fsync, close, rename onto the destination. Throws on any error (the temporary file is removed).
  void commit();

  const std::string& path() const { return path_; }
  FileDigest digest() const { return {bytes_, crc_}; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  void discard() noexcept;

  std::string path_, who_, tmp_;
  int fd_ = -1;
  uint64_t bytes_ = 0;
  uint32_t crc_ = 0;
  int deferred_errno_ = 0;
  bool committed_ = false;
};

// `text` written to `path` through an AtomicFile.
FileDigest write_file_atomically(const std::string& path, const std::string& text, const std::string& who);

// Size and CRC32C of a file as it is on disk (reads it whole); throws "<who>: cannot read <path>: ...".
FileDigest digest_file(const std::string& path, const std::string& who);

class AtomicDir {
 public:
  // Creates DIR.tmp-HOST-PID (its parent folders too; stale ones of DIR removed); the caller fills
  // path_to_fill().
  AtomicDir(std::string dir, std::string who);
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  ~AtomicDir();  // not committed: the temporary folder is removed

  const std::string& path_to_fill() const { return tmp_; }
  // Puts the folder in place: a new DIR by rename, an existing one exchanged atomically
  // (renameat2 RENAME_EXCHANGE, where the file system has it) and then removed.
  void commit();

 private:
  std::string dir_, who_, tmp_;
  bool committed_ = false;
};

// A log file appended to line by line: each append is one checked write(2) (nothing waits in a buffer,
// so a killed run loses no logged line, and a full disk is an error at the line that did not fit).
class AppendFile {
 public:
  // Opens (creating) `path`; `truncate` empties it first.
  AppendFile(std::string path, std::string who, bool truncate);
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  ~AppendFile();

  void append(const std::string& text);  // throws "<who>: cannot write <path>: <reason>"

 private:
  std::string path_, who_;
  int fd_ = -1;
};

// Removes, directly inside `dir`, the *.tmp-HOST-PID files and folders of processes that are gone: on
// this host when PID no longer exists, from another host when untouched for a day (a shared file system).
// Returns how many were removed; errors are ignored (this is cleaning, not work).
// With `name`, only the temporaries of that one file or folder (NAME.tmp-*).
int remove_stale_temporaries(const std::string& dir, const std::string& name = "");

// This machine's host name (gethostname), "localhost" when it has none.
std::string host_name();

// Whether process `pid` exists on this host (kill(pid, 0): EPERM counts as alive).
bool process_alive(long pid);

}  // namespace mft
