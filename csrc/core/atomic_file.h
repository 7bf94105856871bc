#pragma once
// Text files that appear whole or not at all: written to PATH.tmp-PID, flushed, then renamed into place,
// so a reader (or a crash) never sees half a file. Errors name `who` (the caller, e.g. "train"), the
// path and the system's reason; the temporary file is removed on failure.
#include <string>

namespace mft {

void write_file_atomically(const std::string& path, const std::string& text, const std::string& who);

}  // namespace mft
