// The LibTorch-free core (csrc/core: json_parse, crc32c, file_io, manifest, output_lock, system_limits):
// nesting limits, bounded excerpts, checksums against published values, atomic files and folders under
// I/O failures (a file size limit stands in for a full disk), stale temporaries, folder locks.
#include "core/crc32c.h"
#include "core/file_io.h"
#include "core/json_parse.h"
#include "core/manifest.h"
#include "core/output_lock.h"
#include "core/system_limits.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/mft-core-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Names in `dir` (not recursive).
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A pid that no process has now: a child that has exited and been reaped.
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

// Writes beyond `bytes` fail with EFBIG while this lives (SIGXFSZ ignored): a full disk without root.
struct FileSizeLimit {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old);
    old_handler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = old;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::signal(SIGXFSZ, old_handler);
  }
};
}  // namespace

// ---- JSON -------------------------------------------------------------------------------------------------
TEST_CASE("parse_json: nesting up to the limit parses, deeper fails without recursing", "[core]") {
  const int ok = mft::kMaxJsonDepth;
  const std::string at_limit = std::string(ok, '[') + std::string(ok, ']');
  CHECK(mft::parse_json(at_limit).is_array());
  for (const int depth : {ok + 1, 70000, 1000000}) {
    const std::string deep = std::string(size_t(depth), '[') + std::string(size_t(depth), ']');
    CHECK_THROWS_WITH(mft::parse_json(deep), StartsWith("JSON nested deeper than 512 levels (at byte 512)"));
    // Unbalanced deep text too (a truncated file): the limit comes before the parser's own error.
    CHECK_THROWS_WITH(mft::parse_json(std::string(size_t(depth), '{')), Contains("nested deeper than 512"));
  }
  // Brackets inside strings (escaped quotes included) do not count.
  const std::string in_string = "{\"a\": \"" + std::string(100000, '[') + "\\\"[[[\"}";
  CHECK(mft::parse_json(in_string).is_object());
  try {
    mft::parse_json(std::string(600, '{'));
    FAIL("no error");
  } catch (const mft::JsonError& e) {
    CHECK(e.byte() == 512);
  }
}

TEST_CASE("parse_json: malformed text is a JsonError without nlohmann's tag", "[core]") {
  try {
    mft::parse_json("{\"a\": }");
    FAIL("no error");
  } catch (const mft::JsonError& e) {
    CHECK_THAT(e.what(), StartsWith("not valid JSON: parse error at line 1, column 7"));
    CHECK(e.byte() == 7);
  }
  CHECK(mft::try_parse_json("[1,").is_discarded());
  CHECK(mft::try_parse_json(std::string(5000, '[')).is_discarded());
  CHECK(mft::try_parse_json("{\"x\": 1}")["x"] == 1);
}

TEST_CASE("load_json_file: unreadable and malformed files name the path", "[core]") {
  TempDir dir;
  CHECK_THROWS_WITH(mft::load_json_file(dir.file("none.json")), StartsWith(dir.file("none.json") + ": cannot read"));
  write(dir.file("bad.json"), std::string(1000, '['));
  CHECK_THROWS_WITH(mft::load_json_file(dir.file("bad.json")),
                    StartsWith(dir.file("bad.json") + ": JSON nested deeper than 512"));
  CHECK(mft::try_load_json_file(dir.file("bad.json")).is_discarded());
}

TEST_CASE("json_excerpt: one bounded line whatever the value", "[core]") {
  CHECK(mft::json_excerpt(nlohmann::json{{"a", 1}, {"b", {true, nullptr}}}) == "{\"a\":1,\"b\":[true,null]}");
  CHECK(mft::json_excerpt(nlohmann::json::array()) == "[]");
  CHECK(mft::json_excerpt(nlohmann::json(std::string(1000, 'x'))) == "\"" + std::string(59, 'x') + "...");
  // 500 levels (the most a parsed value can have) and a million elements cost no more than a short value.
  nlohmann::json deep = 1;
  for (int i = 0; i < 500; ++i) deep = nlohmann::json::array({deep});
  CHECK(mft::json_excerpt(deep) == std::string(60, '[') + "...");
  nlohmann::json wide = nlohmann::json::array();
  for (int i = 0; i < 1000000; ++i) wide.push_back(i);
  CHECK(mft::json_excerpt(wide, 10) == "[0,1,2,3,4...");
  // Invalid UTF-8 shows as U+FFFD instead of throwing.
  CHECK(mft::json_excerpt(nlohmann::json(std::string("a\xff"))) == "\"a\xEF\xBF\xBD\"");
}

TEST_CASE("first_nonfinite: the pointer of the first NaN or Inf", "[core]") {
  nlohmann::json j = {{"layers", {{{"exact", -0.5}}, {{"exact", std::nan("")}}}}, {"ok", 1}};
  CHECK(mft::first_nonfinite(j) == "/layers/1/exact");
  j["layers"][1]["exact"] = -1.0;
  CHECK(mft::first_nonfinite(j).empty());
  CHECK(mft::first_nonfinite(nlohmann::json(INFINITY)) == "/");
}

// ---- CRC32C -----------------------------------------------------------------------------------------------
TEST_CASE("crc32c: published check values, both implementations, streaming", "[core]") {
  CHECK(mft::crc32c("", 0) == 0u);
  CHECK(mft::crc32c("123456789", 9) == 0xE3069283u);  // the CRC catalogue's check value
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xFF, and ascending 0..31.
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(char(i));
  CHECK(mft::crc32c(zeros.data(), 32) == 0x8A9136AAu);
  CHECK(mft::crc32c(ones.data(), 32) == 0x62A8AB43u);
  CHECK(mft::crc32c(ascending.data(), 32) == 0x46DD794Eu);
  std::mt19937 rng(7);
  std::string data(100003, '\0');
  for (char& c : data) c = char(rng());
  const uint32_t whole = mft::crc32c(data.data(), data.size());
  CHECK(mft::crc32c_extend_portable(0, data.data(), data.size()) == whole);
  for (const size_t cut : {size_t(1), size_t(7), size_t(4096), size_t(99999)}) {
    CHECK(mft::crc32c_extend(mft::crc32c(data.data(), cut), data.data() + cut, data.size() - cut) == whole);
  }
  CHECK(mft::crc32c_hex(0xE3069283u) == "e3069283");
  CHECK(mft::crc32c_hex(0x1u) == "00000001");
}

// ---- atomic files and folders -----------------------------------------------------------------------------
TEST_CASE("AtomicFile: whole or nothing; the old file untouched on failure", "[core]") {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  write(path, "old\n");
  {
    mft::AtomicFile f(path, "test");
    f.write("new\n");
    CHECK(read(path) == "old\n");  // nothing visible before commit
  }
  CHECK(read(path) == "old\n");  // not committed: removed, old kept
  CHECK(entries(dir.path) == std::vector<std::string>{"out.txt"});
  const mft::FileDigest d = mft::write_file_atomically(path, "new\n", "test");
  CHECK(read(path) == "new\n");
  CHECK(d.bytes == 4);
  CHECK(d.crc32c == mft::crc32c("new\n", 4));
  CHECK(mft::digest_file(path, "test").crc32c == d.crc32c);
  CHECK(entries(dir.path) == std::vector<std::string>{"out.txt"});
}

TEST_CASE("AtomicFile: a full disk is one clear error, no temporary left, old file kept", "[core]") {
  TempDir dir;
  const std::string path = dir.file("big.bin");
  write(path, "previous good output");
  const std::string payload(1 << 20, 'x');
  {
    FileSizeLimit limit(4096);
    mft::AtomicFile f(path, "export");
    CHECK_THROWS_WITH(f.write(payload), StartsWith("export: cannot write " + path + ": File too large"));
  }
  CHECK(read(path) == "previous good output");
  CHECK(entries(dir.path) == std::vector<std::string>{"big.bin"});
  // Deferred errors (writers that must not throw): commit() throws the first one.
  {
    FileSizeLimit limit(4096);
    mft::AtomicFile f(path, "train");
    CHECK(f.write_deferred(payload.data(), payload.size()) == payload.size());
    CHECK(f.write_deferred(payload.data(), 10) == 10);
    CHECK_THROWS_WITH(f.commit(), Contains("File too large"));
  }
  CHECK(read(path) == "previous good output");
  CHECK(entries(dir.path) == std::vector<std::string>{"big.bin"});
}

TEST_CASE("AtomicFile: unwritable destinations fail at once, naming what is wrong", "[core]") {
  TempDir dir;
  CHECK_THROWS_WITH(
      mft::AtomicFile(dir.file("no/such/x.json"), "eval"),
      "eval: cannot write " + dir.file("no/such/x.json") + ": folder " + dir.file("no/such") + " does not exist");
  CHECK_THROWS_WITH(mft::AtomicFile(dir.path.string(), "export"), Contains("it is a folder"));
  CHECK_THROWS_WITH(mft::AtomicFile("", "score"), "score: the output path is empty");
  CHECK(mft::io_error_text(ENOSPC).find("the disk is full") != std::string::npos);
  CHECK(mft::io_error_text(EROFS).find("read-only") != std::string::npos);
}

TEST_CASE("AtomicDir: a new folder appears whole; an existing one is swapped whole", "[core]") {
  TempDir dir;
  const std::string out = dir.file("model");
  {
    mft::AtomicDir d(out, "save");
    write(d.path_to_fill() + "/a", "1");
    CHECK(!fs::exists(out));
    d.commit();
  }
  CHECK(entries(out) == std::vector<std::string>{"a"});
  {
    mft::AtomicDir d(out, "save");
    write(d.path_to_fill() + "/b", "2");
    d.commit();
  }
  CHECK(entries(out) == std::vector<std::string>{"b"});  // no file of the older folder stays
  CHECK(entries(dir.path) == std::vector<std::string>{"model"});
  {
    mft::AtomicDir d(out, "save");
    write(d.path_to_fill() + "/c", "3");
  }  // not committed
  CHECK(entries(out) == std::vector<std::string>{"b"});
  CHECK(entries(dir.path) == std::vector<std::string>{"model"});
  write(dir.file("plain"), "x");
  CHECK_THROWS_WITH(mft::AtomicDir(dir.file("plain"), "save"), Contains("it exists and is not a folder"));
}

TEST_CASE("AppendFile: each line one write; a full disk fails at the line", "[core]") {
  TempDir dir;
  const std::string path = dir.file("metrics.csv");
  {
    mft::AppendFile f(path, "train", true);
    f.append("a\n");
    CHECK(read(path) == "a\n");  // visible at once
  }
  {
    mft::AppendFile f(path, "train", false);
    f.append("b\n");
    FileSizeLimit limit(8);
    CHECK_THROWS_WITH(f.append(std::string(100, 'c')), StartsWith("train: cannot write " + path + ": File too large"));
  }
  CHECK(read(path).rfind("a\nb\n", 0) == 0);
}

TEST_CASE("remove_stale_temporaries: dead processes' temporaries go, live ones stay", "[core]") {
  TempDir dir;
  const std::string host = mft::host_name();
  const std::string dead = dir.file("model.pt.tmp-" + host + "-" + std::to_string(dead_pid()));
  const std::string live = dir.file("model.pt.tmp-" + host + "-" + std::to_string(::getpid()));
  const std::string dead_dir = dir.file("step-00000004.tmp-" + host + "-" + std::to_string(dead_pid()));
  const std::string foreign_new = dir.file("x.tmp-otherhost-1");
  const std::string foreign_old = dir.file("y.tmp-otherhost-2");
  const std::string not_ours = dir.file("notes.tmp-draft");
  for (const auto& f : {dead, live, foreign_new, foreign_old, not_ours}) write(f, "x");
  fs::create_directories(dead_dir + "/sub");
  fs::last_write_time(foreign_old, fs::file_time_type::clock::now() - std::chrono::hours(48));
  CHECK(mft::remove_stale_temporaries(dir.path.string()) == 3);
  CHECK(!fs::exists(dead));
  CHECK(!fs::exists(dead_dir));
  CHECK(!fs::exists(foreign_old));
  CHECK(fs::exists(live));
  CHECK(fs::exists(foreign_new));
  CHECK(fs::exists(not_ours));
  CHECK(mft::temporary_path("/a/b/") == "/a/b.tmp-" + host + "-" + std::to_string(::getpid()));
}

// ---- manifests --------------------------------------------------------------------------------------------
TEST_CASE("manifest: verifies; a flipped byte, a cut or a missing file is found", "[core]") {
  TempDir dir;
  mft::Manifest m;
  m["a.bin"] = mft::write_file_atomically(dir.file("a.bin"), std::string(10000, 'a'), "test");
  m["b.bin"] = mft::write_file_atomically(dir.file("b.bin"), "bbbb", "test");
  mft::write_manifest(dir.path.string(), m, "test");
  CHECK(mft::verify_manifest(dir.path.string()).status == mft::ManifestCheck::Status::kOk);
  {
    std::fstream f(dir.file("a.bin"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('A');
  }
  auto c = mft::verify_manifest(dir.path.string());
  CHECK(c.status == mft::ManifestCheck::Status::kBad);
  CHECK_THAT(c.problem, StartsWith("a.bin: CRC32C "));
  fs::resize_file(dir.file("a.bin"), 10);
  CHECK_THAT(mft::verify_manifest(dir.path.string()).problem, Contains("a.bin has 10 bytes, expected 10000"));
  fs::remove(dir.file("a.bin"));
  CHECK(mft::verify_manifest(dir.path.string()).problem == "a.bin is missing");
  write(dir.file("manifest.json"), "{\"format\": \"mamba-ft-manifest/1\", \"files\": {\"../x\": {}}}");
  CHECK_THAT(mft::verify_manifest(dir.path.string()).problem, Contains("damaged"));
  fs::remove(dir.file("manifest.json"));
  CHECK(mft::verify_manifest(dir.path.string()).status == mft::ManifestCheck::Status::kAbsent);
}

// ---- output-folder locks ----------------------------------------------------------------------------------
TEST_CASE("OutputLock: one owner; a second fails at once naming it; released at the end", "[core]") {
  TempDir dir;
  const std::string out = dir.file("run");
  {
    const mft::OutputLock lock(out, "train");
    const auto owner = mft::read_output_lock(out);
    REQUIRE(owner);
    CHECK(owner->pid == ::getpid());
    CHECK(owner->host == mft::host_name());
    CHECK(owner->command == "train");
    CHECK_THROWS_WITH(mft::OutputLock(out, "sweep"),
                      StartsWith("sweep: output folder " + out + " is in use by mamba-ft train (pid " +
                                 std::to_string(::getpid()) + " on " + mft::host_name()));
  }
  CHECK(!fs::exists(fs::path(out) / mft::kLockFileName));
  const mft::OutputLock again(out, "train");  // free again
}

TEST_CASE("OutputLock: stale locks (dead pid here, old heartbeat elsewhere) are taken over", "[core]") {
  TempDir dir;
  const fs::path lock = dir.path / mft::kLockFileName;
  auto lock_text = [](const std::string& host, long pid) {
    return nlohmann::json{{"host", host}, {"pid", pid}, {"started", 1}, {"command", "train"}}.dump();
  };
  std::string note;
  auto hear = [&](const std::string& m) { note = m; };
  write(lock.string(), lock_text(mft::host_name(), dead_pid()));
  { const mft::OutputLock l(dir.path.string(), "train", hear); }
  CHECK_THAT(note, StartsWith("took over the stale lock of mamba-ft train"));
  // Another host: fresh heartbeat = live; older than 10 minutes = stale.
  write(lock.string(), lock_text("elsewhere", 1));
  CHECK_THROWS_WITH(mft::OutputLock(dir.path.string(), "train"),
                    Contains("is in use by mamba-ft train (pid 1 on elsewhere"));
  fs::last_write_time(lock, fs::file_time_type::clock::now() - std::chrono::minutes(11));
  note.clear();
  { const mft::OutputLock l(dir.path.string(), "train", hear); }
  CHECK_THAT(note, Contains("pid 1 on elsewhere"));
  // Garbage in the lock file: judged by its heartbeat.
  write(lock.string(), "garbage");
  CHECK_THROWS_WITH(mft::OutputLock(dir.path.string(), "train"), Contains("in use by a mamba-ft run"));
}

TEST_CASE("OutputLock: a second process is refused while the first holds the lock", "[core]") {
  TempDir dir;
  int ready[2], done[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(done) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    {
      const mft::OutputLock l(dir.path.string(), "train");
      char c = 1;
      (void)!::write(ready[1], &c, 1);
      (void)!::read(done[0], &c, 1);
    }
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  CHECK_THROWS_WITH(mft::OutputLock(dir.path.string(), "train"), Contains("(pid " + std::to_string(child) + " on"));
  (void)!::write(done[1], &c, 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  const mft::OutputLock mine(dir.path.string(), "train");  // released by the child
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
}

// ---- limits -----------------------------------------------------------------------------------------------
TEST_CASE("memory_budget and local ranks", "[core]") {
  ::unsetenv("LOCAL_WORLD_SIZE");
  ::unsetenv("SLURM_NTASKS_PER_NODE");
  ::unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  ::unsetenv("SLURM_TASKS_PER_NODE");
  const mft::MemoryBudget one = mft::memory_budget();
  CHECK(one.bytes > (uint64_t(64) << 20));
  CHECK(one.local_ranks == 1);
  ::setenv("LOCAL_WORLD_SIZE", "4", 1);
  const mft::MemoryBudget four = mft::memory_budget();
  ::unsetenv("LOCAL_WORLD_SIZE");
  CHECK(four.local_ranks == 4);
  CHECK(double(four.bytes) < 0.3 * double(one.bytes));
  CHECK_THAT(four.describe(), Contains("divided among 4 local ranks"));
  ::setenv("SLURM_TASKS_PER_NODE", "2(x3)", 1);
  CHECK(mft::local_ranks() == 2);
  ::unsetenv("SLURM_TASKS_PER_NODE");
  CHECK(mft::max_threads() == 4 * int(std::max(1u, std::thread::hardware_concurrency())));
  CHECK(mft::format_bytes(1.5 * 1024 * 1024 * 1024) == "1.5 GiB");
  CHECK(mft::format_bytes(312.0 * 1024 * 1024) == "312 MiB");
}

TEST_CASE("a new output removes its own stale temporaries (a killed run's), and only those", "[core]") {
  TempDir dir;
  const std::string host = mft::host_name();
  const std::string stale = dir.file("model.pt.tmp-" + host + "-" + std::to_string(dead_pid()));
  const std::string other = dir.file("other.pt.tmp-" + host + "-" + std::to_string(dead_pid()));
  write(stale, std::string(1000, 'x'));
  write(other, "x");
  mft::write_file_atomically(dir.file("model.pt"), "new", "export");
  CHECK(!fs::exists(stale));
  CHECK(fs::exists(other));  // another output's: left to its own next run
  const std::string stale_dir = dir.file("final.tmp-" + host + "-" + std::to_string(dead_pid()));
  fs::create_directories(stale_dir);
  {
    mft::AtomicDir d(dir.file("final"), "save");
    d.commit();
  }
  CHECK(!fs::exists(stale_dir));
}
