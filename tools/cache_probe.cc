#include "tools/cache_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "jit/disk_cache.h"

namespace rope_jit {

std::string CacheEntryPath(const std::string& dir, const CacheKey& key) {
  return absl::StrCat(dir, "/", DiskCache::EntryFileName(key));
}

EntryProbe ProbeEntry(const std::string& dir, const CacheKey& key, bool check_contents) {
  EntryProbe probe;
  const std::string path = CacheEntryPath(dir, key);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) {
      probe.state = EntryState::kDamaged;
      probe.detail = absl::StrCat("cannot stat ", path, ": ", strerror(errno));
    }
    return probe;
  }
  if (!S_ISREG(st.st_mode)) {
    probe.state = EntryState::kDamaged;
    probe.detail = absl::StrCat(path, " is not a regular file");
    return probe;
  }
  // The fixed fields and the echoed key come before any payload.
  if (static_cast<size_t>(st.st_size) < kCacheEntryOverhead + key.text.size()) {
    probe.state = EntryState::kDamaged;
    probe.detail = absl::StrCat(path, " is truncated (", st.st_size, " bytes)");
    return probe;
  }
  // As DiskCache::Read: a file past the cap is not an entry, and is never read whole.
  if (static_cast<uint64_t>(st.st_size) > DiskCache::kMaxEntryBytes) {
    probe.state = EntryState::kDamaged;
    probe.detail = absl::StrCat(path, " is too large (", st.st_size, " bytes) to be an entry");
    return probe;
  }
  if (!check_contents) {
    probe.state = EntryState::kPresent;
    return probe;
  }

  // O_NOFOLLOW and O_NONBLOCK for the same reasons as DiskCache: never leave the
  // directory through a symlink, never hang on a FIFO swapped in after the lstat.
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    probe.state = EntryState::kDamaged;
    probe.detail = absl::StrCat("cannot open ", path, ": ", strerror(errno));
    return probe;
  }
  absl::Cleanup close_fd = [fd] { close(fd); };
  std::string bytes;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      probe.state = EntryState::kDamaged;
      probe.detail = absl::StrCat("cannot read ", path, ": ", strerror(errno));
      return probe;
    }
    if (n == 0) break;
    // The file may have grown since the stat.
    if (bytes.size() + static_cast<size_t>(n) > DiskCache::kMaxEntryBytes) {
      probe.state = EntryState::kDamaged;
      probe.detail = absl::StrCat(path, " is too large (grew past ", DiskCache::kMaxEntryBytes,
                                  " bytes while read) to be an entry");
      return probe;
    }
    bytes.append(buffer, static_cast<size_t>(n));
  }
  absl::StatusOr<absl::string_view> payload = DecodeCacheEntry(bytes, key);
  if (!payload.ok()) {
    probe.state = EntryState::kDamaged;
    probe.detail = std::string(payload.status().message());
    return probe;
  }
  probe.state = EntryState::kValid;
  probe.payload = std::string(*payload);
  return probe;
}

}  // namespace rope_jit
