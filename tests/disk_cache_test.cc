#include "jit/disk_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "jit/cache_entry.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

namespace fs = std::filesystem;

// A fresh, empty directory per test (named after it), under Bazel's per-test temp dir.
std::string FreshDir() {
  const testing::TestInfo* test = testing::UnitTest::GetInstance()->current_test_info();
  return ::rope_jit::FreshDir(absl::StrCat(test->test_suite_name(), ".", test->name()));
}

CacheKey Key(int i) {
  return {absl::StrFormat("kernel=rope;head_dim=128;target=sm_90a;n=%03d", i),
          absl::StrFormat("%032x", 0xabc000 + i)};
}

DiskCacheOptions Options(const std::string& dir) {
  DiskCacheOptions options;
  options.dir = dir;
  return options;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string EntryPath(const std::string& dir, const CacheKey& key) {
  return absl::StrCat(dir, "/", DiskCache::EntryFileName(key));
}

// Names in `dir` other than the lock directory.
std::vector<std::string> ListNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& item : fs::directory_iterator(dir)) {
    if (item.path().filename() != "locks") names.push_back(item.path().filename());
  }
  return names;
}

int CountWarnings(const std::string& captured) {
  int lines = 0;
  for (size_t pos = captured.find("rope_jit: "); pos != std::string::npos;
       pos = captured.find("rope_jit: ", pos + 1)) {
    ++lines;
  }
  return lines;
}

void SetMtime(const std::string& path, absl::Time mtime) {
  const struct timespec times[2] = {absl::ToTimespec(mtime), absl::ToTimespec(mtime)};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// Runs `body` in a forked child and returns its wait status. The child leaves through
// _exit so that nothing of the test process (gtest, atexit) runs twice.
int RunInChild(const std::function<int()>& body) {
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

TEST(DiskCacheTest, WriteThenReadHits) {
  const std::string dir = FreshDir();
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  EXPECT_EQ(cache.disabled_reason(), "");
  const std::string payload("code\0object\xff", 12);
  ASSERT_TRUE(cache.Write(Key(1), payload).ok());
  absl::StatusOr<std::string> read = cache.Read(Key(1));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, payload);
  EXPECT_EQ(ReadFile(EntryPath(dir, Key(1))), EncodeCacheEntry(Key(1), payload));
  EXPECT_EQ(ListNames(dir), std::vector<std::string>{DiskCache::EntryFileName(Key(1))});  // no temp left

  const DiskCacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 0u);
  EXPECT_EQ(stats.writes, 1u);
  EXPECT_GT(stats.read_ms, 0.0);
}

TEST(DiskCacheTest, MissIsNotFound) {
  DiskCache cache(Options(FreshDir()));
  absl::StatusOr<std::string> read = cache.Read(Key(1));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().corrupt_entries, 0u);
}

TEST(DiskCacheTest, CreatesPrivateDirectoriesAndFiles) {
  const std::string dir = FreshDir() + "/a/b/cache";
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  ASSERT_TRUE(cache.Write(Key(1), "x").ok());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((dir + "/locks").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat(EntryPath(dir, Key(1)).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(DiskCacheTest, RejectsMalformedKeyHex) {
  const std::string dir = FreshDir();
  DiskCache cache(Options(dir));
  // The last ones have the right length, so only the character check can refuse them.
  for (const std::string& hex : std::vector<std::string>{
           "", "abc", "00112233445566778899AABBCCDDEEFF", "00112233445566778899aabbccddeefg",
           "../../../../../../../etc/passwd", "00112233445566778899aabbccddeeff0",
           "../../../../../../../../../../ab", "0123456789abcdef/123456789abcdef",
           "/23456789abcdef0123456789abcdef0", "0123456789abcdef0123456789abcd..",
           std::string("0123456789abcdef\0" "123456789abcdef", 32),
           "0123456789abcdef0123456789abcde\n"}) {
    ASSERT_TRUE(hex.size() != 32 || hex.find_first_not_of("0123456789abcdef") != std::string::npos);
    const CacheKey key{"text", hex};
    EXPECT_EQ(cache.Read(key).status().code(), absl::StatusCode::kInvalidArgument) << hex;
    EXPECT_EQ(cache.Write(key, "x").code(), absl::StatusCode::kInvalidArgument) << hex;
    EXPECT_EQ(cache.Remove(key).code(), absl::StatusCode::kInvalidArgument) << hex;
    EXPECT_FALSE(cache.LockKey(key).held()) << hex;
  }
  EXPECT_TRUE(cache.enabled());
  EXPECT_TRUE(ListNames(dir).empty());
  EXPECT_TRUE(fs::is_empty(cache.lock_dir()));
}

// Every path below `root`, relative to it, without following links.
std::vector<std::string> Tree(const std::string& root) {
  std::vector<std::string> paths;
  for (const fs::directory_entry& item : fs::recursive_directory_iterator(root)) {
    paths.push_back(fs::relative(item.path(), root).string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// The key text is whatever the service computed (it echoes kernel names and targets);
// only the validated hex ever becomes part of a path.
TEST(DiskCacheTest, FileNamesComeFromTheHexAloneWhateverTheKeyText) {
  const std::string root = FreshDir();
  const std::string dir = root + "/cache";
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  const std::vector<std::string> texts = {"../../escape",  "/etc/passwd", std::string("a\0/b", 4),
                                          "locks/../../x", "..",          "name\nwith newline"};
  std::vector<std::string> expected = {"cache", "cache/locks"};
  for (size_t i = 0; i < texts.size(); ++i) {
    const CacheKey key{texts[i], absl::StrFormat("%032x", 0xd00d00 + i)};
    {
      DiskCache::KeyLock lock = cache.LockKey(key);
      EXPECT_TRUE(lock.held());
      EXPECT_EQ(Tree(root).size(), expected.size() + 1)  // the lock file
          << absl::StrJoin(Tree(root), ", ");
    }
    ASSERT_TRUE(cache.Write(key, "payload").ok());
    ASSERT_TRUE(cache.Read(key).ok());
    expected.push_back(absl::StrCat("cache/", DiskCache::EntryFileName(key)));
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(Tree(root), expected);
}

// Links inside the cache directory are never followed, so none can send a write
// elsewhere: not an entry's name, not a lock file's, not the lock directory.
TEST(DiskCacheTest, SymlinksInsideTheCacheDoNotRedirectWrites) {
  const std::string root = FreshDir();
  const std::string dir = root + "/cache";
  const std::string outside = root + "/outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0700), 0);
  const std::string victim = outside + "/victim";
  WriteFile(victim, "untouched");
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();

  // An entry's name linked to a file outside: the write replaces the link itself.
  const std::string entry = EntryPath(dir, Key(1));
  ASSERT_EQ(symlink(victim.c_str(), entry.c_str()), 0);
  ASSERT_TRUE(cache.Write(Key(1), "payload").ok());
  struct stat st;
  ASSERT_EQ(lstat(entry.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(*cache.Read(Key(1)), "payload");
  // ... and so does a remove.
  ASSERT_EQ(unlink(entry.c_str()), 0);
  ASSERT_EQ(symlink(victim.c_str(), entry.c_str()), 0);
  EXPECT_TRUE(cache.Remove(Key(1)).ok());
  EXPECT_FALSE(Exists(entry));

  // A lock file's name linked outside, to a file and to a name that does not exist:
  // the link is dropped and a real lock file is made in its place.
  for (const std::string& target : {victim, outside + "/created"}) {
    const std::string lock_path = absl::StrCat(cache.lock_dir(), "/", Key(2).hex, ".lock");
    ASSERT_EQ(symlink(target.c_str(), lock_path.c_str()), 0);
    DiskCache::KeyLock lock = cache.LockKey(Key(2));
    EXPECT_TRUE(lock.held()) << target;
    ASSERT_EQ(lstat(lock_path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << target;
  }
  EXPECT_EQ(ReadFile(victim), "untouched");
  EXPECT_EQ(Tree(outside), std::vector<std::string>{"victim"});
  EXPECT_EQ(cache.stats().lock_errors, 0u);
}

TEST(DiskCacheTest, SymlinkedLockDirectoryInsideTheCacheIsRefused) {
  const std::string root = FreshDir();
  const std::string dir = root + "/cache";
  const std::string elsewhere = root + "/elsewhere";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(symlink(elsewhere.c_str(), (dir + "/locks").c_str()), 0);
  testing::internal::CaptureStderr();
  DiskCache cache(Options(dir));
  const std::string captured = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(cache.enabled());
  EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), "symbolic link"))
      << cache.disabled_reason();
  EXPECT_EQ(CountWarnings(captured), 1) << captured;
  EXPECT_FALSE(cache.LockKey(Key(1)).held());
  EXPECT_TRUE(fs::is_empty(elsewhere));

  // Where the user points lock_dir (ROPE_JIT_LOCK_DIR), or the cache directory itself,
  // may be reached through a link: that is a choice, not a planted file.
  const std::string linked_dir = root + "/linked_cache";
  const std::string linked_locks = root + "/linked_locks";
  ASSERT_EQ(symlink(elsewhere.c_str(), linked_locks.c_str()), 0);
  ASSERT_EQ(symlink((root + "/real_cache").c_str(), linked_dir.c_str()), 0);
  ASSERT_EQ(mkdir((root + "/real_cache").c_str(), 0700), 0);
  DiskCacheOptions options = Options(linked_dir);
  options.lock_dir = linked_locks;
  DiskCache linked(options);
  ASSERT_TRUE(linked.enabled()) << linked.disabled_reason();
  EXPECT_TRUE(linked.LockKey(Key(1)).held());
  ASSERT_TRUE(linked.Write(Key(1), "payload").ok());
  EXPECT_TRUE(Exists(EntryPath(root + "/real_cache", Key(1))));
}

struct Fault {
  const char* name;
  // Damages the entry at `path` (a valid entry of `key` is there).
  std::function<void(const std::string& dir, const std::string& path, const CacheKey& key)> apply;
};

std::vector<Fault> Faults() {
  return {
      {"truncated", [](const std::string&, const std::string& path,
                       const CacheKey&) { ASSERT_EQ(truncate(path.c_str(), 30), 0); }},
      {"flipped payload byte",
       [](const std::string&, const std::string& path, const CacheKey&) {
         std::string bytes = ReadFile(path);
         bytes.back() ^= 0x10;
         WriteFile(path, bytes);
       }},
      {"wrong magic",
       [](const std::string&, const std::string& path, const CacheKey&) {
         std::string bytes = ReadFile(path);
         bytes[1] = 'X';
         WriteFile(path, bytes);
       }},
      {"another key's entry",
       [](const std::string&, const std::string& path, const CacheKey& key) {
         WriteFile(path, EncodeCacheEntry({"another key", key.hex}, "other payload"));
       }},
      {"trailing bytes", [](const std::string&, const std::string& path,
                            const CacheKey&) { WriteFile(path, ReadFile(path) + "garbage"); }},
      {"zero length", [](const std::string&, const std::string& path,
                         const CacheKey&) { ASSERT_EQ(truncate(path.c_str(), 0), 0); }},
      {"directory",
       [](const std::string&, const std::string& path, const CacheKey&) {
         ASSERT_EQ(unlink(path.c_str()), 0);
         ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
         ASSERT_EQ(mkdir((path + "/sub").c_str(), 0700), 0);
         WriteFile(path + "/sub/file", "x");
       }},
      {"symlink",
       [](const std::string& dir, const std::string& path, const CacheKey& key) {
         // Even a link to a valid entry of this very key is refused: links are never
         // followed out of the directory.
         const std::string target = dir + "/../symlink_target";
         WriteFile(target, EncodeCacheEntry(key, "linked payload"));
         ASSERT_EQ(unlink(path.c_str()), 0);
         ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
       }},
      {"fifo",
       [](const std::string&, const std::string& path, const CacheKey&) {
         ASSERT_EQ(unlink(path.c_str()), 0);
         ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
       }},
  };
}

TEST(DiskCacheTest, DamagedEntriesAreCountedRemovedAndReplaced) {
  const std::string root = FreshDir();
  const std::vector<Fault> faults = Faults();
  for (size_t i = 0; i < faults.size(); ++i) {
    const Fault& fault = faults[i];
    SCOPED_TRACE(fault.name);
    const std::string dir = absl::StrCat(root, "/", i, "/cache");
    DiskCache cache(Options(dir));
    ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
    const CacheKey key = Key(7);
    const std::string path = EntryPath(dir, key);
    ASSERT_TRUE(cache.Write(key, "first payload").ok());
    fault.apply(dir, path, key);

    absl::StatusOr<std::string> read = cache.Read(key);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
    EXPECT_FALSE(Exists(path));
    DiskCacheStats stats = cache.stats();
    EXPECT_EQ(stats.corrupt_entries, 1u);
    EXPECT_EQ(stats.misses, 1u);

    ASSERT_TRUE(cache.Write(key, "second payload").ok());
    read = cache.Read(key);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, "second payload");
    EXPECT_EQ(cache.stats().hits, 1u);
    EXPECT_TRUE(cache.enabled());
  }
  // The symlink's target was left alone.
  for (size_t i = 0; i < faults.size(); ++i) {
    if (absl::string_view(faults[i].name) == "symlink") {
      EXPECT_TRUE(Exists(absl::StrCat(root, "/", i, "/symlink_target")));
    }
  }
}

TEST(DiskCacheTest, WriteReplacesDirectoryWhereEntryGoes) {
  const std::string dir = FreshDir();
  DiskCache cache(Options(dir));
  const std::string path = EntryPath(dir, Key(1));
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  WriteFile(path + "/file", "x");
  ASSERT_TRUE(cache.Write(Key(1), "payload").ok());
  EXPECT_EQ(*cache.Read(Key(1)), "payload");
  EXPECT_EQ(cache.stats().corrupt_entries, 1u);
  EXPECT_TRUE(cache.enabled());
}

TEST(DiskCacheTest, RemoveDropsEntry) {
  const std::string dir = FreshDir();
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.Write(Key(1), "payload").ok());
  EXPECT_TRUE(cache.Remove(Key(1)).ok());
  EXPECT_FALSE(Exists(EntryPath(dir, Key(1))));
  EXPECT_EQ(cache.Read(Key(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(cache.Remove(Key(1)).ok());  // already gone
}

TEST(DiskCacheTest, DisabledWhenDirIsEmpty) {
  testing::internal::CaptureStderr();
  DiskCache cache(DiskCacheOptions{});
  EXPECT_EQ(CountWarnings(testing::internal::GetCapturedStderr()), 0);  // asked for
  EXPECT_FALSE(cache.enabled());
  EXPECT_FALSE(cache.disabled_reason().empty());
  EXPECT_EQ(cache.Read(Key(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.Write(Key(1), "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(cache.LockKey(Key(1)).held());
  EXPECT_EQ(cache.TotalBytes(), 0u);
  EXPECT_EQ(cache.stats().misses, 0u);
}

TEST(DiskCacheTest, DisabledWithOneWarningWhenParentIsAFile) {
  const std::string file = FreshDir() + "/file";
  WriteFile(file, "x");
  testing::internal::CaptureStderr();
  DiskCache cache(Options(file + "/cache"));
  const std::string captured = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(cache.enabled());
  EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), "Not a directory"))
      << cache.disabled_reason();
  EXPECT_EQ(CountWarnings(captured), 1) << captured;
  EXPECT_EQ(captured.back(), '\n');
}

TEST(DiskCacheTest, RefusesDirectoryThatIsAFile) {
  const std::string file = FreshDir() + "/file";
  WriteFile(file, "x");
  DiskCache cache(Options(file));
  EXPECT_FALSE(cache.enabled());
  EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), "not a directory"))
      << cache.disabled_reason();
}

TEST(DiskCacheTest, RefusesGroupOrOtherWritableDirectory) {
  for (mode_t mode : {0770, 0707, 0777, 01777}) {
    const std::string dir = FreshDir() + absl::StrFormat("/mode%o", mode);
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(chmod(dir.c_str(), mode), 0);
    DiskCache cache(Options(dir));
    EXPECT_FALSE(cache.enabled()) << std::oct << mode;
    EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), "writable by group or others"))
        << cache.disabled_reason();
  }
}

TEST(DiskCacheTest, RefusesDirectoryOwnedByAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  const std::string dir = FreshDir() + "/theirs";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  if (chown(dir.c_str(), 65534, 65534) != 0) {
    ASSERT_EQ(errno, EINVAL) << strerror(errno);
    GTEST_SKIP() << "uid 65534 does not exist in this user namespace (a sandbox?)";
  }
  DiskCache cache(Options(dir));
  EXPECT_FALSE(cache.enabled());
  EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), "owned by uid 65534"))
      << cache.disabled_reason();
}

TEST(DiskCacheTest, UnprivilegedUserCannotUseRootsDirectory) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  // Under /tmp rather than TEST_TMPDIR: the user must be able to reach the directory
  // for the ownership check (and not just a search permission) to be what refuses it.
  char scratch[] = "/tmp/rope_jit_disk_cache_test.XXXXXX";
  ASSERT_NE(mkdtemp(scratch), nullptr);
  const std::string dir = absl::StrCat(scratch, "/roots");
  absl::Cleanup remove_scratch = [&] { fs::remove_all(scratch); };
  ASSERT_EQ(chmod(scratch, 0755), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  constexpr int kCannotDropPrivileges = 77;
  const int status = RunInChild([&] {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
      return kCannotDropPrivileges;
    }
    DiskCache cache(Options(dir));
    if (cache.enabled()) return 1;
    if (!absl::StrContains(cache.disabled_reason(), "owned by uid 0")) return 2;
    if (cache.Write(Key(1), "x").ok()) return 3;
    return 0;
  });
  if (WIFEXITED(status) && WEXITSTATUS(status) == kCannotDropPrivileges) {
    GTEST_SKIP() << "uid 65534 does not exist in this user namespace (a sandbox?)";
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  EXPECT_TRUE(ListNames(dir).empty());
}

TEST(DiskCacheTest, FailedWriteDisablesWithOneWarning) {
  const std::string dir = FreshDir() + "/cache";
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled());
  fs::remove_all(dir);  // as if the disk went away
  testing::internal::CaptureStderr();
  const absl::Status first = cache.Write(Key(1), "x");
  const absl::Status second = cache.Write(Key(2), "y");
  const std::string captured = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(first.ok());
  EXPECT_TRUE(absl::StrContains(first.message(), dir)) << first;
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition) << second;
  EXPECT_FALSE(cache.enabled());
  EXPECT_EQ(cache.disabled_reason(), first.message());
  EXPECT_EQ(CountWarnings(captured), 1) << captured;
  EXPECT_EQ(cache.stats().write_failures, 1u);
  EXPECT_EQ(cache.Read(Key(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(cache.LockKey(Key(1)).held());
}

// In a child with RLIMIT_FSIZE of 4 KiB: writes a 64 KiB entry to `dir` with stderr on
// `stderr_fd`. Exit code 0 when the write failed cleanly and the cache disabled itself.
int WriteOverFileSizeLimit(const std::string& dir, int stderr_fd) {
  if (dup2(stderr_fd, STDERR_FILENO) < 0) return 9;
  DiskCache cache(Options(dir));
  if (!cache.enabled()) return 10;
  const struct rlimit limit = {4096, 4096};
  if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return 11;
  const absl::Status written = cache.Write(Key(1), std::string(64 * 1024, 'x'));
  if (written.ok()) return 12;
  if (!absl::StrContains(written.message(), "RLIMIT_FSIZE")) return 13;
  if (cache.enabled()) return 14;
  if (cache.stats().write_failures != 1) return 15;
  usleep(10000);  // a signal consumed late would kill the process now
  return 0;
}

TEST(DiskCacheTest, FileSizeLimitFailsWriteCleanly) {
  const std::string dir = FreshDir() + "/cache";
  int warnings[2];
  ASSERT_EQ(pipe(warnings), 0);
  const int status = RunInChild([&] { return WriteOverFileSizeLimit(dir, warnings[1]); });
  close(warnings[1]);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  EXPECT_TRUE(ListNames(dir).empty()) << "temp file or entry left behind";
  char buffer[4096];
  const ssize_t n = read(warnings[0], buffer, sizeof(buffer));
  close(warnings[0]);
  const std::string captured(buffer, n > 0 ? n : 0);
  EXPECT_EQ(CountWarnings(captured), 1) << captured;
  EXPECT_TRUE(absl::StrContains(captured, "File too large")) << captured;
}

TEST(DiskCacheTest, WarningToStderrFilePastFileSizeLimitDoesNotKill) {
  // stderr is a log file already past the limit, so the warning itself hits RLIMIT_FSIZE.
  const std::string root = FreshDir();
  const std::string log = root + "/stderr.log";
  WriteFile(log, std::string(8192, '.'));
  const int log_fd = open(log.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(log_fd, 0);
  const int status = RunInChild([&] { return WriteOverFileSizeLimit(root + "/cache", log_fd); });
  close(log_fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
}

TEST(DiskCacheTest, EvictsLeastRecentlyUsedFirst) {
  const std::string dir = FreshDir();
  const size_t entry_size = EncodeCacheEntry(Key(0), std::string(1000, 'p')).size();
  DiskCacheOptions options = Options(dir);
  options.max_bytes = 3 * entry_size + entry_size / 2;  // room for three
  DiskCache cache(options);
  const std::string payload(1000, 'p');
  const absl::Time now = absl::Now();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(cache.Write(Key(i), payload).ok());
    SetMtime(EntryPath(dir, Key(i)), now - absl::Seconds(300 - 100 * i));
  }
  EXPECT_EQ(cache.TotalBytes(), 3 * entry_size);
  EXPECT_EQ(cache.stats().evictions, 0u);

  // Key 0 is the oldest by writing but was used just now.
  ASSERT_TRUE(cache.Read(Key(0)).ok());
  ASSERT_TRUE(cache.Write(Key(3), payload).ok());
  EXPECT_FALSE(Exists(EntryPath(dir, Key(1))));
  EXPECT_TRUE(Exists(EntryPath(dir, Key(0))));
  EXPECT_TRUE(Exists(EntryPath(dir, Key(2))));
  EXPECT_TRUE(Exists(EntryPath(dir, Key(3))));
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_LE(cache.TotalBytes(), options.max_bytes);

  ASSERT_TRUE(cache.Write(Key(4), payload).ok());
  EXPECT_FALSE(Exists(EntryPath(dir, Key(2))));
  EXPECT_EQ(cache.stats().evictions, 2u);
  EXPECT_EQ(cache.Read(Key(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(cache.Read(Key(0)).ok());
}

TEST(DiskCacheTest, NewestEntryStaysEvenOverBudget) {
  const std::string dir = FreshDir();
  DiskCacheOptions options = Options(dir);
  options.max_bytes = 10;
  DiskCache cache(options);
  ASSERT_TRUE(cache.Write(Key(1), "first").ok());
  ASSERT_TRUE(cache.Write(Key(2), "second").ok());
  EXPECT_FALSE(Exists(EntryPath(dir, Key(1))));
  EXPECT_EQ(*cache.Read(Key(2)), "second");
}

TEST(DiskCacheTest, TotalBytesCountsOnlyEntries) {
  const std::string dir = FreshDir();
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.Write(Key(1), "abc").ok());
  ASSERT_TRUE(cache.Write(Key(2), "defgh").ok());
  WriteFile(dir + "/unrelated.txt", std::string(100, 'x'));
  WriteFile(dir + "/.tmp-in-progress", std::string(100, 'x'));
  EXPECT_EQ(cache.TotalBytes(),
            EncodeCacheEntry(Key(1), "abc").size() + EncodeCacheEntry(Key(2), "defgh").size());
}

TEST(DiskCacheTest, StaleTempFilesAreCleanedUp) {
  const std::string dir = FreshDir();
  DiskCacheOptions options = Options(dir);
  options.max_bytes = 0;  // every write scans the directory
  DiskCache cache(options);
  const std::string stale = dir + "/.tmp-" + Key(1).hex + "-AAAAAA";
  const std::string fresh = dir + "/.tmp-" + Key(2).hex + "-BBBBBB";
  WriteFile(stale, "partial");
  WriteFile(fresh, "partial");
  SetMtime(stale, absl::Now() - absl::Hours(2));
  ASSERT_TRUE(cache.Write(Key(3), "x").ok());
  EXPECT_FALSE(Exists(stale));
  EXPECT_TRUE(Exists(fresh));  // may be another process's write in progress
}

TEST(DiskCacheTest, LockIsExclusiveAcrossThreads) {
  DiskCacheOptions options = Options(FreshDir());
  options.lock_timeout = absl::Seconds(30);
  DiskCache cache(options);
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  std::atomic<int> counter{0};
  std::atomic<int> not_held{0};
  constexpr int kThreads = 8;
  constexpr int kRounds = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        DiskCache::KeyLock lock = cache.LockKey(Key(1));
        if (!lock.held()) ++not_held;
        const int now_inside = ++inside;
        int seen = most_inside.load();
        while (now_inside > seen && !most_inside.compare_exchange_weak(seen, now_inside)) {
        }
        // A read-sleep-write that loses updates unless the lock excludes.
        const int value = counter.load(std::memory_order_relaxed);
        absl::SleepFor(absl::Microseconds(200));
        counter.store(value + 1, std::memory_order_relaxed);
        --inside;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(not_held.load(), 0);
  EXPECT_EQ(most_inside.load(), 1);
  EXPECT_EQ(counter.load(), kThreads * kRounds);
  EXPECT_GT(cache.stats().lock_waits, 0u);
  EXPECT_EQ(cache.stats().lock_timeouts, 0u);
  // Each holder removes its lock file on release: none pile up.
  EXPECT_TRUE(fs::is_empty(cache.lock_dir()));
}

// Readers, writers and eviction at once (a small budget evicts on most writes): a read
// gets a whole entry of its own key or a miss, never a torn or foreign one.
TEST(DiskCacheTest, ThreadsReadWriteAndEvictConcurrently) {
  const std::string dir = FreshDir();
  DiskCacheOptions options = Options(dir);
  const auto payload = [](int key) { return std::string(2000 + 100 * key, 'a' + key); };
  options.max_bytes = 3 * EncodeCacheEntry(Key(0), payload(5)).size();
  DiskCache cache(options);
  constexpr int kThreads = 8;
  constexpr int kRounds = 60;
  constexpr int kKeys = 6;
  std::atomic<int> hits{0};
  std::atomic<int> wrong{0};
  std::atomic<int> failed_writes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const int key = (round + t) % kKeys;
        if (round % 3 == 0) {  // threads write different keys: t and t + 3 (mod 6)
          if (!cache.Write(Key(key), payload(key)).ok()) ++failed_writes;
        } else if (absl::StatusOr<std::string> read = cache.Read(Key(key)); read.ok()) {
          ++hits;
          if (*read != payload(key)) ++wrong;
        } else if (read.status().code() != absl::StatusCode::kNotFound) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(failed_writes.load(), 0);
  EXPECT_GT(hits.load(), 0);
  const DiskCacheStats stats = cache.stats();
  EXPECT_EQ(stats.corrupt_entries, 0u);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_TRUE(cache.enabled());
  EXPECT_LE(cache.TotalBytes(), options.max_bytes);
}

TEST(DiskCacheTest, LockIsExclusiveAcrossProcesses) {
  const std::string dir = FreshDir();
  struct Shared {
    std::atomic<int> inside;
    std::atomic<int> most_inside;
    std::atomic<int> counter;
  };
  void* memory =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  Shared* shared = new (memory) Shared{{0}, {0}, {0}};
  constexpr int kChildren = 4;
  constexpr int kRounds = 10;
  std::vector<pid_t> children;
  fflush(stderr);
  for (int c = 0; c < kChildren; ++c) {
    const pid_t pid = fork();
    if (pid == 0) {
      DiskCacheOptions options = Options(dir);
      options.lock_timeout = absl::Seconds(30);
      DiskCache cache(options);  // each process its own cache, as in real use
      for (int round = 0; round < kRounds; ++round) {
        DiskCache::KeyLock lock = cache.LockKey(Key(1));
        if (!lock.held()) _exit(2);
        const int now_inside = ++shared->inside;
        int seen = shared->most_inside.load();
        while (now_inside > seen && !shared->most_inside.compare_exchange_weak(seen, now_inside)) {
        }
        const int value = shared->counter.load();
        usleep(300);
        shared->counter.store(value + 1);
        --shared->inside;
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  }
  EXPECT_EQ(shared->most_inside.load(), 1);
  EXPECT_EQ(shared->counter.load(), kChildren * kRounds);
  munmap(memory, sizeof(Shared));
}

TEST(DiskCacheTest, ProcessesRacingOnAMissCompileOnce) {
  // The service's flow: Read, miss, LockKey, Read again, compile only if still missing.
  const std::string dir = FreshDir();
  void* memory = mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  std::atomic<int>* compiles = new (memory) std::atomic<int>(0);
  constexpr int kChildren = 4;
  std::vector<pid_t> children;
  fflush(stderr);
  for (int c = 0; c < kChildren; ++c) {
    const pid_t pid = fork();
    if (pid == 0) {
      DiskCache cache(Options(dir));
      absl::StatusOr<std::string> code = cache.Read(Key(1));
      if (!code.ok()) {
        DiskCache::KeyLock lock = cache.LockKey(Key(1));
        code = cache.Read(Key(1));
        if (!code.ok()) {
          ++*compiles;
          absl::SleepFor(absl::Milliseconds(50));  // the compile
          code = std::string("compiled code");
          if (!cache.Write(Key(1), *code).ok()) _exit(3);
        }
      }
      _exit(*code == "compiled code" ? 0 : 4);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  }
  EXPECT_EQ(compiles->load(), 1);
  munmap(memory, sizeof(std::atomic<int>));
}

TEST(DiskCacheTest, LockTimeoutReturnsUnheldLockAndCountsIt) {
  DiskCacheOptions options = Options(FreshDir());
  options.lock_timeout = absl::Milliseconds(60);
  DiskCache cache(options);
  DiskCache::KeyLock holder = cache.LockKey(Key(1));
  ASSERT_TRUE(holder.held());
  const absl::Time start = absl::Now();
  DiskCache::KeyLock waiter = cache.LockKey(Key(1));
  const absl::Duration waited = absl::Now() - start;
  EXPECT_FALSE(waiter.held());
  EXPECT_GE(waited, absl::Milliseconds(60));
  EXPECT_LT(waited, absl::Seconds(2));
  DiskCacheStats stats = cache.stats();
  EXPECT_EQ(stats.lock_waits, 1u);
  EXPECT_EQ(stats.lock_timeouts, 1u);
  EXPECT_GE(stats.lock_wait_ms, 60.0);

  // Another key is not blocked, and the first one is free once released.
  EXPECT_TRUE(cache.LockKey(Key(2)).held());
  holder.Release();
  EXPECT_FALSE(holder.held());
  EXPECT_TRUE(cache.LockKey(Key(1)).held());
  EXPECT_EQ(cache.stats().lock_timeouts, 1u);
}

TEST(DiskCacheTest, LockMovesAndReleasesOnce) {
  DiskCacheOptions options = Options(FreshDir());
  options.lock_timeout = absl::ZeroDuration();
  DiskCache cache(options);
  DiskCache::KeyLock first = cache.LockKey(Key(1));
  ASSERT_TRUE(first.held());
  DiskCache::KeyLock moved(std::move(first));
  EXPECT_FALSE(first.held());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(cache.LockKey(Key(1)).held());
  DiskCache::KeyLock assigned;
  assigned = std::move(moved);
  EXPECT_TRUE(assigned.held());
  assigned = DiskCache::KeyLock();  // releases
  EXPECT_TRUE(cache.LockKey(Key(1)).held());
}

TEST(DiskCacheTest, KilledHolderDoesNotBlockOthers) {
  const std::string dir = FreshDir();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  fflush(stderr);
  const pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    DiskCache cache(Options(dir));
    DiskCache::KeyLock lock = cache.LockKey(Key(1));
    const char held = lock.held() ? 'y' : 'n';
    if (write(ready[1], &held, 1) != 1) _exit(1);
    pause();  // holds the lock until killed
    _exit(0);
  }
  close(ready[1]);
  char held = 0;
  ASSERT_EQ(read(ready[0], &held, 1), 1);
  close(ready[0]);
  ASSERT_EQ(held, 'y');

  DiskCacheOptions options = Options(dir);
  options.lock_timeout = absl::Milliseconds(50);
  {
    DiskCache cache(options);
    EXPECT_FALSE(cache.LockKey(Key(1)).held()) << "the child should hold it";
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << DescribeWaitStatus(status);

  options.lock_timeout = absl::Seconds(10);
  DiskCache cache(options);
  const absl::Time start = absl::Now();
  EXPECT_TRUE(cache.LockKey(Key(1)).held());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(cache.stats().lock_waits, 0u);
}

TEST(DiskCacheTest, LockDirOptionIsHonoured) {
  const std::string root = FreshDir();
  DiskCacheOptions options = Options(root + "/cache");
  options.lock_dir = root + "/node_local/locks";
  DiskCache cache(options);
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  EXPECT_EQ(cache.lock_dir(), options.lock_dir);
  DiskCache::KeyLock lock = cache.LockKey(Key(1));
  ASSERT_TRUE(lock.held());
  EXPECT_TRUE(Exists(absl::StrCat(options.lock_dir, "/", Key(1).hex, ".lock")));
  EXPECT_FALSE(Exists(root + "/cache/locks"));
}

TEST(DiskCacheTest, UnusableLockDirDisablesCache) {
  const std::string root = FreshDir();
  ASSERT_EQ(mkdir((root + "/shared_locks").c_str(), 0777), 0);
  ASSERT_EQ(chmod((root + "/shared_locks").c_str(), 0777), 0);
  DiskCacheOptions options = Options(root + "/cache");
  options.lock_dir = root + "/shared_locks";
  DiskCache cache(options);
  EXPECT_FALSE(cache.enabled());
  EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), "shared_locks"));
}

// Issue 14, item 1: whoever can rename an ancestor of the cache directory can swap the
// directory for their own after it was checked. Such ancestors (group or other
// writable, no sticky bit, whoever owns them: root-owned ones included) are refused for
// the cache and the lock directory alike; a sticky one (like /tmp) is not.
TEST(DiskCacheTest, RefusesDirectoryWithAnAncestorOthersCanRename) {
  const std::string root = FreshDir();
  for (mode_t mode : {0777, 0770, 0703}) {
    const std::string open = absl::StrFormat("%s/open%o", root, mode);
    ASSERT_EQ(mkdir(open.c_str(), 0700), 0);
    ASSERT_EQ(chmod(open.c_str(), mode), 0);
    testing::internal::CaptureStderr();
    DiskCache cache(Options(open + "/private/cache"));
    const std::string captured = testing::internal::GetCapturedStderr();
    EXPECT_FALSE(cache.enabled()) << std::oct << mode;
    EXPECT_TRUE(absl::StrContains(cache.disabled_reason(), open + " is writable by group or others"))
        << cache.disabled_reason();
    EXPECT_EQ(CountWarnings(captured), 1) << captured;

    DiskCacheOptions options = Options(root + "/cache");
    options.lock_dir = open + "/locks";
    DiskCache locks_under_open(options);
    EXPECT_FALSE(locks_under_open.enabled()) << std::oct << mode;
    EXPECT_TRUE(absl::StrContains(locks_under_open.disabled_reason(), open))
        << locks_under_open.disabled_reason();
  }
  const std::string sticky = root + "/sticky";
  ASSERT_EQ(mkdir(sticky.c_str(), 0700), 0);
  ASSERT_EQ(chmod(sticky.c_str(), 01777), 0);
  DiskCache under_sticky(Options(sticky + "/cache"));
  EXPECT_TRUE(under_sticky.enabled()) << under_sticky.disabled_reason();
}

// Every operation after the check is relative to the directory that was checked: a
// directory renamed away and replaced by another (with a valid planted entry) is not
// read, written or locked through its old path.
TEST(DiskCacheTest, DirectorySwappedAfterTheCheckIsNotUsed) {
  const std::string root = FreshDir();
  const std::string dir = root + "/cache";
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  ASSERT_TRUE(cache.Write(Key(1), "checked").ok());

  ASSERT_EQ(rename(dir.c_str(), (root + "/moved").c_str()), 0);
  {
    DiskCache planter(Options(dir));
    ASSERT_TRUE(planter.Write(Key(1), "planted").ok());
    ASSERT_TRUE(planter.Write(Key(2), "planted").ok());
  }
  absl::StatusOr<std::string> read = cache.Read(Key(1));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "checked");
  EXPECT_EQ(cache.Read(Key(2)).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(cache.Write(Key(3), "mine").ok());
  EXPECT_TRUE(Exists(EntryPath(root + "/moved", Key(3))));
  EXPECT_FALSE(Exists(EntryPath(dir, Key(3))));
  DiskCache::KeyLock lock = cache.LockKey(Key(3));
  ASSERT_TRUE(lock.held());
  EXPECT_TRUE(Exists(absl::StrCat(root, "/moved/locks/", Key(3).hex, ".lock")));
  EXPECT_FALSE(Exists(absl::StrCat(dir, "/locks/", Key(3).hex, ".lock")));
  lock.Release();
  EXPECT_FALSE(Exists(absl::StrCat(root, "/moved/locks/", Key(3).hex, ".lock")));
  ASSERT_TRUE(cache.Remove(Key(1)).ok());
  EXPECT_TRUE(Exists(EntryPath(dir, Key(1))));
  EXPECT_FALSE(Exists(EntryPath(root + "/moved", Key(1))));
}

// A relative directory is made absolute once, when the cache is made: a later chdir
// changes nothing, and dir() names the directory in use.
TEST(DiskCacheTest, RelativeDirectoryIsMadeAbsoluteOnce) {
  const std::string root = FreshDir();
  char* saved_cwd = getcwd(nullptr, 0);
  ASSERT_NE(saved_cwd, nullptr);
  absl::Cleanup restore_cwd = [&] {
    EXPECT_EQ(chdir(saved_cwd), 0);
    free(saved_cwd);
  };
  ASSERT_EQ(chdir(root.c_str()), 0);
  DiskCache cache(Options("relative/cache"));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  EXPECT_EQ(cache.dir(), root + "/relative/cache");
  EXPECT_EQ(cache.lock_dir(), root + "/relative/cache/locks");
  ASSERT_EQ(mkdir((root + "/elsewhere").c_str(), 0700), 0);
  ASSERT_EQ(chdir((root + "/elsewhere").c_str()), 0);
  ASSERT_TRUE(cache.Write(Key(1), "x").ok());
  EXPECT_TRUE(Exists(EntryPath(root + "/relative/cache", Key(1))));
  EXPECT_FALSE(Exists(root + "/elsewhere/relative"));
}

// Issue 14, item 6: a directory or a socket where a lock file goes is repaired like a
// symbolic link there: removed, and a real lock file made in its place, so single flight
// keeps working for that key.
TEST(DiskCacheTest, DirectoryOrSocketAtALockPathIsRepaired) {
  const std::string dir = FreshDir();
  DiskCache cache(Options(dir));
  ASSERT_TRUE(cache.enabled()) << cache.disabled_reason();
  const std::string lock_path = absl::StrCat(cache.lock_dir(), "/", Key(1).hex, ".lock");

  ASSERT_EQ(mkdir(lock_path.c_str(), 0700), 0);
  WriteFile(lock_path + "/inside", "x");
  {
    DiskCache::KeyLock lock = cache.LockKey(Key(1));
    EXPECT_TRUE(lock.held());
    struct stat st;
    ASSERT_EQ(lstat(lock_path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
  }

  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  struct sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  // Bound through a short relative name: the absolute path may not fit sun_path.
  char* saved_cwd = getcwd(nullptr, 0);
  ASSERT_EQ(chdir(cache.lock_dir().c_str()), 0);
  const std::string name = absl::StrCat(Key(1).hex, ".lock");
  std::strncpy(address.sun_path, name.c_str(), sizeof(address.sun_path) - 1);
  const int bound = bind(sock, reinterpret_cast<struct sockaddr*>(&address), sizeof(address));
  ASSERT_EQ(chdir(saved_cwd), 0);
  free(saved_cwd);
  close(sock);
  ASSERT_EQ(bound, 0) << strerror(errno);
  {
    DiskCache::KeyLock lock = cache.LockKey(Key(1));
    EXPECT_TRUE(lock.held());
    struct stat st;
    ASSERT_EQ(lstat(lock_path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
  }
  EXPECT_EQ(cache.stats().lock_errors, 0u);
}

// Sets environment variables for one test and restores them after it.
class ScopedEnvironment {
 public:
  ScopedEnvironment() {
    for (const char* name : kNames) {
      const char* value = getenv(name);
      saved_.emplace_back(name,
                          value != nullptr ? std::optional<std::string>(value) : std::nullopt);
      unsetenv(name);
    }
  }
  ~ScopedEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value.has_value()) {
        setenv(name, value->c_str(), 1);
      } else {
        unsetenv(name);
      }
    }
  }
  void Set(const char* name, const char* value) { setenv(name, value, 1); }

 private:
  static constexpr const char* kNames[] = {"ROPE_JIT_CACHE_DIR",       "ROPE_JIT_CACHE_DISABLE",
                                           "ROPE_JIT_CACHE_MAX_BYTES", "ROPE_JIT_LOCK_DIR",
                                           "XDG_CACHE_HOME",           "HOME"};
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

TEST(DiskCacheOptionsTest, CacheDirVariableComesFirst) {
  ScopedEnvironment env;
  env.Set("ROPE_JIT_CACHE_DIR", "/scratch/kernels");
  env.Set("XDG_CACHE_HOME", "/xdg");
  env.Set("HOME", "/home/user");
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "/scratch/kernels");
}

TEST(DiskCacheOptionsTest, XdgCacheHomeThenHome) {
  ScopedEnvironment env;
  env.Set("XDG_CACHE_HOME", "/xdg");
  env.Set("HOME", "/home/user");
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "/xdg/rope_jit");
  env.Set("XDG_CACHE_HOME", "relative/ignored");
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "/home/user/.cache/rope_jit");
  unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "/home/user/.cache/rope_jit");
}

TEST(DiskCacheOptionsTest, WithoutHomeUsesPasswdHome) {
  ScopedEnvironment env;
  const std::string dir = DiskCacheOptions::FromEnvironment().dir;
  EXPECT_TRUE(dir.empty() || absl::EndsWith(dir, "/.cache/rope_jit")) << dir;
}

TEST(DiskCacheOptionsTest, DisableVariableEmptiesDir) {
  ScopedEnvironment env;
  env.Set("ROPE_JIT_CACHE_DIR", "/scratch/kernels");
  for (const char* yes : {"1", "true", "TRUE", " 1 "}) {
    env.Set("ROPE_JIT_CACHE_DISABLE", yes);
    testing::internal::CaptureStderr();
    EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "") << yes;
    EXPECT_EQ(CountWarnings(testing::internal::GetCapturedStderr()), 0) << yes;
  }
  for (const char* no : {"0", "false", "False", ""}) {
    env.Set("ROPE_JIT_CACHE_DISABLE", no);
    testing::internal::CaptureStderr();
    EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "/scratch/kernels") << no;
    EXPECT_EQ(CountWarnings(testing::internal::GetCapturedStderr()), 0) << no;
  }
  // Anything else leaves the cache on and says so (issue 14, item 8).
  for (const char* unclear : {"2", "yes", "on", "disable"}) {
    env.Set("ROPE_JIT_CACHE_DISABLE", unclear);
    testing::internal::CaptureStderr();
    EXPECT_EQ(DiskCacheOptions::FromEnvironment().dir, "/scratch/kernels") << unclear;
    const std::string captured = testing::internal::GetCapturedStderr();
    EXPECT_EQ(CountWarnings(captured), 1) << unclear;
    EXPECT_TRUE(absl::StrContains(captured, "ROPE_JIT_CACHE_DISABLE")) << captured;
  }
}

TEST(DiskCacheOptionsTest, MaxBytesVariable) {
  ScopedEnvironment env;
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().max_bytes, DiskCacheOptions{}.max_bytes);
  const std::pair<const char*, uint64_t> cases[] = {{"12345", 12345},       {"1", 1},
                                                    {"512M", 512ull << 20}, {"4g", 4ull << 30},
                                                    {"64KiB", 64ull << 10}, {"2TB", 2ull << 40}};
  for (const auto& [text, bytes] : cases) {
    env.Set("ROPE_JIT_CACHE_MAX_BYTES", text);
    EXPECT_EQ(DiskCacheOptions::FromEnvironment().max_bytes, bytes) << text;
  }
  // 0 would keep no entry (in fact the newest one): refused, ROPE_JIT_CACHE_DISABLE=1
  // says that (issue 14, item 8).
  for (const char* bad : {"lots", "-1", "12X", "99999999999999999999", "1.5G", "0", "0K"}) {
    env.Set("ROPE_JIT_CACHE_MAX_BYTES", bad);
    testing::internal::CaptureStderr();
    EXPECT_EQ(DiskCacheOptions::FromEnvironment().max_bytes, DiskCacheOptions{}.max_bytes) << bad;
    EXPECT_EQ(CountWarnings(testing::internal::GetCapturedStderr()), 1) << bad;
  }
}

TEST(DiskCacheOptionsTest, LockDirVariable) {
  ScopedEnvironment env;
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().lock_dir, "");
  env.Set("ROPE_JIT_LOCK_DIR", "/local/locks");
  EXPECT_EQ(DiskCacheOptions::FromEnvironment().lock_dir, "/local/locks");
}

}  // namespace
}  // namespace rope_jit
