// The kernel service across real processes (tests/service_child): a process SIGKILLed
// while it compiles or just before it publishes, many processes of many threads on a
// cold cache, and a disk that fills up. NVRTC compiles for sm_80/sm_90 without a GPU.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "jit/kernel_service.h"
#include "jit/kernel_spec.h"
#include "rope/kernel_specs.h"
#include "tests/require_compiler.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"

extern char** environ;

namespace rope_jit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// A running tests/service_child with stdout and stderr going to files (files, not
// pipes: sixteen children writing while the parent waits on another cannot block).
struct Child {
  pid_t pid = -1;
  std::string stdout_path;
  std::string stderr_path;
};

struct Finished {
  int status = 0;
  std::string out;  // stdout
  std::string err;  // stderr
  bool exited_ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  bool killed() const { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }
};

// service_child with `args`, `extra_env` ahead of this process's environment, and run
// through `wrapper` (a command that execs its arguments) when one is given.
Child Spawn(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {},
            const std::vector<std::string>& wrapper = {}) {
  const std::string binary = RunfilePath("tests/service_child");
  const std::string base = TempPath("child");
  Child child{-1, base + ".out", base + ".err"};
  // Everything execve needs is built before fork: the child only redirects and execs.
  std::vector<std::string> argv_storage = wrapper;
  argv_storage.push_back(binary);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // extra_env replaces this process's variables of the same names (a shell keeps only one).
  std::vector<std::string> env_storage(extra_env);
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view variable = *entry;
    const std::string prefix = std::string(variable.substr(0, variable.find('=') + 1));
    const bool replaced =
        std::any_of(extra_env.begin(), extra_env.end(),
                    [&](const std::string& extra) { return absl::StartsWith(extra, prefix); });
    if (!replaced) env_storage.push_back(*entry);
  }
  std::vector<char*> envp;
  for (std::string& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const int out = open(child.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err = open(child.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(out, 0);
  EXPECT_GE(err, 0);
  child.pid = fork();
  if (child.pid == 0) {
    if (dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  EXPECT_GT(child.pid, 0) << "fork: " << strerror(errno);
  close(out);
  close(err);
  return child;
}

Finished Wait(const Child& child) {
  Finished finished;
  while (waitpid(child.pid, &finished.status, 0) < 0 && errno == EINTR) {
  }
  finished.out = ReadFile(child.stdout_path);
  finished.err = ReadFile(child.stderr_path);
  return finished;
}

// The number after "name=" in the child's stats line; -1 when absent.
long long Stat(const std::string& output, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!absl::StartsWith(line, "stats ")) continue;
    for (absl::string_view field : absl::StrSplit(line, ' ')) {
      long long value = 0;
      if (absl::ConsumePrefix(&field, name) && absl::ConsumePrefix(&field, "=") &&
          absl::SimpleAtoi(field, &value)) {
        return value;
      }
    }
  }
  return -1;
}

// The child's "spec ..." lines as key hex -> code object hash.
std::map<std::string, std::string> CodeHashes(const std::string& output) {
  std::map<std::string, std::string> hashes;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!absl::StartsWith(line, "spec ")) continue;
    std::string key, code;
    for (absl::string_view field : absl::StrSplit(line, ' ')) {
      if (absl::ConsumePrefix(&field, "key=")) key = std::string(field);
      if (absl::ConsumePrefix(&field, "code=")) code = std::string(field);
    }
    hashes[key] = code;
  }
  return hashes;
}

// The names in `dir`, the lock directory left out.
std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& item : fs::directory_iterator(dir)) {
    if (item.path().filename() != "locks") names.push_back(item.path().filename());
  }
  return names;
}

DiskCacheOptions CacheOptions(const std::string& dir) {
  DiskCacheOptions options;
  options.dir = dir;
  return options;
}

CacheKey KeyOf(const std::string& target, int head_dim) {
  RopeConfig config;
  config.head_dim = head_dim;
  KernelService keys_only(ServiceOptions{});  // no disk tier: computes keys only
  absl::StatusOr<CacheKey> key =
      keys_only.KeyFor(*RopeKernelSpec(config, RopeKernel::kRope, target));
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? *key : CacheKey{};
}

// Whether some process holds the flock on `path` (probed without creating the file).
bool LockIsHeld(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // also drops the shared lock if we got it
  return held;
}

// After a crash: the next process compiles the key once and succeeds, without waiting
// for the dead process's lock (its timeout is 120 s); the one after it hits the disk.
void ExpectNextProcessesRecover(const std::string& dir, const CacheKey& key,
                                const std::vector<std::string>& args) {
  const Clock::time_point start = Clock::now();
  const Finished next = Wait(Spawn(args));
  const double seconds = SecondsSince(start);
  ASSERT_TRUE(next.exited_ok()) << DescribeWaitStatus(next.status) << "\n" << next.err;
  EXPECT_EQ(Stat(next.out, "compiles"), 1) << next.out;
  EXPECT_EQ(Stat(next.out, "lock_waits"), 0) << next.out;  // the dead holder's lock is free
  EXPECT_EQ(Stat(next.out, "lock_timeouts"), 0) << next.out;
  EXPECT_EQ(Stat(next.out, "lock_errors"), 0) << next.out;
  EXPECT_EQ(Stat(next.out, "corrupt"), 0) << next.out;
  EXPECT_LT(seconds, 20.0) << "the next process waited on the dead one's lock?";

  DiskCache cache(CacheOptions(dir));
  absl::StatusOr<std::string> entry = cache.Read(key);
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(HexHash128(*entry), CodeHashes(next.out)[key.hex]);

  const Finished after = Wait(Spawn(args));
  ASSERT_TRUE(after.exited_ok()) << DescribeWaitStatus(after.status) << "\n" << after.err;
  EXPECT_EQ(Stat(after.out, "compiles"), 0) << after.out;
  EXPECT_EQ(Stat(after.out, "disk_hits"), 1) << after.out;
}

// SIGKILL from outside while the child holds the key's lock and compiles: it leaves no
// entry, and its lock (flock: released by the kernel with the process) blocks no one.
TEST(KernelServiceProcessTest, KilledWhileCompilingLeavesNoEntryAndNoBlockingLock) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const CacheKey key = KeyOf("sm_90", 128);
  // The window is the compile (tens to hundreds of ms); should a child finish before the
  // probe sees its lock, try again in a fresh directory.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::string dir = FreshDir("killed_compiling");
    const std::vector<std::string> args = {"--cache_dir=" + dir, "--targets=sm_90"};
    const std::string lock_path = absl::StrCat(dir, "/locks/", key.hex, ".lock");
    const Child child = Spawn(args);
    bool killed_holding_lock = false;
    int early_exit = 0;
    const Clock::time_point start = Clock::now();
    while (SecondsSince(start) < 60) {
      if (LockIsHeld(lock_path)) {
        usleep(20000);  // into the compile (~150 ms in a fresh process), past the re-read
        ASSERT_EQ(kill(child.pid, SIGKILL), 0);
        killed_holding_lock = true;
        break;
      }
      if (waitpid(child.pid, &early_exit, WNOHANG) == child.pid) break;  // done too soon
      usleep(200);
    }
    if (!killed_holding_lock) {
      ASSERT_TRUE(WIFEXITED(early_exit) && WEXITSTATUS(early_exit) == 0)
          << DescribeWaitStatus(early_exit) << "\n"
          << ReadFile(child.stderr_path);
      continue;
    }
    const Finished killed = Wait(child);
    ASSERT_TRUE(killed.killed()) << DescribeWaitStatus(killed.status) << "\n" << killed.err;
    // Published in time.
    if (fs::exists(absl::StrCat(dir, "/", DiskCache::EntryFileName(key)))) continue;

    // No entry: nothing at all, or at most the temp file of a write that had begun.
    for (const std::string& name : Names(dir)) {
      EXPECT_TRUE(absl::StartsWith(name, ".tmp-")) << "left: " << name;
    }
    ExpectNextProcessesRecover(dir, key, args);
    return;
  }
  FAIL() << "in 3 attempts the child was never caught holding the lock before it published";
}

// A child SIGKILLed after its temp file is complete and before the rename (the test-only
// crash point): the entry's name never appears, the temp file is no entry, and the lock
// the child held while writing blocks no one.
TEST(KernelServiceProcessTest, KilledBeforePublishLeavesNoEntryAndNoBlockingLock) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const CacheKey key = KeyOf("sm_90", 128);
  const std::string dir = FreshDir("killed_publishing");
  const std::vector<std::string> args = {"--cache_dir=" + dir, "--targets=sm_90"};
  const Finished killed = Wait(Spawn(args, {"ROPE_JIT_TEST_CRASH_POINT=before_publish"}));
  ASSERT_TRUE(killed.killed()) << DescribeWaitStatus(killed.status) << "\n"
                               << killed.out << killed.err;

  const std::vector<std::string> left = Names(dir);
  ASSERT_EQ(left.size(), 1u) << absl::StrJoin(left, ", ");
  EXPECT_TRUE(absl::StartsWith(left[0], absl::StrCat(".tmp-", key.hex, "-"))) << left[0];
  // The temp file is complete (it is the very entry that was about to be published), yet
  // only the entry's own name is ever read.
  EXPECT_TRUE(DecodeCacheEntry(ReadFile(dir + "/" + left[0]), key).ok());
  EXPECT_FALSE(fs::exists(absl::StrCat(dir, "/", DiskCache::EntryFileName(key))));
  EXPECT_FALSE(LockIsHeld(absl::StrCat(dir, "/locks/", key.hex, ".lock")));

  ExpectNextProcessesRecover(dir, key, args);
}

// 16 processes x 8 threads on a cold cache, every thread requesting all six keys starting
// at a different one: every request succeeds, each key is compiled exactly once across
// all processes, and every process got the same bytes for a key (no torn reads: a torn
// entry would fail validation and be compiled again, or differ).
TEST(KernelServiceProcessTest, SixteenProcessesOfEightThreadsCompileEachKeyOnce) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  constexpr int kProcesses = 16;
  const std::vector<std::string> targets = {"sm_80", "sm_90"};
  const std::vector<int> head_dims = {64, 128, 256};
  std::map<std::string, CacheKey> keys;  // by hex
  for (const std::string& target : targets) {
    for (int head_dim : head_dims) {
      const CacheKey key = KeyOf(target, head_dim);
      keys[key.hex] = key;
    }
  }
  ASSERT_EQ(keys.size(), targets.size() * head_dims.size());

  const std::string dir = FreshDir("load");
  const std::string go = dir + "_go";
  const std::vector<std::string> args = {"--cache_dir=" + dir, "--targets=sm_80,sm_90",
                                         "--head_dims=64,128,256", "--threads=8",
                                         "--wait_file=" + go};
  std::vector<Child> children;
  for (int i = 0; i < kProcesses; ++i) children.push_back(Spawn(args));
  std::ofstream(go) << "go";

  long long compiles = 0, failures = 0, corrupt = 0, timeouts = 0;
  std::map<std::string, std::set<std::string>> hashes_by_key;
  for (const Child& child : children) {
    const Finished finished = Wait(child);
    EXPECT_TRUE(finished.exited_ok()) << DescribeWaitStatus(finished.status) << "\n"
                                      << finished.err;
    compiles += Stat(finished.out, "compiles");
    failures += Stat(finished.out, "compile_failures");
    corrupt += Stat(finished.out, "corrupt");
    timeouts += Stat(finished.out, "lock_timeouts");
    for (const auto& [key, hash] : CodeHashes(finished.out)) hashes_by_key[key].insert(hash);
  }
  EXPECT_EQ(compiles, static_cast<long long>(keys.size()));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(corrupt, 0);
  EXPECT_EQ(timeouts, 0);
  ASSERT_EQ(hashes_by_key.size(), keys.size());
  DiskCache cache(CacheOptions(dir));
  for (const auto& [hex, hashes] : hashes_by_key) {
    ASSERT_TRUE(keys.count(hex)) << hex;
    ASSERT_EQ(hashes.size(), 1u) << "processes got different code objects for " << hex;
    // The published entry holds exactly what every process got.
    absl::StatusOr<std::string> payload = cache.Read(keys[hex]);
    ASSERT_TRUE(payload.ok()) << payload.status();
    EXPECT_EQ(HexHash128(*payload), *hashes.begin());
  }
  // Nothing but the entries: no temp file, no stray name.
  EXPECT_EQ(Names(dir).size(), keys.size());
}

// Host entries (jit/host): four processes of two threads sharing one cache directory
// compile the host key once (the system C++ compiler runs once) and get the same object.
TEST(KernelServiceProcessTest, FourProcessesCompileOneHostKeyOnce) {
  absl::StatusOr<std::string> identity = CompilerForVendor(Vendor::kHost).Identity();
  ASSERT_TRUE(identity.ok()) << "the host backend needs a C++ compiler: " << identity.status();
  const CacheKey key = KeyOf("host", 64);
  const std::string dir = FreshDir("host");
  const std::string go = dir + "_go";
  const std::vector<std::string> args = {"--cache_dir=" + dir, "--targets=host", "--head_dims=64",
                                         "--threads=2", "--wait_file=" + go};
  std::vector<Child> children;
  for (int i = 0; i < 4; ++i) children.push_back(Spawn(args));
  std::ofstream(go) << "go";
  long long compiles = 0, disk_hits = 0, failures = 0;
  std::set<std::string> hashes;
  for (const Child& child : children) {
    const Finished finished = Wait(child);
    EXPECT_TRUE(finished.exited_ok()) << DescribeWaitStatus(finished.status) << "\n"
                                      << finished.err;
    compiles += Stat(finished.out, "compiles");
    disk_hits += Stat(finished.out, "disk_hits");
    failures += Stat(finished.out, "compile_failures");
    for (const auto& [hex, hash] : CodeHashes(finished.out)) {
      EXPECT_EQ(hex, key.hex);
      hashes.insert(hash);
    }
  }
  EXPECT_EQ(compiles, 1);
  EXPECT_EQ(disk_hits, 3);  // the other processes read the published entry
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(hashes.size(), 1u) << "processes got different code objects";
  absl::StatusOr<std::string> payload = DiskCache(CacheOptions(dir)).Read(key);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(HexHash128(*payload), *hashes.begin());
  EXPECT_EQ(Names(dir).size(), 1u);
}

// A full disk (RLIMIT_FSIZE in the child): the first write fails, the disk tier turns
// itself off with one warning line, the child is not killed by SIGXFSZ, no partial entry
// or temp file is left, and every later request is served (from memory for a repeat).
TEST(KernelServiceProcessTest, FullDiskKeepsServingFromMemoryWithOneWarning) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const std::string dir = FreshDir("full_disk");
  const Finished finished =
      Wait(Spawn({"--cache_dir=" + dir, "--targets=sm_90", "--head_dims=64,128", "--repeat=3",
                  "--memory_tier", "--fsize_limit=4096"}));
  ASSERT_TRUE(finished.exited_ok()) << DescribeWaitStatus(finished.status) << "\n" << finished.err;
  EXPECT_EQ(Stat(finished.out, "compiles"), 2) << finished.out;
  EXPECT_EQ(Stat(finished.out, "loads"), 2) << finished.out;
  EXPECT_EQ(Stat(finished.out, "memory_hits"), 4) << finished.out;  // two specs, two repeats
  EXPECT_EQ(Stat(finished.out, "write_failures"), 1) << finished.out;
  EXPECT_EQ(Stat(finished.out, "writes"), 0) << finished.out;
  EXPECT_EQ(Stat(finished.out, "disk_enabled"), 0) << finished.out;
  int warnings = 0;
  for (absl::string_view line : absl::StrSplit(finished.err, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "rope_jit: disk cache disabled")) << line;
    EXPECT_TRUE(absl::StrContains(line, "RLIMIT_FSIZE")) << line;
    ++warnings;
  }
  EXPECT_EQ(warnings, 1) << finished.err;
  EXPECT_TRUE(Names(dir).empty()) << "left: " << absl::StrJoin(Names(dir), ", ");
}

// Issue 14, item 7: comgr (inside hipRTC) ends its whole process when it cannot write one
// of its temporary files. Every place it writes is checked first: the compile is refused
// with ResourceExhausted, the process lives and says why, nothing is cached.
void ExpectComgrRefusal(const Finished& finished, absl::string_view reason) {
  ASSERT_TRUE(WIFEXITED(finished.status) && WEXITSTATUS(finished.status) == 1)
      << DescribeWaitStatus(finished.status) << "\n" << finished.err;
  EXPECT_TRUE(absl::StrContains(finished.err, "RESOURCE_EXHAUSTED")) << finished.err;
  EXPECT_TRUE(absl::StrContains(finished.err, reason)) << finished.err;
  EXPECT_EQ(Stat(finished.out, "compile_failures"), 1) << finished.out;
  EXPECT_EQ(Stat(finished.out, "writes"), 0) << finished.out;
}

TEST(KernelServiceProcessTest, HiprtcIsRefusedWhereComgrCannotWrite) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kAmd));
  const std::vector<std::string> gfx90a = {"--targets=gfx90a", "--head_dims=64"};
  const auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"--cache_dir=" + FreshDir("comgr")};
    args.insert(args.end(), gfx90a.begin(), gfx90a.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  // The control: the same compile succeeds when comgr can write.
  const Finished fine = Wait(Spawn(with({})));
  ASSERT_TRUE(fine.exited_ok()) << DescribeWaitStatus(fine.status) << "\n" << fine.err;

  // RLIMIT_FSIZE (set by the child once started): without the check, SIGXFSZ.
  ExpectComgrRefusal(Wait(Spawn(with({"--fsize_limit=65536"}))), "RLIMIT_FSIZE");

  // The log file AMD_COMGR_REDIRECT_LOGS names, in a directory that does not exist.
  const std::string missing = TempPath("missing_dir");
  ExpectComgrRefusal(
      Wait(Spawn(with({}), {"AMD_COMGR_REDIRECT_LOGS=" + missing + "/comgr.log"})),
      "AMD_COMGR_REDIRECT_LOGS");

  // The temp directory missing, or a file (TSan's runtime itself needs TMPDIR: test_files.h).
  if (kUnderThreadSanitizer) return;
  ExpectComgrRefusal(Wait(Spawn(with({}), {"TMPDIR=" + missing})), "from TMPDIR");
  const std::string file = TempPath("not_a_dir");
  ASSERT_TRUE(WriteFile(file, "a file"));
  ExpectComgrRefusal(Wait(Spawn(with({}), {"TMPDIR=" + file})), "is not a directory");
}

// A full temp file system: a 256 KiB tmpfs mounted in a private mount namespace (an
// unprivileged user namespace) as the child's TMPDIR. Without the check comgr dies there
// ("LLVM ERROR: IO failure on output stream", exit 1) partway through its header.
TEST(KernelServiceProcessTest, HiprtcIsRefusedOnAFullTempFileSystem) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kAmd));
  if (kUnderThreadSanitizer) GTEST_SKIP() << "TSan's runtime needs TMPDIR (test_files.h)";
  const std::string mount_point = FreshDir("small_tmpfs");
  const std::vector<std::string> in_namespace = {
      "/usr/bin/unshare", "--user", "--map-root-user", "--mount", "/bin/sh", "-c",
      "mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$@\"", mount_point};
  // Probe that such a namespace can be made here at all.
  const ShellRun probe = RunShell(absl::StrCat("/usr/bin/unshare --user --map-root-user --mount ",
                                               "/bin/sh -c 'mount -t tmpfs -o size=64k tmpfs ",
                                               mount_point, "' 2>&1"));
  if (probe.exit_code != 0) {
    GTEST_SKIP() << "no unprivileged user and mount namespaces here: " << probe.output;
  }
  ExpectComgrRefusal(Wait(Spawn({"--cache_dir=" + FreshDir("comgr_full"), "--targets=gfx90a",
                                 "--head_dims=64"},
                                {"TMPDIR=" + mount_point}, in_namespace)),
                     "bytes free");
}

}  // namespace
}  // namespace rope_jit
