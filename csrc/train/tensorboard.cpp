#include "train/tensorboard.h"

#include "core/crc32c.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace mft::train {
namespace {

// TFRecord's CRC mask constant (tensorflow/core/lib/hash/crc32c.h: kMaskDelta).
constexpr uint32_t kCrcMaskDelta = 0xa282ead8u;
// The file_version TensorBoard expects in the first record of an event file.
constexpr const char* kFileVersion = "brain.Event:2";
// Event files one folder may get within the same second on one host before we give up (a bug, not a run).
constexpr int kMaxSuffix = 1000;

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(uint8_t(v)));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (uint64_t(field) << 3) | wire_type);
}

// Little-endian whatever the host's byte order.
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}

void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error("tensorboard: cannot " + what + " " + path + ": " + std::strerror(err));
}

}  // namespace

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = mft::crc32c(data.data(), data.size());
  return ((c >> 15) | (c << 17)) + kCrcMaskDelta;
}

std::string tfrecord(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out), 4);
  out.append(data);
  put_le(out, masked_crc32c(data), 4);
  return out;
}

std::string encode_file_version_event(double wall_time, const std::string& version) {
  std::string e;
  put_double(e, 1, wall_time);
  put_bytes(e, 3, version);
  return e;
}

std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_float(v, 2, float(value));
    put_bytes(summary, 1, v);
  }
  std::string e;
  put_double(e, 1, wall_time);
  put_key(e, 2, kVarint);
  put_varint(e, uint64_t(step));  // int64: negative values as 10-byte two's complement, as protobuf does
  put_bytes(e, 5, summary);
  return e;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("tensorboard: cannot create folder " + dir + ": " + ec.message());
  const double now = unix_seconds();
  const std::string base =
      (fs::path(dir) / ("events.out.tfevents." + std::to_string(int64_t(now)) + "." + hostname())).string();
  // "x": fail if the file exists (C11 exclusive mode), so two runs never share a file.
  for (int i = 0; file_ == nullptr; ++i) {
    path_ = i == 0 ? base : base + "." + std::to_string(i);
    file_ = std::fopen(path_.c_str(), "wbx");
    if (file_ == nullptr && (errno != EEXIST || i == kMaxSuffix)) fail("create", path_, errno);
  }
  write_record(encode_file_version_event(now, kFileVersion));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void TensorBoardWriter::write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  write_record(encode_scalars_event(unix_seconds(), step, scalars));
}

void TensorBoardWriter::write_record(const std::string& data) {
  const std::string rec = tfrecord(data);
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size() || std::fflush(file_) != 0) {
    fail("write", path_, errno);
  }
}

}  // namespace mft::train
