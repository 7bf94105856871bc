// safetensors reader/writer: round trips, the format's edge cases, every kind of corrupt header
// refused with a message naming the file and the problem, sharded checkpoints, and a cross-check
// with the reference Python implementation (`safetensors` in .venv) in both directions.
#include "helpers.h"

#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using mft::test::TempDir;

namespace {

// A raw file: u64 LE header length, header text, data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t claimed_len = -1) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = claimed_len >= 0 ? uint64_t(claimed_len) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

std::map<std::string, at::Tensor> sample_tensors() {
  at::manual_seed(0);
  return {{"embeddings.weight", at::randn({7, 5})},
          {"layers.0.mixer.A_log", at::randn({3, 4}).to(at::kBFloat16)},
          {"layers.0.mixer.D", at::randn({3}).to(at::kHalf)},
          {"scalar", at::randn({})},
          {"empty", at::empty({0, 3})}};
}
}  // namespace

TEST_CASE("safetensors round trip keeps values, dtypes, shapes and metadata", "[safetensors]") {
  TempDir dir{"mft-safetensors"};
  const auto tensors = sample_tensors();
  mft::io::save_safetensors(dir.file("a.safetensors"), tensors, {{"format", "pt"}});
  const auto f = mft::io::SafetensorsFile::open(dir.file("a.safetensors"));
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.names().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const at::Tensor back = f.tensor(name);
    CHECK(back.scalar_type() == t.scalar_type());
    CHECK(back.sizes() == t.sizes());
    CHECK(at::equal(back, t));
  }
  // The header is padded so that the data starts 8-byte aligned.
  std::ifstream in(dir.file("a.safetensors"), std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  CHECK(len[0] % 8 == 0);
}

TEST_CASE("safetensors tensors are copy-on-write views of the file", "[safetensors]") {
  TempDir dir{"mft-safetensors"};
  mft::io::save_safetensors(dir.file("a.safetensors"), {{"w", at::ones({4})}});
  {
    const auto f = mft::io::SafetensorsFile::open(dir.file("a.safetensors"));
    at::Tensor w = f.tensor("w");
    w.fill_(7.0f);  // must not crash (private mapping) nor change the file
  }
  const auto again = mft::io::SafetensorsFile::open(dir.file("a.safetensors"));
  CHECK(at::equal(again.tensor("w"), at::ones({4})));
  // The tensor keeps the mapping alive after the file object is gone.
  at::Tensor kept = mft::io::SafetensorsFile::open(dir.file("a.safetensors")).tensor("w");
  CHECK(kept.sum().item<float>() == 4.0f);
}

TEST_CASE("safetensors header without padding and unaligned data is accepted", "[safetensors]") {
  TempDir dir{"mft-safetensors"};
  // 61-byte header (not a multiple of 8): the data starts at byte 69, misaligned for fp32.
  const std::string header = R"({"test":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}} )";
  REQUIRE(header.size() % 4 != 0);
  const float values[4] = {1.5f, -2.0f, 3.25f, 4.0f};
  write_raw(dir.file("u.safetensors"), header, std::string(reinterpret_cast<const char*>(values), 16));
  const at::Tensor t = mft::io::SafetensorsFile::open(dir.file("u.safetensors")).tensor("test");
  CHECK(at::equal(t, at::tensor({1.5f, -2.0f, 3.25f, 4.0f}).view({2, 2})));
}

TEST_CASE("safetensors refuses corrupt files with a clear error", "[safetensors]") {
  TempDir dir{"mft-safetensors"};
  const std::string f32 = std::string(16, '\0');
  auto open = [&](const std::string& header, const std::string& data, int64_t claimed = -1) {
    write_raw(dir.file("bad.safetensors"), header, data, claimed);
    return mft::io::SafetensorsFile::open(dir.file("bad.safetensors"));
  };
  const std::string ok = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  CHECK_NOTHROW(open(ok, f32));
  CHECK_THROWS_WITH(open(ok, f32.substr(0, 12)), Contains("run past the end of the file"));
  CHECK_THROWS_WITH(open(ok, f32 + "xxxx"), Contains("tensors end at byte"));
  CHECK_THROWS_WITH(open(ok, f32, 1'000'000'000'000), Contains("exceeds the limit"));
  CHECK_THROWS_WITH(open(ok, f32, 5000), Contains("runs past the end"));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})", f32),
                    Contains("unknown dtype \"F33\""));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})", f32),
                    Contains("hold 16 bytes but F32 [5] needs 20"));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         std::string(12, '\0')),
                    Contains("gap or overlap"));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", f32),
                    Contains("gap or overlap"));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                         R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                         f32),
                    Contains("duplicate key 'a'"));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", f32),
                    Contains("non-negative integers"));
  CHECK_THROWS_WITH(open(R"({"a":{"dtype":"F32","shape":[4]}})", f32), Contains("needs \"dtype\", \"shape\""));
  CHECK_THROWS_WITH(open(R"({"a":)", f32), Contains("not valid JSON"));
  CHECK_THROWS_WITH(open(R"([1,2])", ""), Contains("must be a JSON object"));
  CHECK_THROWS_WITH(open(R"({"__metadata__":{"k":1}})", ""), Contains("must be a string"));
  {
    std::ofstream tiny(dir.file("tiny.safetensors"), std::ios::binary);
    tiny << "abc";
  }
  CHECK_THROWS_WITH(mft::io::SafetensorsFile::open(dir.file("tiny.safetensors")), Contains("at least the 8-byte"));
  CHECK_THROWS_WITH(mft::io::SafetensorsFile::open(dir.file("missing.safetensors")), Contains("cannot open"));
  // Known dtypes that mamba-ft does not load are listed but refused on access.
  const auto ints = open(R"({"i":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}})", f32);
  CHECK(ints.contains("i"));
  CHECK_THROWS_WITH(ints.tensor("i"), Contains("has dtype I32; mamba-ft loads F32, F16 and BF16"));
  CHECK_THROWS_WITH(ints.tensor("nope"), Contains("has no tensor 'nope'"));
  CHECK_THROWS_WITH(mft::io::save_safetensors(dir.file("x.safetensors"), {{"i", at::zeros({2}, at::kInt)}}),
                    Contains("writes float32, float16 and bfloat16"));
  CHECK_THROWS_WITH(mft::io::save_safetensors("/nonexistent/dir/x.safetensors", {{"w", at::zeros({2})}}),
                    Contains("cannot write"));
}

TEST_CASE("sharded safetensors checkpoints load through the index", "[safetensors]") {
  TempDir dir{"mft-safetensors"};
  const auto tensors = sample_tensors();
  std::map<std::string, at::Tensor> first, second;
  for (const auto& [name, t] : tensors) (first.size() < 2 ? first : second)[name] = t;
  mft::io::save_safetensors(dir.file("model-00001-of-00002.safetensors"), first);
  mft::io::save_safetensors(dir.file("model-00002-of-00002.safetensors"), second);
  std::ofstream index(dir.file("model.safetensors.index.json"));
  index << R"({"metadata": {"total_size": 123}, "weight_map": {)";
  bool comma = false;
  for (const auto& [name, t] : tensors) {
    index << (comma ? "," : "") << '"' << name << "\": \"model-0000" << (first.count(name) ? 1 : 2)
          << "-of-00002.safetensors\"";
    comma = true;
  }
  index << "}}";
  index.close();
  const auto loaded = mft::io::load_safetensors_checkpoint(dir.path.string());
  REQUIRE(loaded.size() == tensors.size());
  for (const auto& [name, t] : tensors) CHECK(at::equal(loaded.at(name), t));
  // An index naming a tensor its shard lacks.
  std::ofstream bad(dir.file("model.safetensors.index.json"));
  bad << R"({"weight_map": {"ghost": "model-00001-of-00002.safetensors"}})";
  bad.close();
  CHECK_THROWS_WITH(mft::io::load_safetensors_checkpoint(dir.path.string()), Contains("has no such tensor"));
  TempDir empty;
  CHECK_THROWS_WITH(mft::io::load_safetensors_checkpoint(empty.path.string()),
                    Contains("neither model.safetensors nor model.safetensors.index.json"));
}

TEST_CASE("safetensors files agree with the reference Python implementation", "[safetensors][python]") {
  const char* python = std::getenv("MFT_PYTHON");
  if (python == nullptr || python[0] == '\0') {
    WARN("MFT_PYTHON not set (ctest sets it): skipped");
    return;
  }
  TempDir dir{"mft-safetensors"};
  const auto tensors = sample_tensors();
  mft::io::save_safetensors(dir.file("ours.safetensors"), tensors, {{"format", "pt"}});
  // Python reads ours (and checks the metadata), then writes the same tensors with its own writer.
  const std::string script =
      "import sys, safetensors, safetensors.torch as st\n"
      "t = st.load_file(sys.argv[1])\n"
      "with safetensors.safe_open(sys.argv[1], 'pt') as f: assert f.metadata() == {'format': 'pt'}, f.metadata()\n"
      "st.save_file(t, sys.argv[2], metadata={'written_by': 'safetensors'})\n";
  {
    std::ofstream py(dir.file("roundtrip.py"));
    py << script;
  }
  const std::string cmd = std::string(python) + " " + dir.file("roundtrip.py") + " " + dir.file("ours.safetensors") +
                          " " + dir.file("theirs.safetensors");
  REQUIRE(std::system(cmd.c_str()) == 0);
  const auto theirs = mft::io::SafetensorsFile::open(dir.file("theirs.safetensors"));
  CHECK(theirs.metadata().at("written_by") == "safetensors");
  for (const auto& [name, t] : tensors) {
    INFO(name);
    CHECK(at::equal(theirs.tensor(name), t));
  }
}
