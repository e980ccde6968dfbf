// The disk tier of the kernel cache: one self-validating file per entry
// (jit/cache_entry.h) in a private directory, a size budget kept by LRU eviction, and a
// per-key lock that lets one process compile while the others wait for its entry.
//
//   DiskCache cache(DiskCacheOptions::FromEnvironment());
//   absl::StatusOr<std::string> code = cache.Read(key);
//   if (absl::IsNotFound(code.status())) {
//     DiskCache::KeyLock lock = cache.LockKey(key);  // maybe another process compiles it
//     code = cache.Read(key);
//     if (absl::IsNotFound(code.status())) {
//       ASSIGN_OR_RETURN(code, Compile(...));
//       cache.Write(key, *code).IgnoreError();  // a failed write already warned once
//     }
//   }                                            // lock released here
//
// The cache never fails a caller: an unusable directory, a full or read-only disk, or a
// damaged entry degrade to misses (and to memory-only with ONE warning line on stderr),
// never to an error that stops a kernel from being compiled.
//
// Files: <dir>/<hex>.rjc entries (0600, named by EntryFileName), <dir>/.tmp-<hex>-<pid>-<n>
// writes in progress, <lock_dir>/<hex>.lock lock files, removed on release (one left by
// a killed holder is empty and is reused by the next LockKey; anything else at a lock
// path is removed and replaced). Every name inside the directories derives from the
// 32-hex-digit key alone, and no symbolic link inside them is followed (the directories
// themselves may be reached through links).
//
// Directories: each is opened once, at construction, by walking down from / without
// following links (after resolving the links the path itself names), and checked on
// that descriptor: owned by this user, not writable by group or others, and every
// ancestor owned by root or this user and not writable by group or others unless
// sticky (as /tmp). Every later operation is relative to those descriptors, so a
// directory renamed or replaced after the check is never used. A relative dir or
// lock_dir is made absolute against the working directory at construction.
//
// Test-only fault injection: with ROPE_JIT_TEST_CRASH_POINT=before_publish in the
// environment when a DiskCache is constructed, Write SIGKILLs its own process after the
// temp file is complete and before it is renamed into place, so that tests can check
// what a writer killed at that moment leaves behind. Not for production use.
#ifndef ROPE_JIT_JIT_DISK_CACHE_H_
#define ROPE_JIT_JIT_DISK_CACHE_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jit/cache_entry.h"

namespace rope_jit {

struct DiskCacheOptions {
  // Empty: the disk tier is off (memory only).
  std::string dir;
  // Empty: <dir>/locks. Point it at a node-local directory when `dir` is on a network
  // filesystem whose locking is slow or absent.
  std::string lock_dir;
  // Size budget of the entries in `dir`.
  uint64_t max_bytes = 1ull << 30;
  // How long LockKey waits for another process's compile before the caller compiles
  // anyway: a stuck or very slow peer delays others by at most this much.
  absl::Duration lock_timeout = absl::Seconds(120);

  // dir: ROPE_JIT_CACHE_DIR, else $XDG_CACHE_HOME/rope_jit, else $HOME/.cache/rope_jit,
  // else the passwd home directory's .cache/rope_jit; empty when
  // ROPE_JIT_CACHE_DISABLE is 1 or true (0, false or unset: on; any other value: on,
  // with a warning). max_bytes: ROPE_JIT_CACHE_MAX_BYTES (bytes, or with a K/M/G/T
  // suffix, powers of 1024; an unparsable value or 0 is ignored with a warning).
  // lock_dir: ROPE_JIT_LOCK_DIR.
  static DiskCacheOptions FromEnvironment();
};

struct DiskCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;           // includes the corrupt entries
  uint64_t corrupt_entries = 0;  // failed validation or not a regular file; removed
  uint64_t writes = 0;
  uint64_t write_failures = 0;
  uint64_t evictions = 0;
  uint64_t lock_waits = 0;     // LockKey calls that found the key locked
  uint64_t lock_timeouts = 0;  // ... and gave up after lock_timeout
  uint64_t lock_errors = 0;    // LockKey calls that could not open or lock the lock file
  double lock_wait_ms = 0;
  double read_ms = 0;  // time in Read, hits and misses
};

// Thread-safe. Any number of processes may share one directory.
class DiskCache final {
 public:
  // A held (or, after a timeout or an error, empty) per-key lock. Releasing it removes
  // the lock file, so lock files do not pile up; a process that dies holding one
  // releases it (flock semantics), so a stale lock never blocks anyone.
  class KeyLock final {
   public:
    KeyLock() = default;  // holds nothing
    KeyLock(KeyLock&& other) noexcept;
    KeyLock& operator=(KeyLock&& other) noexcept;
    KeyLock(const KeyLock&) = delete;
    KeyLock& operator=(const KeyLock&) = delete;
    ~KeyLock() { Release(); }

    // False after a timeout or an error: the caller compiles without the lock.
    bool held() const { return fd_ >= 0; }
    void Release();

   private:
    friend class DiskCache;
    KeyLock(int fd, int dir_fd, std::string name)
        : fd_(fd), dir_fd_(dir_fd), name_(std::move(name)) {}

    int fd_ = -1;
    int dir_fd_ = -1;  // the lock directory, its own descriptor
    std::string name_;
  };

  // Never fails. A directory that cannot be created, is not a directory, is owned by
  // another user, is writable by group or others, is not writable, or has an ancestor
  // that another user could rename it out of (see the top of this file) leaves the
  // cache disabled with one warning. Creates missing directories with mode 0700.
  explicit DiskCache(DiskCacheOptions options);
  ~DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // The name of `key`'s entry file inside dir(): "<key.hex>.rjc".
  static std::string EntryFileName(const CacheKey& key);
  // Whether `name` (a file name, no directory) is an entry file's: <32 hex digits>.rjc.
  static bool IsEntryFileName(absl::string_view name);
  // Code objects are kilobytes to a few megabytes; a bigger file is not an entry, and
  // reading it whole could exhaust memory. Every reader of entry files caps at this.
  static constexpr uint64_t kMaxEntryBytes = 1ull << 30;

  bool enabled() const { return enabled_.load(std::memory_order_acquire); }
  // Why the cache is disabled; empty while enabled.
  std::string disabled_reason() const;
  const std::string& dir() const { return options_.dir; }  // absolute
  const std::string& lock_dir() const { return lock_dir_; }

  // The payload stored under `key`. NotFound on a miss, when disabled (not counted),
  // and for an entry that failed validation or is not a regular file: such an entry
  // is counted in corrupt_entries and removed. A hit touches the entry's mtime (LRU).
  // InvalidArgument for a malformed key.hex.
  absl::StatusOr<std::string> Read(const CacheKey& key);

  // Publishes the entry atomically (private temp file, fsync, rename) and then evicts
  // least-recently-used entries until the total is within max_bytes (the entry just
  // written is never evicted). A failed write leaves no file behind and disables the
  // cache with one warning; the status says why. FailedPrecondition when disabled.
  absl::Status Write(const CacheKey& key, absl::string_view payload);

  // Drops an entry, e.g. one that validated but failed to load on the device. OK if
  // there was none.
  absl::Status Remove(const CacheKey& key);

  // Waits up to lock_timeout for the cross-process lock of `key`. Returns an empty lock
  // on timeout (counted), on error (counted) and when the cache is disabled.
  KeyLock LockKey(const CacheKey& key);

  DiskCacheStats stats() const;
  // Sum of the sizes of the entries now in dir (all processes' entries).
  uint64_t TotalBytes() const;

 private:
  // Opens and checks dir and lock_dir into dir_fd_ and lock_dir_fd_.
  absl::Status OpenDirectories();
  std::string EntryPath(absl::string_view hex) const;  // for messages
  absl::StatusOr<std::string> ReadEntry(const CacheKey& key);
  // First call: disables the cache and prints the one warning line. Later calls: no-op.
  void Disable(absl::string_view reason, bool warn);
  // Removes a damaged entry (whatever kind of file it is) and counts it.
  void DropCorrupt(const std::string& name);
  absl::Status WriteEntryFile(absl::string_view hex, absl::string_view bytes);
  void EvictToBudget(absl::string_view keep_hex);

  const DiskCacheOptions options_;
  const std::string lock_dir_;
  // ROPE_JIT_TEST_CRASH_POINT=before_publish, read once (see the top of this file).
  const bool crash_before_publish_;
  // Set once by the constructor (-1: not open); every file operation is relative to them.
  int dir_fd_ = -1;
  int lock_dir_fd_ = -1;
  std::atomic<bool> enabled_{false};

  // Counters are atomics rather than state under mutex_ so that a hit takes no lock.
  struct Counters {
    std::atomic<uint64_t> hits{0};
    std::atomic<uint64_t> misses{0};
    std::atomic<uint64_t> corrupt_entries{0};
    std::atomic<uint64_t> writes{0};
    std::atomic<uint64_t> write_failures{0};
    std::atomic<uint64_t> evictions{0};
    std::atomic<uint64_t> lock_waits{0};
    std::atomic<uint64_t> lock_timeouts{0};
    std::atomic<uint64_t> lock_errors{0};
    std::atomic<uint64_t> lock_wait_ns{0};
    std::atomic<uint64_t> read_ns{0};
  };
  Counters counters_;

  // A std::mutex, not absl::Mutex: ThreadSanitizer understands pthreads but not the
  // system Abseil's uninstrumented mutex (see jit/kernel_service.h).
  mutable std::mutex mutex_;
  std::string disabled_reason_;  // guarded by mutex_
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_DISK_CACHE_H_
