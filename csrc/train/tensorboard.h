#pragma once
// TensorBoard event files without TensorFlow or a protobuf library: TFRecord framing around
// `tensorflow.Event` messages encoded by hand (only the fields scalars need). No LibTorch here.
//
// Record:  uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// Event:   double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
// Summary: repeated Value value = 1;      Value: string tag = 1; float simple_value = 2;
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mft::train {

// TFRecord's masked CRC of core/crc32c.h's CRC-32C: ((crc >> 15) | (crc << 17)) + 0xa282ead8 (a CRC of data holding
// CRCs is weak).
uint32_t masked_crc32c(std::string_view data);

// One TFRecord: header, data, footer.
std::string tfrecord(std::string_view data);

// Serialized `tensorflow.Event` with a file_version (the first record of every event file).
std::string encode_file_version_event(double wall_time, const std::string& version);

// Serialized `tensorflow.Event` with a Summary of scalar values (simple_value is a float).
std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& scalars);

// Appends events to a new file `events.out.tfevents.<unix seconds>.<hostname>` in `dir` (created if
// needed; a name already taken gets a ".1", ".2", ... suffix, so a resumed run never overwrites: TensorBoard
// merges every event file of a folder). Every write is flushed. Errors throw std::runtime_error naming
// the path.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event at `step` holding every (tag, value) pair, written and flushed.
  void write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars);
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace mft::train
