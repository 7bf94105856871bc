#include "io/safetensors.h"

#include "core/file_io.h"
#include "core/json_parse.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace mft::io {
namespace {
// The reference implementation refuses larger headers (MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t bytes;
};
// Floating dtypes we load; the others are known by size only so that their offsets can be validated.
constexpr DtypeInfo kLoadable[] = {{"F32", at::kFloat, 4}, {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2}};
int64_t dtype_bytes(const std::string& d) {
  for (const auto& l : kLoadable) {
    if (d == l.name) return l.bytes;
  }
  static const std::map<std::string, int64_t> others = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2}, {"U16", 2},     {"I32", 4},    {"U32", 4},
      {"F64", 8},  {"I64", 8}, {"U64", 8}, {"C64", 8}, {"F8_E5M2", 1}, {"F8_E4M3", 1}};
  const auto it = others.find(d);
  return it == others.end() ? -1 : it->second;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
}  // namespace

struct SafetensorsFile::Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data != nullptr) munmap(data, size);
  }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TORCH_CHECK(fd >= 0, "safetensors: cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  const int stat_rc = fstat(fd, &st);
  const size_t size = stat_rc == 0 ? static_cast<size_t>(st.st_size) : 0;
  auto map = std::make_shared<Mapping>();
  if (stat_rc == 0 && size >= 8) {
    // Private, writable mapping: tensors over it can be modified without touching the file.
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      map->data = p;
      map->size = size;
    }
  }
  ::close(fd);
  TORCH_CHECK(stat_rc == 0, "safetensors: cannot stat ", path);
  TORCH_CHECK(size >= 8, "safetensors: ", path, " has ", size,
              " bytes; a file needs at least the 8-byte header length");
  TORCH_CHECK(map->data != nullptr, "safetensors: cannot map ", path, ": ", std::strerror(errno));
  f.map_ = map;

  const auto* bytes = static_cast<const unsigned char*>(map->data);
  const uint64_t header_len = read_u64_le(bytes);
  TORCH_CHECK(header_len <= kMaxHeaderBytes, "safetensors: ", path, ": header length ", header_len,
              " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  TORCH_CHECK(header_len <= size - 8, "safetensors: ", path, ": header length ", header_len,
              " runs past the end of the ", size, "-byte file");
  f.data_start_ = static_cast<int64_t>(8 + header_len);

  // Duplicate keys are refused (nlohmann would keep the last one silently).
  std::vector<std::set<std::string>> keys_at_depth;
  std::string duplicate;
  const auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::object_start) {
      if (static_cast<int>(keys_at_depth.size()) <= depth) keys_at_depth.resize(depth + 1);
      keys_at_depth[depth].clear();
    } else if (event == nlohmann::json::parse_event_t::key && depth >= 1) {
      auto& seen = keys_at_depth[depth - 1];
      if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty()) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json header;
  try {
    check_json_depth(std::string_view(reinterpret_cast<const char*>(bytes) + 8, size_t(header_len)));
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len, callback);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "safetensors: ", path, ": header is not valid JSON (", e.what(), ")");
  }
  TORCH_CHECK(duplicate.empty(), "safetensors: ", path, ": duplicate key '", duplicate, "' in the header");
  TORCH_CHECK(header.is_object(), "safetensors: ", path, ": header must be a JSON object");

  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      TORCH_CHECK(info.is_object(), "safetensors: ", path, ": __metadata__ must be an object of strings");
      for (const auto& [k, v] : info.items()) {
        TORCH_CHECK(v.is_string(), "safetensors: ", path, ": __metadata__ value of '", k, "' must be a string");
        f.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "safetensors: " + path + ": tensor '" + name + "'";
    TORCH_CHECK(info.is_object() && info.contains("dtype") && info.contains("shape") && info.contains("data_offsets"),
                where, " needs \"dtype\", \"shape\" and \"data_offsets\"");
    SafetensorsEntry e;
    TORCH_CHECK(info["dtype"].is_string(), where, ": dtype must be a string");
    e.dtype = info["dtype"].get<std::string>();
    const int64_t elem = dtype_bytes(e.dtype);
    TORCH_CHECK(elem > 0, where, ": unknown dtype \"", e.dtype, "\"");
    TORCH_CHECK(info["shape"].is_array(), where, ": shape must be an array");
    uint64_t numel = 1;
    for (const auto& d : info["shape"]) {
      TORCH_CHECK(d.is_number_unsigned(), where, ": shape entries must be non-negative integers; got ", d.dump());
      const uint64_t v = d.get<uint64_t>();
      TORCH_CHECK(v <= (uint64_t(1) << 62) && !__builtin_mul_overflow(numel, v, &numel), where, ": shape ",
                  info["shape"].dump(), " overflows");
      e.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = info["data_offsets"];
    TORCH_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(), where,
                ": data_offsets must be [begin, end] with non-negative integers; got ", off.dump());
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    uint64_t nbytes = 0;
    TORCH_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(elem), &nbytes), where, ": size overflows");
    TORCH_CHECK(begin <= end && end - begin == nbytes, where, ": data_offsets ", off.dump(), " hold ", end - begin,
                " bytes but ", e.dtype, " ", info["shape"].dump(), " needs ", nbytes);
    TORCH_CHECK(end <= size - f.data_start_, where, ": data_offsets ", off.dump(), " run past the end of the file (",
                size - f.data_start_, " data bytes)");
    e.begin = static_cast<int64_t>(begin);
    e.end = static_cast<int64_t>(end);
    f.entries_[name] = std::move(e);
  }
  // The tensors must tile the data buffer from 0 to the end of the file, without gaps or overlaps.
  int64_t expect = 0;
  for (const auto& name : f.names()) {
    const auto& e = f.entries_.at(name);
    TORCH_CHECK(e.begin == expect, "safetensors: ", path, ": tensor '", name, "' starts at data offset ", e.begin,
                " but the previous tensor ends at ", expect, " (gap or overlap)");
    expect = e.end;
  }
  TORCH_CHECK(f.data_start_ + expect == static_cast<int64_t>(size), "safetensors: ", path, ": tensors end at byte ",
              f.data_start_ + expect, " but the file has ", size, " bytes");
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> n;
  for (const auto& [name, e] : entries_) n.push_back(name);
  std::sort(n.begin(), n.end(), [&](const std::string& a, const std::string& b) {
    const auto &ea = entries_.at(a), &eb = entries_.at(b);
    return ea.begin != eb.begin ? ea.begin < eb.begin : ea.end < eb.end;
  });
  return n;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  TORCH_CHECK(it != entries_.end(), "safetensors: ", path_, " has no tensor '", name, "'");
  return it->second;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DtypeInfo* info = nullptr;
  for (const auto& l : kLoadable) {
    if (e.dtype == l.name) info = &l;
  }
  TORCH_CHECK(info != nullptr, "safetensors: ", path_, ": tensor '", name, "' has dtype ", e.dtype,
              "; mamba-ft loads F32, F16 and BF16 tensors only");
  char* p = static_cast<char*>(map_->data) + data_start_ + e.begin;
  const auto options = at::TensorOptions().dtype(info->type);
  if (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(info->bytes) != 0) {
    // A header without padding can leave the data unaligned: copy rather than hand out a misaligned tensor.
    at::Tensor t = at::empty(e.shape, options);
    std::memcpy(t.data_ptr(), p, static_cast<size_t>(e.end - e.begin));
    return t;
  }
  auto keep = map_;
  return at::from_blob(
      p, e.shape, [keep](void*) mutable { keep.reset(); }, options);
}

std::string safetensors_dtype(at::ScalarType dtype) {
  for (const auto& l : kLoadable) {
    if (l.type == dtype) return l.name;
  }
  TORCH_CHECK(false, "safetensors: mamba-ft writes float32, float16 and bfloat16 tensors; got ", dtype);
}

FileDigest save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<at::Tensor> data;
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {  // std::map: sorted by name
    TORCH_CHECK(name != "__metadata__", "safetensors: a tensor cannot be named __metadata__");
    TORCH_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    TORCH_CHECK(t.device().is_cpu(), "safetensors: tensor '", name, "' must be on the CPU; got ", t.device());
    const at::Tensor c = t.contiguous();
    const int64_t nbytes = static_cast<int64_t>(c.nbytes());
    header[name] = {{"dtype", safetensors_dtype(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(c);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data buffer starts 8-byte aligned

  AtomicFile out(path, "safetensors");
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((uint64_t(text.size()) >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(text);
  for (const auto& c : data) out.write(c.const_data_ptr(), c.nbytes());
  out.commit();
  return out.digest();
}

std::map<std::string, at::Tensor> load_safetensors_checkpoint(const std::string& dir,
                                                              const std::function<bool(const std::string&)>& skip) {
  namespace fs = std::filesystem;
  std::map<std::string, at::Tensor> out;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) {
    const auto f = SafetensorsFile::open(single.string());
    for (const auto& name : f.names()) {
      if (!skip || !skip(name)) out[name] = f.tensor(name);
    }
    return out;
  }
  TORCH_CHECK(fs::exists(index), "safetensors: ", dir,
              " has neither model.safetensors nor model.safetensors.index.json");
  nlohmann::json j;
  try {
    j = load_json_file(index.string());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "safetensors: ", e.what());
  }
  TORCH_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), "safetensors: ", index.string(),
              " needs an object \"weight_map\" (tensor name -> shard file)");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, file] : j["weight_map"].items()) {
    TORCH_CHECK(file.is_string(), "safetensors: ", index.string(), ": weight_map[\"", name, "\"] must be a file name");
    const std::string shard = file.get<std::string>();
    TORCH_CHECK(shard.find('/') == std::string::npos && shard != ".." && !shard.empty(),
                "safetensors: ", index.string(), ": shard name \"", shard, "\" must be a plain file name in ", dir);
    if (!skip || !skip(name)) by_shard[shard].push_back(name);
  }
  for (const auto& [shard, names] : by_shard) {
    const auto f = SafetensorsFile::open((fs::path(dir) / shard).string());
    for (const auto& name : names) {
      TORCH_CHECK(f.contains(name), "safetensors: ", index.string(), " puts '", name, "' in ", shard,
                  " but that file has no such tensor");
      out[name] = f.tensor(name);
    }
  }
  return out;
}

}  // namespace mft::io
