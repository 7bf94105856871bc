// torch.save (pytorch_model.bin) reader: the ZIP container (stored and ZIP64), the restricted unpickler
// against files written by the real torch.save at test time (tests/io/make_torch_pickles.py, .venv
// python), exact dtypes/shapes/strides/values, shared storages, and hostile or corrupt files refused with
// a message naming the file and the problem, without executing anything and without crashing.
#include "helpers.h"

#include "io/torch_pickle.h"
#include "io/zip_reader.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using mft::test::have_python;

namespace {

// The fixtures of make_torch_pickles.py in a fresh temporary folder.
struct Fixtures {
  fs::path dir;
  Fixtures() {
    char tmpl[] = "/tmp/mft-torch-pickle-XXXXXX";
    dir = mkdtemp(tmpl);
    const std::string cmd =
        std::string(std::getenv("MFT_PYTHON")) + " " + MFT_TESTS_DIR + "/io/make_torch_pickles.py " + dir.string();
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~Fixtures() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

// One set of fixtures for all test cases (writing them takes a second of Python start-up and torch import).
const Fixtures& fixtures() {
  static const Fixtures fx;
  return fx;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::vector<int64_t> parse_ints(const std::string& s) {
  std::vector<int64_t> out;
  if (s == "-") return out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoll(item));
  return out;
}

struct Expected {
  std::string key, dtype;
  std::vector<int64_t> sizes, strides;
  int64_t offset = 0;
  size_t begin = 0, nbytes = 0;
};
struct ExpectedFile {
  std::vector<Expected> tensors;
  std::vector<std::pair<std::string, std::string>> shared;  // keys saved on one storage
};

// expected.txt: "tensor FILE KEY DTYPE SIZES STRIDES OFFSET BEGIN NBYTES" and "share FILE KEY KEY" lines.
std::map<std::string, ExpectedFile> read_expected(const Fixtures& fx) {
  std::map<std::string, ExpectedFile> out;
  std::ifstream in(fx.file("expected.txt"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string kind, file;
    ss >> kind >> file;
    if (kind == "share") {
      std::string a, b;
      ss >> a >> b;
      out[file].shared.emplace_back(a, b);
      continue;
    }
    Expected e;
    std::string sizes, strides;
    ss >> e.key >> e.dtype >> sizes >> strides >> e.offset >> e.begin >> e.nbytes;
    REQUIRE(ss);
    e.sizes = parse_ints(sizes);
    e.strides = parse_ints(strides);
    out[file].tensors.push_back(e);
  }
  return out;
}

std::string contiguous_bytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.const_data_ptr()), c.nbytes());
}
}  // namespace

TEST_CASE("torch.save state dicts load with exact dtypes, shapes, strides and values", "[torch_pickle][python]") {
  if (!have_python()) return;
  const Fixtures& fx = fixtures();
  const std::string raw = read_file(fx.file("expected.raw"));
  const auto expected = read_expected(fx);
  REQUIRE(expected.size() == 5);
  for (const auto& [file, want] : expected) {
    INFO("file " << file);
    const auto loaded = mft::io::load_torch_pickle_state_dict(fx.file(file));
    REQUIRE(loaded.size() == want.tensors.size());
    std::map<std::string, at::Tensor> by_name;
    for (size_t i = 0; i < loaded.size(); ++i) {
      const auto& [name, t] = loaded[i];
      const Expected& e = want.tensors[i];
      INFO("tensor " << e.key);
      CHECK(name == e.key);  // the dict's order
      CHECK(std::string(c10::toString(t.scalar_type())) == e.dtype);
      CHECK(t.sizes().vec() == e.sizes);
      CHECK(t.strides().vec() == e.strides);
      CHECK(t.storage_offset() == e.offset);
      CHECK(t.device().is_cpu());
      CHECK_FALSE(t.requires_grad());
      CHECK(contiguous_bytes(t) == raw.substr(e.begin, e.nbytes));
      by_name[name] = t;
    }
    // Tied weights and slices of one buffer share memory again, as after torch.load.
    if (file != "plain.bin") CHECK(want.shared.size() == 2);
    for (const auto& [a, b] : want.shared) {
      INFO(a << " and " << b << " were saved on one storage");
      CHECK(by_name.at(a).storage().data() == by_name.at(b).storage().data());
    }
  }
  // A hand-made pickle: a (2, 5) view at offset 2 of a 12-element storage holding 1..12.
  const auto crafted = mft::io::load_torch_pickle_state_dict(fx.file("crafted_ok.bin"));
  REQUIRE(crafted.size() == 1);
  CHECK(at::equal(crafted[0].second, at::arange(3, 13, at::kFloat).view({2, 5})));
}

TEST_CASE("torch.save tensors are copy-on-write views that outlive the file", "[torch_pickle][python]") {
  if (!have_python()) return;
  const Fixtures& fx = fixtures();
  const std::string path = fx.file("cow.bin");
  fs::copy_file(fx.file("sd_ordered.bin"), path, fs::copy_options::overwrite_existing);
  std::map<std::string, at::Tensor> sd;
  for (auto& [name, t] : mft::io::load_torch_pickle_state_dict(path)) sd[name] = t;
  const at::Tensor window = sd.at("window").clone();
  CHECK(at::equal(window, at::arange(4, 8, at::kFloat)));
  sd.at("big").fill_(-1.0f);                                // writes the private mapping only
  CHECK(at::equal(sd.at("window"), at::full({4}, -1.0f)));  // window is a view of big's storage
  for (const auto& [name, t] : mft::io::load_torch_pickle_state_dict(path)) {
    if (name == "window") CHECK(at::equal(t, window));  // the file is unchanged
  }
  fs::remove(path);  // the mapping stays valid without the file
  CHECK(sd.at("embedding.weight").abs().sum().item<float>() > 0);
  CHECK(at::equal(sd.at("window"), at::full({4}, -1.0f)));
}

TEST_CASE("zip reader lists stored and ZIP64 archives and refuses what it cannot read", "[torch_pickle][python]") {
  if (!have_python()) return;
  const Fixtures& fx = fixtures();
  const auto plain = mft::io::ZipArchive::open(fx.file("sd_ordered.bin"));
  const auto zip64 = mft::io::ZipArchive::open(fx.file("zip64.bin"));
  REQUIRE(plain.entries().size() == zip64.entries().size());
  CHECK(plain.entries().front().name == "sd_ordered/data.pkl");
  for (size_t i = 0; i < plain.entries().size(); ++i) {
    const auto& a = plain.entries()[i];
    const auto& b = zip64.entries()[i];
    INFO(a.name);
    CHECK(a.name == b.name);
    CHECK(a.size == b.size);
    CHECK(a.method == 0);
    CHECK(a.data_offset % 64 == 0);  // torch.save pads every entry's data to 64 bytes
    const auto [pa, na] = plain.bytes(a.name);
    const auto [pb, nb] = zip64.bytes(b.name);
    CHECK(std::string(reinterpret_cast<const char*>(pa), na) == std::string(reinterpret_cast<const char*>(pb), nb));
  }
  const auto [version, n] = plain.bytes("sd_ordered/version");
  CHECK(std::string(reinterpret_cast<const char*>(version), n) == "3\n");
  CHECK_THROWS_WITH(plain.bytes("sd_ordered/nope"), Contains("has no entry 'sd_ordered/nope'"));
  const auto deflated = mft::io::ZipArchive::open(fx.file("deflate.bin"));
  CHECK_THROWS_WITH(deflated.bytes("sd_ordered/data/0"),
                    Contains("deflate.bin") && Contains("entry 'sd_ordered/data/0' is compressed (deflate)"));
}

TEST_CASE("hostile and corrupt torch.save files are refused, never executed", "[torch_pickle][python]") {
  if (!have_python()) return;
  const Fixtures& fx = fixtures();
  const std::pair<const char*, const char*> cases[] = {
      {"evil_system.bin",
       "pickle asks for global 'posix.system', which is not allowed (only tensor-rebuild "
       "globals are read; this file is not a plain state_dict)"},
      {"evil_eval.bin", "pickle asks for global '__builtin__.eval', which is not allowed"},
      {"evil_eval4.bin", "pickle asks for global 'builtins.eval', which is not allowed"},
      {"load_from_bytes.bin", "pickle asks for global 'torch.storage._load_from_bytes', which is not allowed"},
      {"non_tensor.bin", "value of 'step' is an int, not a tensor"},
      {"nested.bin", "value of 'model' is a dict, not a tensor"},
      {"list.bin", "the pickle holds a list, not a dict of tensors"},
      {"legacy.bin", "is not a ZIP archive"},
      {"truncated.bin", "no end of central directory record"},
      {"deflate.bin", "entry 'sd_ordered/byteorder' is compressed (deflate)"},
      {"missing_storage.bin", "storage '0' (Float, 10 elements) has no entry 'sd_ordered/data/0'"},
      {"short_storage.bin", "storage '0' needs 10 x 4 bytes but entry 'sd_ordered/data/0' has 36"},
      {"claims_more.bin", "storage '0' needs 13 x 4 bytes but entry 'crafted/data/0' has 48"},
      {"big_endian.bin", "byteorder is 'big'; only little-endian files are read"},
      {"past_end.bin",
       "tensor of size [4, 4], stride [4, 1], offset 0 over storage '0' (12 elements) reaches "
       "element 15, past the end of the storage"},
      {"past_end_offset.bin", "offset 9 over storage '0' (12 elements) reaches element 12"},
      {"past_end_stride.bin", "stride [1, 6], offset 0 over storage '0' (12 elements) reaches element 13"},
      {"huge_size.bin", "reaches element (overflow)"},
      {"two_dtypes.bin", "storage '0' is used as Half x 24 but earlier as Float x 12"},
      {"bad_opcode.bin", "unknown or unsupported pickle opcode 0xff"},
      {"text_opcode.bin", "unknown or unsupported pickle opcode 0x49 'I'"},
      {"truncated_pickle.bin", "data.pkl is truncated: a string needs 16 bytes"},
      {"deep.bin", "the pickle holds a tuple"},
      {"cycle.bin", "the pickle holds a list"},
      {"bad_memo.bin", "memo entry 7 is read before it is written"},
      {"empty_stack.bin", "the stack is empty"},
      {"missing.bin", "cannot open"},
  };
  for (const auto& [name, message] : cases) {
    INFO("file " << name);
    CHECK_THROWS_WITH(mft::io::load_torch_pickle_state_dict(fx.file(name)),
                      Contains(fx.file(name)) && Contains(message));
  }
  CHECK_FALSE(fs::exists(fx.dir / "pwned"));  // what os.system / eval would have created
}

TEST_CASE("every single-byte corruption or truncation of a torch.save file loads or throws", "[torch_pickle][python]") {
  if (!have_python()) return;
  const Fixtures& fx = fixtures();
  const std::string good = read_file(fx.file("sd_ordered.bin"));
  const std::string path = fx.file("mutant.bin");
  int refused = 0;
  const auto attempt = [&](const std::string& bytes) {
    write_file(path, bytes);
    try {
      for (const auto& [name, t] : mft::io::load_torch_pickle_state_dict(path)) (void)contiguous_bytes(t);
    } catch (const c10::Error&) {
      ++refused;
    }
  };
  // Flipping each byte: structure bytes give errors, storage bytes give other values; nothing may crash
  // (run under MFT_SANITIZE=address;undefined to also catch silent out-of-bounds reads).
  for (size_t i = 0; i < good.size(); ++i) {
    std::string mutant = good;
    mutant[i] = static_cast<char>(mutant[i] ^ 0xff);
    attempt(mutant);
  }
  for (size_t n = 0; n < good.size(); n += 7) attempt(good.substr(0, n));
  INFO(refused << " of " << good.size() + (good.size() + 6) / 7 << " mutants refused");
  CHECK(refused > static_cast<int>(good.size() / 7));
}
