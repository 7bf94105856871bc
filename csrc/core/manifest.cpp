#include "core/manifest.h"

#include "core/crc32c.h"
#include "core/json_parse.h"

#include <filesystem>

namespace mft {
namespace fs = std::filesystem;

namespace {
constexpr const char* kFormat = "mamba-ft-manifest/1";
}  // namespace

void write_manifest(const std::string& dir, const Manifest& files, const std::string& who) {
  nlohmann::json list = nlohmann::json::object();
  for (const auto& [name, d] : files) list[name] = {{"bytes", d.bytes}, {"crc32c", crc32c_hex(d.crc32c)}};
  const nlohmann::json j = {{"format", kFormat}, {"files", list}};
  write_file_atomically((fs::path(dir) / kManifestName).string(), j.dump(1) + "\n", who);
}

ManifestCheck verify_manifest(const std::string& dir) {
  ManifestCheck c;
  const fs::path path = fs::path(dir) / kManifestName;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    c.status = ManifestCheck::Status::kAbsent;
    c.problem = "it has no " + std::string(kManifestName) + " (written before checksums existed)";
    return c;
  }
  auto bad = [&](const std::string& problem) {
    c.status = ManifestCheck::Status::kBad;
    c.problem = problem;
    return c;
  };
  const nlohmann::json j = try_load_json_file(path.string());
  if (!j.is_object() || j.value("format", "") != kFormat || !j.contains("files") || !j["files"].is_object()) {
    return bad(std::string(kManifestName) + " is damaged");
  }
  for (const auto& [name, entry] : j["files"].items()) {
    if (name.empty() || name.find('/') != std::string::npos || !entry.is_object() || !entry.contains("bytes") ||
        !entry["bytes"].is_number_unsigned() || !entry.contains("crc32c") || !entry["crc32c"].is_string()) {
      return bad(std::string(kManifestName) + " is damaged (entry \"" + json_excerpt(nlohmann::json(name)) + "\")");
    }
    const fs::path file = fs::path(dir) / name;
    if (!fs::exists(file, ec)) return bad(name + " is missing");
    FileDigest d;
    try {
      d = digest_file(file.string(), "verify");
    } catch (const std::exception& e) {
      return bad(e.what());
    }
    const uint64_t want_bytes = entry["bytes"].get<uint64_t>();
    if (d.bytes != want_bytes) {
      return bad(name + " has " + std::to_string(d.bytes) + " bytes, expected " + std::to_string(want_bytes));
    }
    const std::string want_crc = entry["crc32c"].get<std::string>();
    if (crc32c_hex(d.crc32c) != want_crc) {
      return bad(name + ": CRC32C " + crc32c_hex(d.crc32c) + ", expected " + want_crc);
    }
  }
  return c;
}

}  // namespace mft
