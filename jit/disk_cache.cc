#include "jit/disk_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rope_jit {
namespace {

constexpr absl::string_view kEntrySuffix = ".rjc";
constexpr absl::string_view kTempPrefix = ".tmp-";
constexpr absl::string_view kLockSuffix = ".lock";
constexpr const char kInnerLockDir[] = "locks";  // the default lock_dir, inside dir
constexpr size_t kHexLength = 32;
constexpr uint64_t kMaxEntryBytes = DiskCache::kMaxEntryBytes;
// A writer publishes within milliseconds; a temp file this old was left by a crash.
constexpr absl::Duration kStaleTempAge = absl::Hours(1);
// Lock polling backs off from 1 ms to this. A compile takes tens to hundreds of ms, so
// a waiter notices the release a small fraction of a compile late.
constexpr absl::Duration kMaxLockPoll = absl::Milliseconds(20);

bool IsValidHex(absl::string_view hex) {
  return hex.size() == kHexLength && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsEntryName(absl::string_view name) {
  return absl::ConsumeSuffix(&name, kEntrySuffix) && IsValidHex(name);
}

absl::Status InvalidKey(const CacheKey& key) {
  return absl::InvalidArgumentError(absl::StrCat(
      "cache key hex must be 32 lowercase hex digits, got \"", absl::CHexEscape(key.hex), "\""));
}

// An entry that cannot be read for a reason that may pass (EMFILE, EIO) is a miss, not
// an error: the caller compiles, and the entry is left for the next reader.
absl::Status MissWithErrno(int error_number, absl::string_view what) {
  return absl::NotFoundError(absl::ErrnoToStatus(error_number, what).message());
}

absl::Time MtimeOf(const struct stat& st) { return absl::TimeFromTimespec(st.st_mtim); }

// mkdir -p with mode 0700 for every directory it creates; existing ones are checked
// by the caller, never changed. Leaf first: an existing cache directory costs one call
// whatever its ancestors are (automounted, unreadable, read-only).
absl::Status MakeDirectories(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return absl::OkStatus();
  if (errno == ENOENT) {
    const size_t end = path.find_last_not_of('/');
    const size_t slash = end == std::string::npos ? std::string::npos : path.rfind('/', end);
    if (slash != std::string::npos && slash != 0) {
      absl::Status parent = MakeDirectories(path.substr(0, slash));
      if (!parent.ok()) return parent;
      if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return absl::OkStatus();
    }
  }
  return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path));
}

// Whoever can write the directory can plant an entry, and an entry is code that runs on
// the GPU; so only a directory private to this user is used. Checked on the descriptor
// that every later operation goes through, so what was checked is what is used.
absl::Status CheckPrivateDirectory(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
  }
  if (st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrCat(path, " is owned by uid ", st.st_uid,
                                                    ", not by this user (uid ", geteuid(), ")"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s is writable by group or others (mode %04o)", path, st.st_mode & 07777));
  }
  // Root passes permission bits; anyone else needs all three on their own directory.
  if (geteuid() != 0 && (st.st_mode & S_IRWXU) != S_IRWXU) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s is not readable, writable and searchable by its owner (mode %04o)", path,
        st.st_mode & 07777));
  }
  // A read-only mount, which permission bits do not show.
  struct statvfs fs;
  if (fstatvfs(fd, &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(path, " is not writable (read-only mount)"));
  }
  return absl::OkStatus();
}

// An ancestor is safe when nobody but root and this user can rename what is in it:
// owned by one of them, and not writable by group or others unless sticky (like /tmp:
// there only an entry's owner may rename it). As OpenSSH's StrictModes, but a sticky
// directory is accepted.
absl::Status CheckAncestor(int fd, const std::string& ancestor, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", ancestor));
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(
        absl::StrCat(ancestor, " is owned by uid ", st.st_uid, ", neither root nor this user (uid ",
                     geteuid(), "), who could replace ", path));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s is writable by group or others without the sticky bit (mode %04o): another user "
        "could replace %s",
        ancestor, st.st_mode & 07777, path));
  }
  return absl::OkStatus();
}

// Opens `path` (absolute) by walking down from / one component at a time, each opened
// relative to its checked parent without following links, so that no ancestor can be
// swapped between its check and its use. Links in `path` itself are resolved first (the
// user's choice of where the cache lives may go through them); a link that appears
// during the walk fails it. The descriptor is O_RDONLY (it is listed for eviction).
absl::StatusOr<int> OpenCheckedDirectory(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::FailedPreconditionError(
        absl::StrCat("cache directory \"", absl::CHexEscape(path), "\" is not an absolute path"));
  }
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot resolve ", path));
  }
  const std::string canonical = resolved;
  free(resolved);
  const std::vector<std::string> components =
      absl::StrSplit(canonical, '/', absl::SkipEmpty());
  int fd = open("/", (components.empty() ? O_RDONLY : O_PATH) | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "cannot open /");
  std::string walked = "/";
  for (size_t i = 0; i < components.size(); ++i) {
    if (absl::Status safe = CheckAncestor(fd, walked, path); !safe.ok()) {
      close(fd);
      return safe;
    }
    const bool leaf = i + 1 == components.size();
    const int next = openat(fd, components[i].c_str(),
                            (leaf ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int err = errno;
    close(fd);
    walked = absl::StrCat(walked == "/" ? "" : walked, "/", components[i]);
    if (next < 0) {
      if (leaf && err == ENOTDIR) {
        return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
      }
      return absl::ErrnoToStatus(
          err, absl::StrCat("cannot open ", walked, err == ELOOP ? " (changed while checked)" : ""));
    }
    fd = next;
  }
  if (absl::Status private_dir = CheckPrivateDirectory(fd, path); !private_dir.ok()) {
    close(fd);
    return private_dir;
  }
  return fd;
}

absl::StatusOr<int> PrepareDirectory(const std::string& path) {
  absl::Status created = MakeDirectories(path);
  if (!created.ok()) return created;
  return OpenCheckedDirectory(path);
}

// The lock directory inside the cache directory is the cache's own: a symbolic link
// there would send lock files wherever it points. Where locks go is the user's choice
// only through lock_dir (ROPE_JIT_LOCK_DIR).
absl::StatusOr<int> PrepareInnerLockDirectory(int dir_fd, const std::string& path) {
  if (mkdirat(dir_fd, kInnerLockDir, 0700) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path));
  }
  const int fd = openat(dir_fd, kInnerLockDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    struct stat st;
    if (errno == ELOOP || (fstatat(dir_fd, kInnerLockDir, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                           S_ISLNK(st.st_mode))) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is a symbolic link; links inside the cache directory are not followed (set "
                "ROPE_JIT_LOCK_DIR to keep lock files elsewhere)"));
    }
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  }
  if (absl::Status private_dir = CheckPrivateDirectory(fd, path); !private_dir.ok()) {
    close(fd);
    return private_dir;
  }
  return fd;
}

// Removes whatever is at `name` under `dir_fd` without following symlinks: a file, a
// link, a socket, or a directory tree (up to a depth no damage of ours reaches).
void RemoveAnythingAt(int dir_fd, const char* name, int depth = 0) {
  if (unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) return;
  if (depth < 16) {
    const int sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR* listing = sub < 0 ? nullptr : fdopendir(sub);
    if (listing == nullptr && sub >= 0) close(sub);
    if (listing != nullptr) {
      std::vector<std::string> names;
      while (const struct dirent* item = readdir(listing)) {
        const absl::string_view child = item->d_name;
        if (child != "." && child != "..") names.emplace_back(child);
      }
      for (const std::string& child : names) RemoveAnythingAt(dirfd(listing), child.c_str(), depth + 1);
      closedir(listing);
    }
  }
  unlinkat(dir_fd, name, AT_REMOVEDIR);  // best effort: what stays is a miss next time
}

// RLIMIT_FSIZE makes a write past the limit raise SIGXFSZ, whose default action kills
// the process. The kernel sends it to the writing thread, so blocking it in this thread
// for the duration of a write turns the overflow into a plain EFBIG; a SIGXFSZ raised
// meanwhile is consumed before the old mask returns, so it cannot fire later either.
class ScopedNoFileSizeSignal final {
 public:
  ScopedNoFileSizeSignal() {
    sigemptyset(&xfsz_);
    sigaddset(&xfsz_, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz_, &old_mask_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGXFSZ) == 1;  // not ours to consume
  }
  ~ScopedNoFileSizeSignal() {
    if (!was_pending_) {
      const struct timespec no_wait = {0, 0};
      while (sigtimedwait(&xfsz_, nullptr, &no_wait) == SIGXFSZ) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  ScopedNoFileSizeSignal(const ScopedNoFileSizeSignal&) = delete;
  ScopedNoFileSizeSignal& operator=(const ScopedNoFileSizeSignal&) = delete;

 private:
  sigset_t xfsz_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path) {
  ScopedNoFileSizeSignal no_signal;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      return absl::ErrnoToStatus(
          err, absl::StrCat("cannot write ", path, err == EFBIG ? " (RLIMIT_FSIZE)" : ""));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

struct EntryFile {
  absl::Time mtime;
  std::string name;
  uint64_t size;
};

// The entries in the directory `dir_fd` (regular files named <hex>.rjc). Also removes
// temp files that a crashed writer left behind when `remove_stale_temps`.
std::vector<EntryFile> ListEntries(int dir_fd, bool remove_stale_temps) {
  std::vector<EntryFile> entries;
  if (dir_fd < 0) return entries;
  // A descriptor of its own: the listing closes it, and its offset is the listing's.
  const int listing_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0) return entries;
  DIR* listing = fdopendir(listing_fd);
  if (listing == nullptr) {
    close(listing_fd);
    return entries;
  }
  absl::Cleanup close_listing = [listing] { closedir(listing); };
  const absl::Time stale_before = absl::Now() - kStaleTempAge;
  while (const struct dirent* item = readdir(listing)) {
    const absl::string_view name = item->d_name;
    const bool is_entry = IsEntryName(name);
    const bool is_temp = remove_stale_temps && absl::StartsWith(name, kTempPrefix);
    if (!is_entry && !is_temp) continue;
    struct stat st;
    if (fstatat(dirfd(listing), item->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;  // gone meanwhile, or damage that Read removes when it meets it
    }
    if (is_entry) {
      entries.push_back({MtimeOf(st), std::string(name), static_cast<uint64_t>(st.st_size)});
    } else if (MtimeOf(st) < stale_before) {
      unlinkat(dirfd(listing), item->d_name, 0);
    }
  }
  return entries;
}

void Count(std::atomic<uint64_t>& counter, uint64_t amount = 1) {
  counter.fetch_add(amount, std::memory_order_relaxed);
}

uint64_t Nanoseconds(absl::Duration duration) {
  return static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(duration)));
}

absl::string_view GetEnv(const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? absl::string_view() : absl::string_view(value);
}

// ROPE_JIT_CACHE_DISABLE: 1/true disables, 0/false or unset leaves the cache on;
// anything else leaves it on with a warning (a typo must not pass silently).
bool CacheDisabledByEnvironment() {
  const absl::string_view raw = GetEnv("ROPE_JIT_CACHE_DISABLE");
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw));
  if (lower == "1" || lower == "true") return true;
  if (!lower.empty() && lower != "0" && lower != "false") {
    fprintf(stderr,
            "rope_jit: ignoring ROPE_JIT_CACHE_DISABLE=\"%s\" (want 1/true or 0/false); the disk "
            "cache stays on\n",
            absl::CHexEscape(raw).c_str());
  }
  return false;
}

// "1073741824", "512M", "4g", "64KiB": powers of 1024.
bool ParseByteSize(absl::string_view text, uint64_t* bytes) {
  text = absl::StripAsciiWhitespace(text);
  std::string lower = absl::AsciiStrToLower(text);
  absl::string_view number = lower;
  if (!absl::ConsumeSuffix(&number, "ib")) absl::ConsumeSuffix(&number, "b");
  int shift = 0;
  if (const size_t unit = absl::string_view("kmgt").find(number.empty() ? ' ' : number.back());
      unit != absl::string_view::npos) {
    shift = 10 * static_cast<int>(unit + 1);
    number.remove_suffix(1);
  }
  uint64_t value = 0;
  if (number.empty() || !std::all_of(number.begin(), number.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(number, &value) || value > (UINT64_MAX >> shift)) {
    return false;
  }
  *bytes = value << shift;
  return true;
}


// Batch schedulers start jobs without $HOME; the passwd entry still names a home.
std::string PasswdHome() {
  struct passwd entry;
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(geteuid(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr || found->pw_dir == nullptr) {
    return "";
  }
  return found->pw_dir;
}

}  // namespace

DiskCacheOptions DiskCacheOptions::FromEnvironment() {
  DiskCacheOptions options;
  const absl::string_view xdg = GetEnv("XDG_CACHE_HOME");
  const absl::string_view home = GetEnv("HOME");
  if (CacheDisabledByEnvironment()) {
    options.dir.clear();
  } else if (!GetEnv("ROPE_JIT_CACHE_DIR").empty()) {
    options.dir = std::string(GetEnv("ROPE_JIT_CACHE_DIR"));
  } else if (absl::StartsWith(xdg, "/")) {  // the XDG spec says to ignore relative paths
    options.dir = absl::StrCat(xdg, "/rope_jit");
  } else if (!home.empty()) {
    options.dir = absl::StrCat(home, "/.cache/rope_jit");
  } else if (const std::string passwd_home = PasswdHome(); !passwd_home.empty()) {
    options.dir = absl::StrCat(passwd_home, "/.cache/rope_jit");
  }
  options.lock_dir = std::string(GetEnv("ROPE_JIT_LOCK_DIR"));
  const absl::string_view max_bytes = GetEnv("ROPE_JIT_CACHE_MAX_BYTES");
  uint64_t parsed_max_bytes = 0;
  if (max_bytes.empty()) {
  } else if (!ParseByteSize(max_bytes, &parsed_max_bytes)) {
    fprintf(stderr,
            "rope_jit: ignoring ROPE_JIT_CACHE_MAX_BYTES=\"%s\" (want bytes or e.g. 512M, 4G)\n",
            absl::CHexEscape(max_bytes).c_str());
  } else if (parsed_max_bytes == 0) {
    // A budget of 0 would still keep the newest entry (it is never evicted): refused
    // rather than half honoured.
    fprintf(stderr,
            "rope_jit: ignoring ROPE_JIT_CACHE_MAX_BYTES=\"%s\" (a budget of 0 keeps nothing; "
            "set ROPE_JIT_CACHE_DISABLE=1 to turn the disk cache off)\n",
            absl::CHexEscape(max_bytes).c_str());
  } else {
    options.max_bytes = parsed_max_bytes;
  }
  return options;
}

DiskCache::KeyLock::KeyLock(KeyLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      dir_fd_(std::exchange(other.dir_fd_, -1)),
      name_(std::move(other.name_)) {}

DiskCache::KeyLock& DiskCache::KeyLock::operator=(KeyLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    dir_fd_ = std::exchange(other.dir_fd_, -1);
    name_ = std::move(other.name_);
  }
  return *this;
}

void DiskCache::KeyLock::Release() {
  if (fd_ < 0) return;
  // Unlinked while still held, so no lock file outlives its use. A waiter that then
  // locks this nameless inode sees that the name no longer refers to it and starts over
  // on a fresh file (see LockKey).
  unlinkat(dir_fd_, name_.c_str(), 0);
  close(fd_);
  close(dir_fd_);
  fd_ = -1;
  dir_fd_ = -1;
}

namespace {

// A relative directory is resolved against the working directory once, here, so that a
// later chdir changes nothing and every message names the directory in use.
std::string MakeAbsolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char* cwd = getcwd(nullptr, 0);
  if (cwd == nullptr) return path;  // refused by OpenCheckedDirectory as not absolute
  std::string absolute = absl::StrCat(cwd, "/", path);
  free(cwd);
  return absolute;
}

DiskCacheOptions WithAbsolutePaths(DiskCacheOptions options) {
  options.dir = MakeAbsolute(options.dir);
  options.lock_dir = MakeAbsolute(options.lock_dir);
  return options;
}

}  // namespace

DiskCache::DiskCache(DiskCacheOptions options)
    : options_(WithAbsolutePaths(std::move(options))),
      lock_dir_(options_.lock_dir.empty() && !options_.dir.empty()
                    ? absl::StrCat(options_.dir, "/", kInnerLockDir)
                    : options_.lock_dir),
      crash_before_publish_(GetEnv("ROPE_JIT_TEST_CRASH_POINT") == "before_publish") {
  if (options_.dir.empty()) {
    Disable("no cache directory configured", /*warn=*/false);
    return;
  }
  absl::Status usable = OpenDirectories();
  if (!usable.ok()) {
    Disable(usable.message(), /*warn=*/true);
    return;
  }
  enabled_.store(true, std::memory_order_release);
}

absl::Status DiskCache::OpenDirectories() {
  absl::StatusOr<int> dir_fd = PrepareDirectory(options_.dir);
  if (!dir_fd.ok()) return dir_fd.status();
  dir_fd_ = *dir_fd;
  absl::StatusOr<int> lock_dir_fd = options_.lock_dir.empty()
                                        ? PrepareInnerLockDirectory(dir_fd_, lock_dir_)
                                        : PrepareDirectory(lock_dir_);
  if (!lock_dir_fd.ok()) return lock_dir_fd.status();
  lock_dir_fd_ = *lock_dir_fd;
  return absl::OkStatus();
}

DiskCache::~DiskCache() {
  if (dir_fd_ >= 0) close(dir_fd_);
  if (lock_dir_fd_ >= 0) close(lock_dir_fd_);
}

bool DiskCache::IsEntryFileName(absl::string_view name) { return IsEntryName(name); }

std::string DiskCache::EntryFileName(const CacheKey& key) {
  return absl::StrCat(key.hex, kEntrySuffix);
}

std::string DiskCache::disabled_reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return disabled_reason_;
}

void DiskCache::Disable(absl::string_view reason, bool warn) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!disabled_reason_.empty()) return;
  disabled_reason_ = reason.empty() ? "unknown error" : std::string(reason);
  enabled_.store(false, std::memory_order_release);
  if (warn) {
    // One write of one line, so that it is not interleaved with other output.
    const std::string line =
        absl::StrCat("rope_jit: disk cache disabled, kernels will be compiled in memory only: ",
                     disabled_reason_, "\n");
    // stderr is often a log file, and the limit that failed the write may be
    // RLIMIT_FSIZE: the warning must not be what kills the process.
    ScopedNoFileSizeSignal no_signal;
    fputs(line.c_str(), stderr);
    fflush(stderr);
  }
}

std::string DiskCache::EntryPath(absl::string_view hex) const {
  return absl::StrCat(options_.dir, "/", hex, kEntrySuffix);
}

void DiskCache::DropCorrupt(const std::string& name) {
  Count(counters_.corrupt_entries);
  RemoveAnythingAt(dir_fd_, name.c_str());
}

absl::StatusOr<std::string> DiskCache::Read(const CacheKey& key) {
  if (!IsValidHex(key.hex)) return InvalidKey(key);
  if (!enabled()) {
    return absl::NotFoundError(absl::StrCat("disk cache disabled: ", disabled_reason()));
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> result = ReadEntry(key);
  Count(counters_.read_ns, Nanoseconds(absl::Now() - start));
  Count(result.ok() ? counters_.hits : counters_.misses);
  return result;
}

absl::StatusOr<std::string> DiskCache::ReadEntry(const CacheKey& key) {
  const std::string name = EntryFileName(key);
  const std::string path = EntryPath(key.hex);  // for messages
  // O_NOFOLLOW: a symlink is never followed out of the directory. O_NONBLOCK: a FIFO in
  // place of the entry must not hang the reader.
  const int fd =
      openat(dir_fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat("no cache entry ", path));
    struct stat st;
    if (fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(st.st_mode)) {  // symlink, socket, ...
      DropCorrupt(name);
      return absl::NotFoundError(absl::StrCat(path, " was not a regular file; removed"));
    }
    return MissWithErrno(err, absl::StrCat("cannot open ", path));
  }
  absl::Cleanup close_fd = [fd] { close(fd); };

  struct stat st;
  if (fstat(fd, &st) != 0) {
    return MissWithErrno(errno, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kMaxEntryBytes) {
    DropCorrupt(name);
    return absl::NotFoundError(absl::StrCat(
        path, S_ISREG(st.st_mode) ? " was too large" : " was not a regular file", "; removed"));
  }

  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = pread(fd, &bytes[got], bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return MissWithErrno(errno, absl::StrCat("cannot read ", path));
    }
    if (n == 0) break;  // shorter than fstat said: validation reports the truncation
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);

  absl::StatusOr<absl::string_view> payload = DecodeCacheEntry(bytes, key);
  if (!payload.ok()) {
    // Another process may have replaced the damaged file with a good entry since we
    // opened it; removing that would only cost it a miss, but it is easy to avoid.
    struct stat now;
    const bool same_file = fstatat(dir_fd_, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
                           now.st_dev == st.st_dev && now.st_ino == st.st_ino;
    if (same_file) {
      DropCorrupt(name);
    } else {
      Count(counters_.corrupt_entries);
    }
    return absl::NotFoundError(absl::StrCat(path, " removed: ", payload.status().message()));
  }
  // LRU by mtime. Best effort: a failure only makes the entry look older.
  futimens(fd, nullptr);
  const size_t offset = static_cast<size_t>(payload->data() - bytes.data());
  const size_t length = payload->size();
  bytes.erase(0, offset);
  bytes.resize(length);
  return bytes;
}

absl::Status DiskCache::Write(const CacheKey& key, absl::string_view payload) {
  if (!IsValidHex(key.hex)) return InvalidKey(key);
  if (uint64_t{payload.size()} + key.text.size() + kCacheEntryOverhead > kMaxEntryBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cache entry of ", payload.size(),
                                                   " bytes exceeds the limit of ", kMaxEntryBytes));
  }
  if (!enabled()) {
    return absl::FailedPreconditionError(absl::StrCat("disk cache disabled: ", disabled_reason()));
  }
  absl::Status written = WriteEntryFile(key.hex, EncodeCacheEntry(key, payload));
  if (!written.ok()) {
    Count(counters_.write_failures);
    Disable(written.message(), /*warn=*/true);
    return written;
  }
  Count(counters_.writes);
  EvictToBudget(key.hex);
  return absl::OkStatus();
}

absl::Status DiskCache::WriteEntryFile(absl::string_view hex, absl::string_view bytes) {
  // A private temp file per writer: many processes publishing the same entry never
  // share a half-written file, and rename makes exactly one complete file visible. The
  // name is unique to this process and call; O_EXCL and a retry cover a name left by a
  // crashed process whose pid came back.
  static std::atomic<uint64_t> temp_counter{0};
  std::string temp_name;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    temp_name = absl::StrCat(kTempPrefix, hex, "-", getpid(), "-",
                             temp_counter.fetch_add(1, std::memory_order_relaxed));
    fd = openat(dir_fd_, temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  const std::string temp_path = absl::StrCat(options_.dir, "/", temp_name);  // for messages
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create a file in ", options_.dir));
  }
  bool published = false;
  absl::Cleanup remove_temp = [&] {
    if (!published) unlinkat(dir_fd_, temp_name.c_str(), 0);
  };

  absl::Status status = WriteAll(fd, bytes, temp_path);
  if (status.ok() && fsync(fd) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("cannot fsync ", temp_path));
  }
  // NFS reports some write errors only at close.
  if (close(fd) != 0 && status.ok()) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("cannot close ", temp_path));
  }
  if (!status.ok()) return status;
  if (crash_before_publish_) kill(getpid(), SIGKILL);  // test-only, see disk_cache.h

  const std::string name = absl::StrCat(hex, kEntrySuffix);
  if (renameat(dir_fd_, temp_name.c_str(), dir_fd_, name.c_str()) != 0) {
    int err = errno;
    if (err == EISDIR || err == ENOTEMPTY || err == EEXIST) {
      // A directory where the entry goes: damage like any other.
      DropCorrupt(name);
      err = renameat(dir_fd_, temp_name.c_str(), dir_fd_, name.c_str()) == 0 ? 0 : errno;
    }
    if (err != 0) {
      return absl::ErrnoToStatus(
          err, absl::StrCat("cannot rename ", temp_path, " to ", EntryPath(hex)));
    }
  }
  published = true;

  // Makes the rename durable. A failure is ignored: the entry is complete and is
  // validated on every read, so losing it in a crash costs one recompile (and some
  // filesystems do not fsync directories at all).
  fsync(dir_fd_);
  return absl::OkStatus();
}

void DiskCache::EvictToBudget(absl::string_view keep_hex) {
  std::vector<EntryFile> entries = ListEntries(dir_fd_, /*remove_stale_temps=*/true);
  uint64_t total = 0;
  for (const EntryFile& entry : entries) total += entry.size;
  if (total <= options_.max_bytes) return;

  std::sort(entries.begin(), entries.end(), [](const EntryFile& a, const EntryFile& b) {
    return std::tie(a.mtime, a.name) < std::tie(b.mtime, b.name);
  });
  const std::string keep_name = absl::StrCat(keep_hex, kEntrySuffix);
  uint64_t evicted = 0;
  for (const EntryFile& entry : entries) {
    if (total <= options_.max_bytes) break;
    // The entry just written stays even when it alone is over budget: evicting it
    // would only make the next process compile it again.
    if (entry.name == keep_name) continue;
    // Unlink is safe under concurrent readers: an open descriptor keeps reading the old
    // inode, and a reader that arrives later misses and recompiles.
    if (unlinkat(dir_fd_, entry.name.c_str(), 0) == 0) {
      total -= entry.size;
      ++evicted;
    } else if (errno == ENOENT) {
      total -= entry.size;  // another process evicted it first
    }
  }
  Count(counters_.evictions, evicted);
}

absl::Status DiskCache::Remove(const CacheKey& key) {
  if (!IsValidHex(key.hex)) return InvalidKey(key);
  if (!enabled()) {
    return absl::FailedPreconditionError(absl::StrCat("disk cache disabled: ", disabled_reason()));
  }
  const std::string name = EntryFileName(key);
  if (unlinkat(dir_fd_, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno == EISDIR) {
    RemoveAnythingAt(dir_fd_, name.c_str());
    return absl::OkStatus();
  }
  return absl::ErrnoToStatus(errno, absl::StrCat("cannot remove ", EntryPath(key.hex)));
}

DiskCache::KeyLock DiskCache::LockKey(const CacheKey& key) {
  if (!enabled()) return KeyLock();
  if (!IsValidHex(key.hex)) {
    Count(counters_.lock_errors);
    return KeyLock();
  }
  const std::string name = absl::StrCat(key.hex, kLockSuffix);
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + std::max(options_.lock_timeout, absl::ZeroDuration());
  absl::Duration poll = absl::Milliseconds(1);
  bool waited = false;
  enum class Outcome { kHeld, kTimeout, kError };
  Outcome outcome;
  int fd = -1;
  bool repaired = false;
  while (true) {
    if (fd < 0) {
      fd = openat(lock_dir_fd_, name.c_str(),
                  O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);
      if (fd < 0) {
        if (errno == EINTR) continue;
        // Anything but a file where the lock file goes (a symbolic link, which is not
        // followed as it could send the lock file anywhere; a directory; a socket) is
        // removed, once, like a damaged entry, and a lock file made in its place.
        struct stat st;
        if (!repaired && fstatat(lock_dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            !S_ISREG(st.st_mode)) {
          repaired = true;
          RemoveAnythingAt(lock_dir_fd_, name.c_str());
          continue;
        }
        outcome = Outcome::kError;
        break;
      }
    }
    // Polled rather than blocking so that the wait is bounded without a timer signal.
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      // The previous holder unlinks the file as it releases it, so the inode just locked
      // may no longer be the one the path names; such a lock excludes nobody.
      struct stat held;
      struct stat named;
      if (fstat(fd, &held) == 0 &&
          fstatat(lock_dir_fd_, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
          held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
        outcome = Outcome::kHeld;
        break;
      }
      close(fd);
      fd = -1;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) {
      outcome = Outcome::kError;
      break;
    }
    waited = true;
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      outcome = Outcome::kTimeout;
      break;
    }
    absl::SleepFor(std::min(poll, deadline - now));
    poll = std::min(poll * 2, kMaxLockPoll);
  }

  if (waited) {
    Count(counters_.lock_waits);
    Count(counters_.lock_wait_ns, Nanoseconds(absl::Now() - start));
  }
  if (outcome == Outcome::kTimeout) Count(counters_.lock_timeouts);
  if (outcome == Outcome::kError) Count(counters_.lock_errors);
  if (outcome == Outcome::kHeld) {
    // The lock keeps a descriptor of the lock directory of its own to unlink the file
    // at release, whatever happens to this DiskCache meanwhile.
    const int dir_fd = fcntl(lock_dir_fd_, F_DUPFD_CLOEXEC, 0);
    if (dir_fd >= 0) return KeyLock(fd, dir_fd, name);
    unlinkat(lock_dir_fd_, name.c_str(), 0);
    Count(counters_.lock_errors);
  }
  if (fd >= 0) close(fd);
  return KeyLock();
}

DiskCacheStats DiskCache::stats() const {
  const auto get = [](const std::atomic<uint64_t>& counter) {
    return counter.load(std::memory_order_relaxed);
  };
  DiskCacheStats stats;
  stats.hits = get(counters_.hits);
  stats.misses = get(counters_.misses);
  stats.corrupt_entries = get(counters_.corrupt_entries);
  stats.writes = get(counters_.writes);
  stats.write_failures = get(counters_.write_failures);
  stats.evictions = get(counters_.evictions);
  stats.lock_waits = get(counters_.lock_waits);
  stats.lock_timeouts = get(counters_.lock_timeouts);
  stats.lock_errors = get(counters_.lock_errors);
  stats.lock_wait_ms = get(counters_.lock_wait_ns) / 1e6;
  stats.read_ms = get(counters_.read_ns) / 1e6;
  return stats;
}

uint64_t DiskCache::TotalBytes() const {
  uint64_t total = 0;
  for (const EntryFile& entry : ListEntries(dir_fd_, /*remove_stale_temps=*/false)) {
    total += entry.size;
  }
  return total;
}

}  // namespace rope_jit
