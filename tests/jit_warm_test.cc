// tools/jit_warm: the real binary run as a subprocess with real NVRTC / hipRTC compiles
// over small scopes (its flag and manifest rules: warm_plan_test; the cache probe:
// cache_probe_test).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "rope/kernel_specs.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"
#include "tools/cache_probe.h"
#include "tests/redis_server.h"
#include "tools/warm_plan.h"

namespace rope_jit {
namespace {


bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------------------
// The binary

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

// `environment` (NAME=value ...) and `shell_prefix` (e.g. "ulimit -f 8;") go before
// the command; `tag` keeps the output files of concurrent runs apart.
RunResult RunWarm(const std::string& args, const std::string& environment = "",
                  const std::string& shell_prefix = "", const std::string& tag = "") {
  const std::string out_path = TempPath("out" + tag);
  const std::string err_path = TempPath("err" + tag);
  const std::string command = absl::StrCat(
      "(", shell_prefix, environment, " ", RunfilePath("tools/jit_warm"), " ", args, ") >", out_path,
      " 2>", err_path, " </dev/null");
  RunResult result;
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system(command.c_str());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

// The counts of the "summary:" line: compiled, already cached, repaired, failed, unsupported.
std::map<std::string, int> Summary(const RunResult& run) {
  std::map<std::string, int> counts;
  std::smatch match;
  const std::regex line("summary: compiled (\\d+), already cached (\\d+), repaired (\\d+), "
                        "failed (\\d+), unsupported (\\d+);");
  if (std::regex_search(run.out, match, line)) {
    counts["compiled"] = std::stoi(match[1]);
    counts["cached"] = std::stoi(match[2]);
    counts["repaired"] = std::stoi(match[3]);
    counts["failed"] = std::stoi(match[4]);
    counts["unsupported"] = std::stoi(match[5]);
  }
  return counts;
}

std::map<std::string, int> Counts(int compiled, int cached, int repaired, int failed, int unsupported) {
  return {{"compiled", compiled},
          {"cached", cached},
          {"repaired", repaired},
          {"failed", failed},
          {"unsupported", unsupported}};
}

struct EntryFile {
  ino_t inode;
  std::string bytes;
  bool operator==(const EntryFile& other) const { return inode == other.inode && bytes == other.bytes; }
};

std::map<std::string, EntryFile> Entries(const std::string& dir) {
  std::map<std::string, EntryFile> entries;
  FILE* listing = popen(absl::StrCat("ls ", dir, " 2>/dev/null").c_str(), "r");
  char name[512];
  while (listing != nullptr && fgets(name, sizeof(name), listing) != nullptr) {
    std::string file(name);
    if (!file.empty() && file.back() == '\n') file.pop_back();
    if (!DiskCache::IsEntryFileName(file)) continue;
    const std::string path = absl::StrCat(dir, "/", file);
    struct stat st;
    if (stat(path.c_str(), &st) == 0) entries[file] = EntryFile{st.st_ino, ReadFile(path)};
  }
  if (listing != nullptr) pclose(listing);
  return entries;
}

// The small scope every binary test uses: rope and rope_kv_cache, head_dim 64, bf16, neox,
// for sm_90 and gfx90a as far as their compilers are installed.
class JitWarmBinaryTest : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* target : {"sm_90", "gfx90a"}) {
      absl::StatusOr<Compiler*> compiler = CompilerForTarget(target);
      if (compiler.ok() && (*compiler)->ValidateTarget(target).ok()) targets_.push_back(target);
    }
    if (targets_.empty()) GTEST_SKIP() << "neither NVRTC nor hipRTC is installed";
    scope_ = absl::StrCat("--arch=", absl::StrJoin(targets_, ","),
                          " --head_dim=64 --dtype=bf16 --style=neox --kernels=rope,rope_kv_cache");
    entries_ = static_cast<int>(targets_.size()) * 2;
  }

  std::vector<std::string> targets_;
  std::string scope_;
  int entries_ = 0;
};

// jit_warm fills the fleet's remote tier: what it compiles, and what its disk already
// held; a node with an empty disk then warms from Redis without compiling.
TEST_F(JitWarmBinaryTest, FillsTheRemoteTier) {
  RedisServer redis;
  if (!redis.installed()) GTEST_SKIP() << "redis-server is not installed";
  ASSERT_TRUE(redis.Start());
  const std::string key_file = TempPath("fleet_key");
  {
    std::ofstream out(key_file, std::ios::binary);
    out << std::string(40, 'k') << "warm test secret";
  }
  chmod(key_file.c_str(), 0600);
  const std::string env = absl::StrCat("ROPE_JIT_REMOTE_CACHE=", redis.url(),
                                       " ROPE_JIT_REMOTE_CACHE_KEY_FILE=", key_file);
  const std::string dir = TempPath("cache");
  RunResult cold = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --stats"), env);
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_TRUE(absl::StrContains(cold.out, absl::StrCat("holds ", entries_, " of ", entries_,
                                                       " entries (", entries_, " stored now)")))
      << cold.out;
  EXPECT_TRUE(absl::StrContains(cold.out, absl::StrCat("writes ", entries_, " (0 failed)")))
      << cold.out;

  RunResult fresh =
      RunWarm(absl::StrCat(scope_, " --cache_dir=", TempPath("cache"), " --stats"), env);
  ASSERT_EQ(fresh.exit_code, 0) << fresh.out << fresh.err;
  EXPECT_TRUE(absl::StrContains(fresh.out, "compiles 0 ")) << fresh.out;
  EXPECT_TRUE(absl::StrContains(fresh.out, absl::StrCat("remote: hits ", entries_, ",")))
      << fresh.out;

  // Redis lost everything (no persistence): a node whose disk holds the entries refills it.
  RedisClient(redis.port()).FlushAll();
  RunResult refill = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir), env);
  ASSERT_EQ(refill.exit_code, 0) << refill.out << refill.err;
  EXPECT_EQ(Summary(refill), Counts(0, entries_, 0, 0, 0)) << refill.out;
  EXPECT_TRUE(absl::StrContains(refill.out, absl::StrCat("(", entries_, " stored now)")))
      << refill.out;
}

TEST_F(JitWarmBinaryTest, ColdRunCompilesWarmRunRewritesNothing) {
  const std::string dir = TempPath("cache");
  RunResult cold = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_EQ(Summary(cold), Counts(entries_, 0, 0, 0, 0)) << cold.out;
  const std::map<std::string, EntryFile> before = Entries(dir);
  EXPECT_EQ(static_cast<int>(before.size()), entries_);
  // Not a terminal: one plain line per item.
  EXPECT_TRUE(absl::StrContains(cold.err, absl::StrCat("[", entries_, "/", entries_, "] ")));

  RunResult warm = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --stats"));
  ASSERT_EQ(warm.exit_code, 0) << warm.out << warm.err;
  EXPECT_EQ(Summary(warm), Counts(0, entries_, 0, 0, 0)) << warm.out;
  EXPECT_TRUE(absl::StrContains(warm.out, "stats: ")) << warm.out;
  EXPECT_TRUE(absl::StrContains(warm.out, "compiles 0 ")) << warm.out;
  EXPECT_EQ(Entries(dir), before);  // same inodes, same bytes
  EXPECT_LT(warm.seconds, cold.seconds / 2) << "cold " << cold.seconds << " s, warm " << warm.seconds << " s";
}

TEST_F(JitWarmBinaryTest, VerifyRepairsACorruptEntry) {
  const std::string dir = TempPath("cache");
  ASSERT_EQ(RunWarm(absl::StrCat(scope_, " --cache_dir=", dir)).exit_code, 0);
  std::map<std::string, EntryFile> entries = Entries(dir);
  ASSERT_FALSE(entries.empty());
  const std::string victim = absl::StrCat(dir, "/", entries.begin()->first);
  std::string bytes = ReadFile(victim);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFile(victim, bytes);

  // A plain run only checks that entries exist (cheap); --verify reads them.
  RunResult plain = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir));
  ASSERT_EQ(plain.exit_code, 0) << plain.out << plain.err;
  EXPECT_EQ(Summary(plain), Counts(0, entries_, 0, 0, 0)) << plain.out;

  RunResult verify = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --verify"));
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(Summary(verify), Counts(0, entries_ - 1, 1, 0, 0)) << verify.out << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.err, "checksum")) << verify.err;
  const std::map<std::string, EntryFile> after = Entries(dir);
  ASSERT_EQ(after.size(), entries.size());
  for (const auto& [name, file] : after) {
    if (absl::StrCat(dir, "/", name) == victim) {
      EXPECT_NE(file.bytes, bytes);  // replaced
    } else {
      EXPECT_EQ(file, entries[name]) << name;  // the good ones untouched
    }
  }

  RunResult again = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --verify"));
  EXPECT_EQ(Summary(again), Counts(0, entries_, 0, 0, 0)) << again.out;
}

// The host target (jit/host): compiled by the system C++ compiler; --verify loads each
// entry on the host backend.
TEST(JitWarmHostTest, HostTargetCompilesAndVerifyLoadsIt) {
  const std::string dir = TempPath("cache");
  const std::string scope = "--arch=host --head_dim=64 --dtype=f32 --style=neox";
  RunResult cold = RunWarm(absl::StrCat(scope, " --cache_dir=", dir));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  // One entry per kernel: rope, position_embeddings, rope_kv_cache.
  EXPECT_EQ(Summary(cold), Counts(3, 0, 0, 0, 0)) << cold.out;
  EXPECT_EQ(Entries(dir).size(), 3u);
  RunResult verify = RunWarm(absl::StrCat(scope, " --cache_dir=", dir, " --verify"));
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(Summary(verify), Counts(0, 3, 0, 0, 0)) << verify.out;
  EXPECT_TRUE(absl::StrContains(verify.out, "loaded on a device 3")) << verify.out;
}

TEST_F(JitWarmBinaryTest, DryRunWritesNothing) {
  const std::string dir = TempPath("cache");
  RunResult cold = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, "/nested --dry_run"));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_TRUE(absl::StrContains(cold.out, absl::StrCat("dry run: would compile ", entries_,
                                                       ", already cached 0, damaged 0")))
      << cold.out;
  EXPECT_TRUE(absl::StrContains(cold.out, "would compile  arch=")) << cold.out;
  EXPECT_FALSE(Exists(dir));

  ASSERT_EQ(RunWarm(absl::StrCat(scope_, " --cache_dir=", dir)).exit_code, 0);
  const std::string entry = absl::StrCat(dir, "/", Entries(dir).begin()->first);
  struct stat before;
  ASSERT_EQ(stat(entry.c_str(), &before), 0);
  RunResult warm = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --dry_run"));
  ASSERT_EQ(warm.exit_code, 0) << warm.out << warm.err;
  EXPECT_TRUE(absl::StrContains(warm.out, absl::StrCat("would compile 0, already cached ", entries_)))
      << warm.out;
  struct stat after;
  ASSERT_EQ(stat(entry.c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);  // not even the LRU clock moves
  EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(JitWarmBinaryTest, BadUsageExitsTwoWithAClearMessage) {
  const std::string dir = TempPath("cache");
  std::map<std::string, std::string> cases = {
      {"--no_such_flag", "unknown flag '--no_such_flag'"},
      {"--dtype=f64", "unknown dtype 'f64'"},
      {"--head_dim=7", "head_dim must be even and in [32, 512], got 7"},
      {"--arch=gfx9999", "--arch=gfx9999:"},  // well formed, built by no compiler
      {"--arch=sm_99", "--arch=sm_99:"},
      {"--arch=banana", "'banana' is not a target id"},
      {"--jobs=-1", "--jobs=-1"},
      {"--manifest=/nonexistent/m.txt", "cannot read /nonexistent/m.txt"},
  };
  // Debian's ROCm 5.2 hipRTC has no gfx1100 (newer ROCm on the GPU hosts has).
  absl::StatusOr<Compiler*> amd = CompilerForTarget("gfx1100");
  if (amd.ok() && !(*amd)->ValidateTarget("gfx1100").ok()) cases["--arch=gfx1100"] = "--arch=gfx1100:";
  for (const auto& [args, message] : cases) {
    RunResult run = RunWarm(absl::StrCat(args, " --cache_dir=", dir));
    EXPECT_EQ(run.exit_code, 2) << args << "\n" << run.out << run.err;
    EXPECT_TRUE(absl::StrContains(run.err, message)) << args << " -> " << run.err;
    EXPECT_TRUE(absl::StrContains(run.err, "--help")) << run.err;
  }
  EXPECT_FALSE(Exists(dir));  // usage is checked before anything is touched

  RunResult help = RunWarm("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(help.out, "Usage: jit_warm")) << help.out;
}

// MI300 is in the default list again: Debian's hipRTC has no gfx942, clang 19 builds it
// (ROPE_JIT_AMD_COMPILER=auto). Without clang, or with hipRTC forced, it is skipped with
// hipRTC's reason; a bad ROPE_JIT_AMD_COMPILER is a usage error naming the value.
TEST_F(JitWarmBinaryTest, Gfx942IsWarmedThroughClangUnlessHiprtcIsChosen) {
  absl::StatusOr<Compiler*> amd = CompilerForTarget("gfx942");
  if (!amd.ok() || !(*amd)->ValidateTarget("gfx942").ok()) {
    GTEST_SKIP() << "no local compiler builds gfx942";
  }
  const std::string dir = TempPath("cache");
  const std::string scope = " --dry_run --head_dim=128 --dtype=bf16 --style=neox --cache_dir=" + dir;
  RunResult run = RunWarm(scope);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  if (!absl::StrContains(run.err, "no GPU found")) GTEST_SKIP() << "a GPU decides the targets here";
  EXPECT_TRUE(absl::StrContains(run.out, "would compile  arch=gfx942 kernel=position_embeddings")) << run.out;

  if (CompilerForVendor(Vendor::kAmd).ValidateTarget("gfx942").ok()) return;  // a newer hipRTC
  for (const char* environment : {"ROPE_JIT_AMD_COMPILER=hiprtc", "ROPE_JIT_AMD_CLANG=/nonexistent/clang-19"}) {
    run = RunWarm(scope, environment);
    ASSERT_EQ(run.exit_code, 0) << environment << run.out << run.err;
    EXPECT_FALSE(absl::StrContains(run.out, "arch=gfx942")) << environment << run.out;
    EXPECT_TRUE(absl::StrContains(run.err, "skipping gfx942")) << environment << run.err;
    EXPECT_TRUE(absl::StrContains(run.err, "cannot compile for gfx942")) << environment << run.err;
    run = RunWarm("--dry_run --arch=gfx942 --cache_dir=" + dir, environment);
    EXPECT_EQ(run.exit_code, 2) << environment << run.out << run.err;
  }
  run = RunWarm("--dry_run --arch=gfx942 --cache_dir=" + dir, "ROPE_JIT_AMD_COMPILER=banana");
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "ROPE_JIT_AMD_COMPILER='banana'")) << run.err;
  EXPECT_FALSE(Exists(dir));
}

TEST_F(JitWarmBinaryTest, ManifestDrivesTheScope) {
  const std::string dir = TempPath("cache");
  const std::string manifest = TempPath("manifest.txt");
  const std::string& target = targets_[0];
  WriteFile(manifest, absl::StrCat("# two specializations\n\n",
                                   "arch=", target, " kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=neox\n",
                                   "arch=", target, " kernel=rope head_dim=64 dtype=f16 style=interleaved  # gpt-j\n",
                                   "arch=gfx9999 kernel=rope head_dim=64 dtype=f16 style=neox  # built nowhere\n"));
  RunResult run = RunWarm(absl::StrCat("--manifest=", manifest, " --cache_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(Summary(run), Counts(2, 0, 0, 0, 1)) << run.out << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "note: skipping gfx9999")) << run.err;
  EXPECT_EQ(Entries(dir).size(), 2u);

  WriteFile(manifest, absl::StrCat("arch=", target, " kernel=rope head_dim=128 dtype=bf16 style=neox\n",
                                   "\n",
                                   "arch=", target, " kernel=rope head_dim=128 dtype=bf16 sytle=neox\n"));
  RunResult bad = RunWarm(absl::StrCat("--manifest=", manifest, " --cache_dir=", dir));
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_TRUE(absl::StrContains(bad.err, absl::StrCat(manifest, ":3: unknown key 'sytle'"))) << bad.err;
}

TEST_F(JitWarmBinaryTest, HfConfigPrewarmsWhatTheModelNeeds) {
  const std::string dir = TempPath("cache");
  const std::string files =
      "tests/data/hf_configs/qwen3-vl-8b-instruct.json,tests/data/hf_configs/deepseek-v3.json";
  const std::string scope = absl::StrCat("--hf_config=", files, " --arch=", targets_[0], " --kernels=rope");
  RunResult dry = RunWarm(absl::StrCat(scope, " --cache_dir=", dir, " --dry_run"));
  ASSERT_EQ(dry.exit_code, 0) << dry.out << dry.err;
  EXPECT_TRUE(absl::StrContains(
      dry.out, absl::StrCat("would compile  arch=", targets_[0], " kernel=rope head_dim=128 rotary_dim=128 "
                            "position_columns=3 dtype=bf16 style=neox mrope_section=24/20/20 "
                            "mrope_interleaved=true")))
      << dry.out;
  EXPECT_TRUE(absl::StrContains(dry.out, "head_dim=64 rotary_dim=64 dtype=bf16 style=interleaved"))
      << dry.out;
  RunResult cold = RunWarm(absl::StrCat(scope, " --cache_dir=", dir));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_EQ(Summary(cold), Counts(2, 0, 0, 0, 0)) << cold.out;
  EXPECT_EQ(Entries(dir).size(), 2u);
  RunResult warm = RunWarm(absl::StrCat(scope, " --cache_dir=", dir));
  EXPECT_EQ(Summary(warm), Counts(0, 2, 0, 0, 0)) << warm.out;

  RunResult missing = RunWarm(absl::StrCat("--hf_config=", dir, "/none.json --cache_dir=", dir));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(missing.err, "--hf_config: cannot read")) << missing.err;
  const std::string broken = TempPath("broken.json");
  WriteFile(broken, R"({"head_dim": 128, "torch_dtype": "bfloat16"})");
  RunResult bad = RunWarm(absl::StrCat("--hf_config=", broken, " --cache_dir=", dir));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(bad.err, "max_position_embeddings is missing")) << bad.err;
}

TEST_F(JitWarmBinaryTest, UnusableCacheDirectoryWarnsOnceAndStillSucceeds) {
  const std::string file = TempPath("regular_file");
  WriteFile(file, "not a directory");
  RunResult run = RunWarm(absl::StrCat("--arch=", targets_[0],
                                       " --head_dim=64 --dtype=bf16 --style=neox --kernels=rope",
                                       " --cache_dir=", file, "/cache"));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(Summary(run), Counts(1, 0, 0, 0, 0)) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "cache: memory only")) << run.out;
  int warnings = 0;
  for (absl::string_view line : absl::StrSplit(run.err, '\n')) {
    if (absl::StrContains(line, "disabled") || absl::StrContains(line, "warning")) ++warnings;
  }
  EXPECT_EQ(warnings, 1) << run.err;
  EXPECT_EQ(ReadFile(file), "not a directory");
}

// Issue 14, item 4: a run that leaves any entry of its scope out of the cache (evicted
// by its own budget, or never written because the disk filled or RLIMIT_FSIZE hit)
// says what is missing and why, and exits 3.
TEST_F(JitWarmBinaryTest, IncompleteCacheAtTheEndExitsThree) {
  const std::string dir = TempPath("incomplete_budget");
  RunResult run = RunWarm(absl::StrCat("--jobs=1 --cache_dir=", dir, " ", scope_),
                          "ROPE_JIT_CACHE_MAX_BYTES=1");
  EXPECT_EQ(run.exit_code, 3) << run.out << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "missing from the cache")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "ROPE_JIT_CACHE_MAX_BYTES")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, absl::StrCat("incomplete: ", entries_ - 1, " of ", entries_)))
      << run.out;

  // Writes that fail: the cache is disabled part way, and the reason is the write's.
  // NVRTC only: under RLIMIT_FSIZE hipRTC compiles are refused before they start (comgr's
  // temp files; kernel_service_process_test HiprtcIsRefusedWhereComgrCannotWrite).
  // Not under ThreadSanitizer, whose runtime cannot start under the limit (test_files.h).
  if (!kUnderThreadSanitizer &&
      std::find(targets_.begin(), targets_.end(), "sm_90") != targets_.end()) {
    const std::string limited = TempPath("incomplete_fsize");
    RunResult fsize = RunWarm(absl::StrCat("--arch=sm_90 --head_dim=64 --dtype=bf16 --style=neox",
                                           " --cache_dir=", limited),
                              "", "ulimit -f 8;");
    EXPECT_EQ(fsize.exit_code, 3) << fsize.out << fsize.err;
    EXPECT_TRUE(absl::StrContains(fsize.err, "missing from the cache")) << fsize.err;
    EXPECT_TRUE(absl::StrContains(fsize.err, "RLIMIT_FSIZE")) << fsize.err;
  }

  // A complete cache still exits 0.
  RunResult again = RunWarm(absl::StrCat("--cache_dir=", dir, " ", scope_));
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
}

// Issue 14, item 8: processes racing on the same keys each count only what they compiled.
TEST_F(JitWarmBinaryTest, RacingProcessesCountOnlyTheirOwnCompiles) {
  const std::string dir = TempPath("race");
  const std::string args = absl::StrCat("--jobs=1 --cache_dir=", dir, " ", scope_);
  std::vector<std::thread> runners;
  std::vector<RunResult> runs(3);
  for (size_t i = 0; i < runs.size(); ++i) {
    runners.emplace_back([&, i] { runs[i] = RunWarm(args, "", "", absl::StrCat("race", i)); });
  }
  for (std::thread& runner : runners) runner.join();
  int compiled = 0;
  for (const RunResult& run : runs) {
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    std::map<std::string, int> counts = Summary(run);
    compiled += counts["compiled"];
    EXPECT_EQ(counts["compiled"] + counts["cached"], entries_) << run.out;
  }
  EXPECT_EQ(compiled, entries_);
}

}  // namespace
}  // namespace rope_jit
