#include "io/zip_reader.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mft::io {
namespace {
// Record signatures and fixed sizes (PKWARE APPNOTE.TXT 4.3).
constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kLocalHeaderBytes = 30;
constexpr uint64_t kCentralHeaderBytes = 46;
constexpr uint64_t kEocdBytes = 22;
constexpr uint64_t kZip64EocdBytes = 56;
constexpr uint64_t kZip64LocatorBytes = 20;
// The EOCD ends with a comment of at most 65535 bytes, so it starts within this distance of the end.
constexpr uint64_t kMaxEocdSearch = kEocdBytes + 0xffff;
// Extra field id of the ZIP64 extended information (sizes and offset that do not fit 32 bits).
constexpr uint16_t kZip64ExtraId = 0x0001;
// A 32-bit (16-bit) field holding all ones means "see the ZIP64 record / extra field".
constexpr uint32_t kZip64Marker32 = 0xffffffff;
constexpr uint16_t kZip64Marker16 = 0xffff;

uint16_t u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t u64(const uint8_t* p) {
  return uint64_t(u32(p)) | (uint64_t(u32(p + 4)) << 32);
}

// `offset + length <= limit` without overflow.
bool fits(uint64_t offset, uint64_t length, uint64_t limit) {
  return offset <= limit && length <= limit - offset;
}

std::string method_name(uint16_t method) {
  switch (method) {
    case 8:
      return "deflate";
    case 9:
      return "deflate64";
    case 12:
      return "bzip2";
    case 14:
      return "lzma";
    case 93:
      return "zstd";
    case 95:
      return "xz";
    default:
      return "method " + std::to_string(method);
  }
}

// The central directory's location, from the EOCD or, when present, the ZIP64 EOCD record.
struct Directory {
  uint64_t entries = 0, size = 0, offset = 0;
  uint64_t end = 0;  // file offset of the first byte after the central directory's slot (the end records)
};

Directory read_end_records(const std::string& path, const uint8_t* d, uint64_t size) {
  TORCH_CHECK(size >= kEocdBytes, "zip: ", path, " has ", size, " bytes; a ZIP archive needs at least the ", kEocdBytes,
              "-byte end of central directory record");
  // Search backwards: the last EOCD signature whose comment reaches exactly to the end of the file.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size > kMaxEocdSearch ? size - kMaxEocdSearch : 0;
  for (uint64_t pos = size - kEocdBytes + 1; pos-- > lowest;) {
    if (u32(d + pos) == kEocdSig && pos + kEocdBytes + u16(d + pos + 20) == size) {
      eocd = pos;
      break;
    }
  }
  TORCH_CHECK(eocd != UINT64_MAX, "zip: ", path,
              ": no end of central directory record in the last 64 KiB (truncated or not a ZIP archive)");
  const uint8_t* e = d + eocd;
  TORCH_CHECK(u16(e + 4) == 0 && u16(e + 6) == 0, "zip: ", path, ": multi-disk archives are not supported (disk ",
              u16(e + 4), ", central directory on disk ", u16(e + 6), ")");
  Directory dir{u16(e + 10), u32(e + 12), u32(e + 16), eocd};

  // torch.save always writes the ZIP64 records; other writers only when a field overflows.
  if (eocd >= kZip64LocatorBytes && u32(d + eocd - kZip64LocatorBytes) == kZip64LocatorSig) {
    const uint8_t* loc = d + eocd - kZip64LocatorBytes;
    const uint64_t rec = u64(loc + 8);
    TORCH_CHECK(u32(loc + 4) == 0 && u32(loc + 16) <= 1, "zip: ", path,
                ": multi-disk ZIP64 archives are not supported");
    TORCH_CHECK(fits(rec, kZip64EocdBytes, eocd - kZip64LocatorBytes), "zip: ", path, ": ZIP64 locator points at ", rec,
                " but the ZIP64 end record (", kZip64EocdBytes, " bytes) must end before the locator at ",
                eocd - kZip64LocatorBytes);
    const uint8_t* r = d + rec;
    TORCH_CHECK(u32(r) == kZip64EocdSig, "zip: ", path, ": no ZIP64 end of central directory record at offset ", rec,
                " (signature 0x", std::hex, u32(r), std::dec, ")");
    TORCH_CHECK(u32(r + 16) == 0 && u32(r + 20) == 0, "zip: ", path, ": multi-disk ZIP64 archives are not supported");
    dir = Directory{u64(r + 32), u64(r + 40), u64(r + 48), rec};
  } else {
    TORCH_CHECK(dir.entries != kZip64Marker16 && dir.size != kZip64Marker32 && dir.offset != kZip64Marker32,
                "zip: ", path,
                ": end of central directory defers to a ZIP64 record, but there is no ZIP64 locator before it");
  }
  TORCH_CHECK(fits(dir.offset, dir.size, dir.end), "zip: ", path, ": central directory at offset ", dir.offset,
              " with ", dir.size, " bytes runs past its end records at offset ", dir.end, " (truncated archive?)");
  TORCH_CHECK(dir.entries <= dir.size / kCentralHeaderBytes, "zip: ", path, ": central directory claims ", dir.entries,
              " entries but its ", dir.size, " bytes hold at most ", dir.size / kCentralHeaderBytes);
  return dir;
}

// Replaces the 32-bit fields that hold the ZIP64 marker with the values of the ZIP64 extra field, which
// lists only the overflowed fields, in this order: size, compressed size, local header offset.
void apply_zip64_extra(const std::string& where, const uint8_t* extra, uint64_t extra_len, ZipEntry& e,
                       uint64_t& local_offset) {
  bool need_size = e.size == kZip64Marker32, need_csize = e.compressed_size == kZip64Marker32,
       need_offset = local_offset == kZip64Marker32;
  uint64_t pos = 0;
  while (pos + 4 <= extra_len) {
    const uint16_t id = u16(extra + pos), len = u16(extra + pos + 2);
    TORCH_CHECK(fits(pos + 4, len, extra_len), where, ": extra field 0x", std::hex, id, std::dec, " of ", len,
                " bytes runs past the end of the ", extra_len, "-byte extra area");
    if (id == kZip64ExtraId) {
      const uint8_t* f = extra + pos + 4;
      uint64_t used = 0;
      const auto take = [&](bool needed, uint64_t& value, const char* field) {
        if (!needed) return;
        TORCH_CHECK(used + 8 <= len, where, ": ZIP64 extra field (", len, " bytes) lacks the 64-bit ", field);
        value = u64(f + used);
        used += 8;
      };
      take(need_size, e.size, "size");
      take(need_csize, e.compressed_size, "compressed size");
      take(need_offset, local_offset, "local header offset");
      need_size = need_csize = need_offset = false;
    }
    pos += 4 + len;
  }
  TORCH_CHECK(!need_size && !need_csize && !need_offset, where,
              ": a size or offset holds the ZIP64 marker 0xffffffff but there is no ZIP64 extra field");
}
}  // namespace

struct ZipArchive::Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data != nullptr) munmap(data, size);
  }
};

ZipArchive ZipArchive::open(const std::string& path) {
  ZipArchive z;
  z.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TORCH_CHECK(fd >= 0, "zip: cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  const int stat_rc = fstat(fd, &st);
  const uint64_t size = stat_rc == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  auto map = std::make_shared<Mapping>();
  int map_errno = 0;
  if (stat_rc == 0 && size > 0) {
    // Private, writable mapping: tensors over it can be modified without touching the file.
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      map->data = p;
      map->size = size;
    } else {
      map_errno = errno;
    }
  }
  ::close(fd);
  TORCH_CHECK(stat_rc == 0, "zip: cannot stat ", path);
  TORCH_CHECK(size >= kEocdBytes, "zip: ", path, " has ", size, " bytes; a ZIP archive needs at least the ", kEocdBytes,
              "-byte end of central directory record");
  TORCH_CHECK(map->data != nullptr, "zip: cannot map ", path, ": ", std::strerror(map_errno));
  z.map_ = map;
  const auto* d = static_cast<const uint8_t*>(map->data);

  const Directory dir = read_end_records(path, d, size);
  uint64_t pos = dir.offset;
  const uint64_t cd_end = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    const std::string where = "zip: " + path + ": central directory entry " + std::to_string(i);
    TORCH_CHECK(fits(pos, kCentralHeaderBytes, cd_end), where, " at offset ", pos,
                " runs past the end of the central directory at ", cd_end);
    const uint8_t* c = d + pos;
    TORCH_CHECK(u32(c) == kCentralHeaderSig, where, " at offset ", pos, " has signature 0x", std::hex, u32(c), std::dec,
                "; expected 0x", std::hex, kCentralHeaderSig, std::dec);
    const uint64_t name_len = u16(c + 28), extra_len = u16(c + 30), comment_len = u16(c + 32);
    TORCH_CHECK(fits(pos + kCentralHeaderBytes, name_len + extra_len + comment_len, cd_end), where,
                ": name, extra field and comment run past the end of the central directory");
    ZipEntry e;
    e.flags = u16(c + 8);
    e.method = u16(c + 10);
    e.compressed_size = u32(c + 20);
    e.size = u32(c + 24);
    e.name.assign(reinterpret_cast<const char*>(c + kCentralHeaderBytes), name_len);
    uint64_t local = u32(c + 42);
    const std::string named = where + " ('" + e.name + "')";
    apply_zip64_extra(named, c + kCentralHeaderBytes + name_len, extra_len, e, local);

    // The local header repeats the name and has its own extra field (torch.save pads with it so that the
    // data starts 64-byte aligned); its sizes may be zero (bit 3: sizes follow in a data descriptor), so
    // the central directory's sizes are the ones used.
    TORCH_CHECK(fits(local, kLocalHeaderBytes, dir.offset), named, ": local header at offset ", local,
                " does not fit before the central directory at ", dir.offset);
    const uint8_t* l = d + local;
    TORCH_CHECK(u32(l) == kLocalHeaderSig, named, ": no local header at offset ", local, " (signature 0x", std::hex,
                u32(l), std::dec, ")");
    const uint64_t local_name = u16(l + 26), local_extra = u16(l + 28);
    TORCH_CHECK(fits(local + kLocalHeaderBytes, local_name + local_extra, dir.offset), named,
                ": local header name and extra field run into the central directory");
    TORCH_CHECK(local_name == name_len && std::memcmp(l + kLocalHeaderBytes, e.name.data(), name_len) == 0, named,
                ": local header at offset ", local, " names a different entry");
    e.data_offset = local + kLocalHeaderBytes + local_name + local_extra;
    TORCH_CHECK(fits(e.data_offset, e.compressed_size, dir.offset), named, ": data at offset ", e.data_offset, " with ",
                e.compressed_size, " bytes runs past the central directory at ", dir.offset, " (truncated archive?)");
    TORCH_CHECK(z.index_.emplace(e.name, z.entries_.size()).second, named, ": duplicate entry name");
    z.entries_.push_back(std::move(e));
    pos += kCentralHeaderBytes + name_len + extra_len + comment_len;
  }
  return z;
}

const ZipEntry& ZipArchive::entry(const std::string& name) const {
  const auto it = index_.find(name);
  TORCH_CHECK(it != index_.end(), "zip: ", path_, " has no entry '", name, "'");
  return entries_[it->second];
}

uint8_t* ZipArchive::mutable_data(const std::string& name) const {
  const ZipEntry& e = entry(name);
  TORCH_CHECK(e.method == 0, "zip: ", path_, ": entry '", e.name, "' is compressed (", method_name(e.method),
              "); only stored (uncompressed) entries are read, as torch.save writes them");
  TORCH_CHECK((e.flags & 1) == 0, "zip: ", path_, ": entry '", e.name, "' is encrypted");
  TORCH_CHECK(e.compressed_size == e.size, "zip: ", path_, ": stored entry '", e.name, "' has compressed size ",
              e.compressed_size, " but size ", e.size, "; they must be equal");
  return static_cast<uint8_t*>(map_->data) + e.data_offset;
}

std::pair<const uint8_t*, size_t> ZipArchive::bytes(const std::string& name) const {
  const uint8_t* p = mutable_data(name);
  return {p, static_cast<size_t>(entry(name).size)};
}

}  // namespace mft::io
