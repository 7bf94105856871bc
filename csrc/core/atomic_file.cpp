#include "core/atomic_file.h"

#include <c10/util/Exception.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace mft {

void write_file_atomically(const std::string& path, const std::string& text, const std::string& who) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  bool ok = false;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(out.is_open(), who, ": cannot write ", path, ": ", std::strerror(errno));
    out << text;
    out.flush();
    ok = out.good();
  }
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, path, ec);
  if (!ok || ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    TORCH_CHECK(false, who, ": writing ", path, " failed", ec ? ": " + ec.message() : std::string());
  }
}

}  // namespace mft
