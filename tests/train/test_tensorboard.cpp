// TensorBoard event files: CRC-32C known answers, the TFRecord framing and the hand-encoded Event
// protobuf re-read and decoded here, and (oracle) TensorBoard's own EventAccumulator reading a training
// run's folder back to exactly the scalars of metrics.jsonl (tests/train/tensorboard_oracle.py).
#include "helpers.h"

#include "data/synthetic.h"
#include "recipe/recipe.h"
#include "train/metrics_log.h"
#include "train/tensorboard.h"
#include "train/trainer.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;
using mft::test::have_python;
using mft::test::TempDir;

namespace {

// A minimal protobuf reader: enough to decode what TensorBoardWriter writes, independently of it.
struct Reader {
  const std::string& s;
  size_t pos = 0;
  bool done() const { return pos >= s.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE(pos < s.size());
      REQUIRE(shift < 64);
      const auto b = uint8_t(s[pos++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
  }
  uint64_t fixed(int bytes) {
    REQUIRE(pos + bytes <= s.size());
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(uint8_t(s[pos++])) << (8 * i);
    return v;
  }
  std::string bytes() {
    const uint64_t n = varint();
    REQUIRE(pos + n <= s.size());
    std::string out = s.substr(pos, n);
    pos += n;
    return out;
  }
};

struct Event {
  double wall_time = -1;
  int64_t step = -1;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

Event decode_event(const std::string& data) {
  Event e;
  Reader r{data};
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint64_t field = key >> 3, wire = key & 7;
    if (field == 1 && wire == 1) {
      const uint64_t bits = r.fixed(8);
      std::memcpy(&e.wall_time, &bits, 8);
    } else if (field == 2 && wire == 0) {
      e.step = int64_t(r.varint());
    } else if (field == 3 && wire == 2) {
      e.file_version = r.bytes();
    } else if (field == 5 && wire == 2) {
      const std::string summary = r.bytes();
      Reader rs{summary};
      while (!rs.done()) {
        REQUIRE(rs.varint() == ((1 << 3) | 2));  // Summary.value
        const std::string value = rs.bytes();
        Reader rv{value};
        std::pair<std::string, float> tv;
        while (!rv.done()) {
          const uint64_t k = rv.varint();
          if (k == ((1 << 3) | 2)) {
            tv.first = rv.bytes();
          } else {
            REQUIRE(k == ((2 << 3) | 5));  // simple_value: float
            const auto bits = uint32_t(rv.fixed(4));
            std::memcpy(&tv.second, &bits, 4);
          }
        }
        e.values.push_back(tv);
      }
    } else {
      FAIL("unexpected Event field " << field << " wire type " << wire);
    }
  }
  return e;
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(uint8_t(s[at + i])) << (8 * i);
  return v;
}

// Every record of a TFRecord file, with lengths and both masked CRCs checked.
std::vector<std::string> read_records(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  const std::string s{std::istreambuf_iterator<char>(in), {}};
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos < s.size()) {
    REQUIRE(pos + 12 <= s.size());
    const uint64_t n = le(s, pos, 8);
    CHECK(le(s, pos + 8, 4) == mft::train::masked_crc32c(s.substr(pos, 8)));
    REQUIRE(pos + 12 + n + 4 <= s.size());
    const std::string data = s.substr(pos + 12, n);
    CHECK(le(s, pos + 12 + n, 4) == mft::train::masked_crc32c(data));
    records.push_back(data);
    pos += 12 + n + 4;
  }
  CHECK(pos == s.size());
  return records;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("masked crc32c: TFRecord's mask of the CRC-32C", "[tensorboard]") {
  const uint32_t c = 0xE3069283u;  // crc32c("123456789"), checked in tests/core
  CHECK(mft::train::masked_crc32c("123456789") == ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST_CASE("event files: TFRecord framing and Event messages read back", "[tensorboard]") {
  TempDir tmp{"mft-tb"};
  const fs::path dir = tmp.path / "a" / "tensorboard";  // created with its parents
  const double before = now_s();
  std::string first_path;
  {
    mft::train::TensorBoardWriter w(dir.string());
    first_path = w.path();
    w.write_scalars(1, {{"train/loss", 2.5}, {"train/lr", 1e-3}});
    w.write_scalars(300, {{"eval/loss", 1.0 / 3.0}});  // 300: a two-byte varint
    // Flushed per write: everything is on disk before the writer closes.
    const auto records = read_records(first_path);
    CHECK(records.size() == 3);
  }
  char host[256] = {};
  REQUIRE(gethostname(host, sizeof host - 1) == 0);
  const std::string name = fs::path(first_path).filename().string();
  CHECK_THAT(name, StartsWith("events.out.tfevents."));
  CHECK_THAT(name, Contains(std::string(".") + host));
  CHECK(std::abs(std::stod(name.substr(std::strlen("events.out.tfevents."))) - before) <= 2);

  const auto records = read_records(first_path);
  REQUIRE(records.size() == 3);
  const Event v = decode_event(records[0]);
  CHECK(v.file_version == "brain.Event:2");
  CHECK(v.wall_time >= before - 1);
  CHECK(v.wall_time <= now_s() + 1);
  CHECK(v.values.empty());

  const Event a = decode_event(records[1]), b = decode_event(records[2]);
  CHECK(a.step == 1);
  REQUIRE(a.values.size() == 2);
  CHECK(a.values[0].first == "train/loss");
  CHECK(a.values[0].second == 2.5f);
  CHECK(a.values[1].first == "train/lr");
  CHECK(a.values[1].second == 1e-3f);
  CHECK(b.step == 300);
  REQUIRE(b.values.size() == 1);
  CHECK(b.values[0].first == "eval/loss");
  CHECK(b.values[0].second == float(1.0 / 3.0));
  CHECK(a.wall_time <= b.wall_time);
  // The bytes of a record, field by field: Event{step = 1 (key 0x10)} after the 9 bytes of wall_time.
  CHECK(uint8_t(records[1][0]) == 0x09);
  CHECK(uint8_t(records[1][9]) == 0x10);
  CHECK(uint8_t(records[1][10]) == 0x01);

  // A second writer (a resumed run) adds a file and leaves the first as it was.
  const auto size = fs::file_size(first_path);
  {
    mft::train::TensorBoardWriter w(dir.string());
    CHECK(w.path() != first_path);
    w.write_scalars(301, {{"train/loss", 2.0}});
  }
  CHECK(fs::file_size(first_path) == size);
  CHECK(event_files(dir).size() == 2);
}

TEST_CASE("event files: errors name the path", "[tensorboard]") {
  TempDir tmp{"mft-tb"};
  std::ofstream(tmp.path / "file") << "x";
  CHECK_THROWS_WITH(mft::train::TensorBoardWriter((tmp.path / "file" / "tb").string()),
                    Contains((tmp.path / "file" / "tb").string()));
}

TEST_CASE("training writes TensorBoard scalars that TensorBoard reads as metrics.jsonl", "[tensorboard][python]") {
  if (!have_python()) return;
  const std::string python = std::getenv("MFT_PYTHON");
  if (std::system((python + " -c 'import tensorboard' 2>/dev/null").c_str()) != 0) {
    WARN("skipped: the tensorboard package is not installed in " << python << " (scripts/setup installs it)");
    return;
  }
  TempDir tmp{"mft-tb"};
  mft::data::write_quickstart_data(tmp.path.string(), 1);
  const fs::path out = tmp.path / "run";
  auto recipe = [&](const std::vector<std::string>& extra) {
    // Logged steps 2, 3 (evaluated), 4, 6 (evaluated), 8 (evaluated, last): every kind of logged step.
    std::vector<std::string> o = {"model.path=preset:mamba-tiny",
                                  "data.format=alpaca",
                                  "data.train_file=" + (tmp.path / "instruct.jsonl").string(),
                                  "data.val_fraction=0.05",
                                  "data.max_length=256",
                                  "peft.method=lora",
                                  "trainer.max_steps=8",
                                  "trainer.batch_size=2",
                                  "trainer.log_every=2",
                                  "trainer.eval_every=3",
                                  "trainer.eval_batches=1",
                                  "trainer.save_every=0",
                                  "output.tensorboard=true",
                                  "output.dir=" + out.string()};
    o.insert(o.end(), extra.begin(), extra.end());
    return mft::recipe::parse_recipe("name: tb\n", "tb.yaml", o);
  };
  // Interrupted after step 3 and resumed: two event files in one folder, merged by TensorBoard.
  mft::train::TrainHooks stop;
  stop.stop_after_steps = 3;
  REQUIRE(mft::train::train(recipe({}), stop).interrupted);
  REQUIRE(mft::train::train(recipe({"output.resume=true"})).steps == 8);
  CHECK(event_files(out / "tensorboard").size() == 2);

  const std::string cmd = python + " " + MFT_TESTS_DIR + "/train/tensorboard_oracle.py " +
                          (out / "tensorboard").string() + " " + (out / "metrics.jsonl").string() + " 2,3,4,6,8 3,6,8";
  INFO(cmd);
  CHECK(std::system(cmd.c_str()) == 0);
}
