#pragma once
// Output files that appear whole or not at all.
#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace mft::app {

// An output file written atomically: PATH.tmp-PID is opened before the (possibly long) work, so an
// unwritable path fails at once; the results go there and are renamed into place, so readers never see
// half a file. Removed if not committed. `command` prefixes error messages.
class AtomicOutput {
 public:
  AtomicOutput(std::string path, std::string command)
      : path_(std::move(path)), command_(std::move(command)), tmp_(fmt::format("{}.tmp-{}", path_, ::getpid())) {
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_.is_open())
      throw std::runtime_error(fmt::format("{}: cannot write {}: {}", command_, path_, std::strerror(errno)));
  }
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  ~AtomicOutput() {
    if (committed_) return;
    out_.close();
    std::error_code ignored;
    std::filesystem::remove(tmp_, ignored);
  }

  void commit(const std::string& text) {
    out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    out_.close();
    if (!out_) throw std::runtime_error(fmt::format("{}: cannot write {} (disk full?)", command_, tmp_));
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) throw std::runtime_error(fmt::format("{}: cannot rename {} to {}: {}", command_, tmp_, path_, ec.message()));
    committed_ = true;
  }

 private:
  std::string path_, command_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

}  // namespace mft::app
