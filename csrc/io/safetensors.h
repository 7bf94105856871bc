#pragma once
// safetensors files (https://github.com/huggingface/safetensors format; ../shared/reference/formats.md §1):
//   u64 LE header length N | N bytes of JSON header | data buffer.
// Header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}.
// The reader memory-maps the file and checks every size and offset before handing out a tensor; the
// writer pads the header with spaces to a multiple of 8 and writes through a temporary file + rename.
#include "core/file_io.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mft::io {

// One tensor's entry in a safetensors header.
struct SafetensorsEntry {
  std::string dtype;  // "F32", "F16", "BF16", ... as written in the file
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte offsets in the data buffer
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws a c10::Error naming the file and the problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in file-offset order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor as an at::Tensor over the mapping (copy-on-write: writing to it never touches the file;
  // the mapping lives as long as any tensor from it). F32, F16 and BF16 only; other dtypes are refused.
  at::Tensor tensor(const std::string& name) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  int64_t data_start_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (CPU, F32/F16/BF16; made contiguous) and string metadata to `path` atomically
// (core/file_io.h: a full disk is a clear error and leaves no file); returns its size and CRC32C.
FileDigest save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                            const std::map<std::string, std::string>& metadata = {});

// Every tensor of a checkpoint folder: model.safetensors, or the shards listed by
// model.safetensors.index.json ("weight_map": name -> file), each shard opened once. Names for which
// `skip` returns true are not loaded (e.g. old non-parameter buffers of another dtype).
std::map<std::string, at::Tensor> load_safetensors_checkpoint(const std::string& dir,
                                                              const std::function<bool(const std::string&)>& skip = {});

// The safetensors dtype string of a LibTorch dtype (F32, F16, BF16), or a clear error.
std::string safetensors_dtype(at::ScalarType dtype);

}  // namespace mft::io
