#pragma once
// CRC32C (Castagnoli), the checksum of checkpoint manifests: SSE4.2's crc32 instruction where the build
// targets it, a table otherwise. crc32c("123456789") == 0xE3069283.
#include <cstddef>
#include <cstdint>
#include <string>

namespace mft {

// Extends `crc` (0 for a new stream) by `n` bytes.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);

// The table-driven version (what builds without SSE4.2 use; tests compare the two).
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n);

inline uint32_t crc32c(const void* data, size_t n) {
  return crc32c_extend(0, data, n);
}

// "e3069283": how manifests write a checksum.
std::string crc32c_hex(uint32_t crc);

}  // namespace mft
