#pragma once
// A folder's manifest: manifest.json, written last, listing each file's size and CRC32C as computed
// while the file was written. Verifying re-reads every listed file; a flipped byte, a truncated or a
// missing file is found. Checkpoints carry one (train/checkpoint.h). No LibTorch.
#include "core/file_io.h"

#include <map>
#include <string>

namespace mft {

constexpr const char* kManifestName = "manifest.json";

// file name (inside the folder) -> what was written.
using Manifest = std::map<std::string, FileDigest>;

// Writes DIR/manifest.json atomically.
void write_manifest(const std::string& dir, const Manifest& files, const std::string& who);

struct ManifestCheck {
  enum class Status { kOk, kAbsent, kBad } status = Status::kOk;
  std::string problem;  // kBad: "params.safetensors: CRC32C 1a2b3c4d, expected 5e6f7a8b"; kAbsent: why
};

// Re-reads every file DIR/manifest.json lists and compares sizes and checksums.
ManifestCheck verify_manifest(const std::string& dir);

}  // namespace mft
