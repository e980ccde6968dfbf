// tools/cache_probe.h: the read-only probe of one cache entry.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "tests/test_files.h"
#include "tools/cache_probe.h"

namespace rope_jit {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------------------
// Cache probe

TEST(CacheProbeTest, ReportsEachStateAndChangesNothing) {
  const std::string dir = TempPath("probe");
  CacheKey key{"kernel=rope;target=sm_90", std::string(32, 'a')};
  EXPECT_EQ(ProbeEntry(dir, key, true).state, EntryState::kMissing);
  EXPECT_FALSE(Exists(dir));  // probing never creates the directory

  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string path = CacheEntryPath(dir, key);
  WriteFile(path, EncodeCacheEntry(key, "code object"));
  struct stat before;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kPresent);
  EntryProbe valid = ProbeEntry(dir, key, true);
  EXPECT_EQ(valid.state, EntryState::kValid);
  EXPECT_EQ(valid.payload, "code object");
  struct stat after;
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);  // no LRU touch
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);

  std::string bytes = ReadFile(path);
  bytes[bytes.size() - 3] ^= 0x40;
  WriteFile(path, bytes);
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kPresent);  // only a stat
  EntryProbe damaged = ProbeEntry(dir, key, true);
  EXPECT_EQ(damaged.state, EntryState::kDamaged);
  EXPECT_TRUE(absl::StrContains(damaged.detail, "checksum")) << damaged.detail;
  EXPECT_TRUE(Exists(path));  // reported, not removed

  WriteFile(path, "short");
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kDamaged);
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kDamaged);
}

// Issue 14, item 5: an entry-sized name on a huge (sparse) file is reported as damaged
// without reading it: under a 512 MiB address-space limit the probe must not allocate it.
TEST(CacheProbeTest, HugeFileIsDamagedWithoutBeingRead) {
  const std::string dir = TempPath("probe_huge");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  CacheKey key{"kernel=rope;target=sm_90", std::string(32, 'b')};
  const std::string path = absl::StrCat(dir, "/", DiskCache::EntryFileName(key));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t{3} << 30), 0);
  close(fd);
  fflush(stdout);
  fflush(stderr);
  const pid_t child = fork();
  if (child == 0) {
#ifndef __SANITIZE_ADDRESS__  // ASan reserves far more address space than this
    const struct rlimit limit = {512u << 20, 512u << 20};
    setrlimit(RLIMIT_AS, &limit);
#endif
    for (bool check_contents : {false, true}) {
      const EntryProbe probe = ProbeEntry(dir, key, check_contents);
      if (probe.state != EntryState::kDamaged) _exit(1);
      if (!absl::StrContains(probe.detail, "too large")) _exit(2);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

}  // namespace
}  // namespace rope_jit
