#pragma once
// A minimal reader of *stored* (uncompressed) ZIP archives, as written by torch.save
// (../shared/reference/formats.md §2.1): end of central directory (EOCD), ZIP64 EOCD locator and record,
// central directory entries with their ZIP64 extra fields, and local headers whose extra field pads the
// data to an aligned offset. The file is memory-mapped once; every offset and size read from it is
// checked against the mapping before use, so a corrupt or hostile archive gives a c10::Error naming the
// file, the field, the value and what was expected, never an out-of-bounds read.
//
// Not supported (refused with a clear error when such an entry is read): compressed entries (deflate,
// ...), encrypted entries, multi-disk archives. CRC-32s are not verified: that would read every byte of a
// multi-GB checkpoint up front and defeat the mapping; the structure checks catch truncation.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mft::io {

// One member of the archive, as listed by the central directory.
struct ZipEntry {
  std::string name;     // full path inside the archive, e.g. "archive/data/0"
  uint16_t method = 0;  // 0 = stored; anything else is refused by ZipArchive::bytes()
  uint16_t flags = 0;   // general purpose bit flags (bit 0: encrypted)
  uint64_t compressed_size = 0;
  uint64_t size = 0;         // uncompressed size
  uint64_t data_offset = 0;  // file offset of the first data byte (after the local header and its extra field)
};

class ZipArchive {
 public:
  // Maps and validates `path` (EOCD, ZIP64 records, every central directory entry and its local header);
  // throws a c10::Error naming the file and the problem.
  static ZipArchive open(const std::string& path);

  const std::string& path() const { return path_; }
  // Entries in central directory order (torch.save writes data.pkl first).
  const std::vector<ZipEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const ZipEntry& entry(const std::string& name) const;

  // The bytes of a stored entry, inside the mapping: valid while this archive or any copy of keep_alive()
  // lives. The mapping is private and writable (copy-on-write): writing through the pointer never changes
  // the file. Compressed or encrypted entries are refused with an error naming the entry and the method.
  std::pair<const uint8_t*, size_t> bytes(const std::string& name) const;
  // Same for tensors that alias the mapping: a writable pointer to the entry's bytes.
  uint8_t* mutable_data(const std::string& name) const;

  // Owner of the mapping, for zero-copy tensors whose deleter must keep it alive.
  std::shared_ptr<void> keep_alive() const { return map_; }

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t> index_;  // name -> position in entries_
};

}  // namespace mft::io
