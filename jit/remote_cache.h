// The remote tier of the kernel cache: entries shared by a fleet through Redis, each
// authenticated with HMAC-SHA256 under a fleet secret, so that a node uses only what a
// holder of the secret published.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<RemoteCache> remote,
//                    RemoteCache::Create(RemoteCacheOptions::FromEnvironment()));
//   absl::StatusOr<std::string> code = remote->Get(key);  // NotFound: compile locally
//   ...
//   remote->Put(key, code).IgnoreError();                 // counted; never fatal
//
// A Redis value is "RJR1", a 32-byte tag, then the disk tier's self-validating entry
// (jit/cache_entry.h). The tag is HMAC-SHA256 over a label, the key text and the entry;
// it is checked (constant time) before the entry is decoded, and the entry must then
// validate for the requested key like a disk entry. A value that fails either is never
// returned: it is counted and the caller's compile replaces it.
//
// It never hurts serving. Connect and every command have a deadline (`timeout`, over
// the whole command, not per read), a reply is bounded (`max_value_bytes`) before it is
// allocated, and a failure (refused, reset, timeout, garbage) opens a circuit: for a
// back-off period (doubling on each failed probe, up to max_backoff) every call returns
// at once as a miss, then one caller probes. One warning line per opening.
//
// Thread-safe: connections are pooled, one per concurrent caller.
#ifndef ROPE_JIT_JIT_REMOTE_CACHE_H_
#define ROPE_JIT_JIT_REMOTE_CACHE_H_

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jit/cache_entry.h"

struct redisContext;

namespace rope_jit {

struct RemoteCacheOptions {
  // redis://host:port[/db] or unix:///path[?db=N]. Empty: no remote tier.
  std::string url;
  std::string prefix = "rope_jit:";  // Redis key = prefix + key.hex
  // The fleet secret: the whole file's bytes, at least 32 of them; a regular file owned
  // by this user and readable by nobody else (like an ssh private key).
  std::string key_file;
  absl::Duration ttl = absl::ZeroDuration();  // zero: entries do not expire
  absl::Duration timeout = absl::Milliseconds(100);
  absl::Duration backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(60);
  uint64_t max_value_bytes = 16ull << 20;  // larger replies are refused unread

  // url: ROPE_JIT_REMOTE_CACHE; prefix: ROPE_JIT_REMOTE_CACHE_PREFIX; key_file:
  // ROPE_JIT_REMOTE_CACHE_KEY_FILE; ttl: ROPE_JIT_REMOTE_CACHE_TTL_S; timeout:
  // ROPE_JIT_REMOTE_CACHE_TIMEOUT_MS. An unparsable number keeps the default, with a
  // warning.
  static RemoteCacheOptions FromEnvironment();
};

struct RemoteCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;       // no such key (not errors, not bad entries)
  uint64_t bad_entries = 0;  // tag did not verify, entry did not validate, empty, too large
  uint64_t timeouts = 0;     // connect or command past the deadline
  uint64_t errors = 0;       // refused, reset, protocol garbage, error replies
  uint64_t circuit_opens = 0;
  uint64_t skipped = 0;  // calls answered at once because the circuit was open
  uint64_t writes = 0;
  uint64_t write_failures = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  double get_ms = 0;  // time in Get, all outcomes
  double put_ms = 0;
};

class RemoteCache final {
 public:
  // InvalidArgument for a bad url or option; FailedPrecondition / PermissionDenied for a
  // key file that is missing, short, not a regular file, not ours or readable by others.
  // Does not connect: a Redis that is down costs its first caller one timeout.
  static absl::StatusOr<std::unique_ptr<RemoteCache>> Create(RemoteCacheOptions options);
  ~RemoteCache();
  RemoteCache(const RemoteCache&) = delete;
  RemoteCache& operator=(const RemoteCache&) = delete;

  // The payload of `key`'s entry. NotFound on a miss, while the circuit is open, after
  // an error or timeout, and for a bad entry (each counted apart).
  absl::StatusOr<std::string> Get(const CacheKey& key);

  // Stores `payload` under `key` (overwriting: this is how a bad entry is replaced).
  // Unavailable while the circuit is open; the error otherwise. Callers ignore it.
  absl::Status Put(const CacheKey& key, absl::string_view payload);

  // Whether Redis holds a value under `key` (for jit_warm; not verified).
  absl::StatusOr<bool> Contains(const CacheKey& key);

  RemoteCacheStats stats() const;
  // The url, for messages (it holds no secret).
  const std::string& url() const { return options_.url; }

  // The Redis value for a cache entry (EncodeCacheEntry's bytes, any bytes for tests
  // that forge) under `key`, tagged with `secret`.
  static std::string SealEntry(absl::string_view secret, const CacheKey& key,
                               absl::string_view entry);

 private:
  struct Endpoint {
    std::string host;  // empty for a unix socket
    int port = 0;
    std::string path;  // unix socket
    int db = 0;
  };
  // What one command got: a reply, or why there is none.
  struct Reply {
    enum class Kind { kSkipped, kFailed, kTooLarge, kNil, kString, kStatus, kInteger, kError };
    Kind kind = Kind::kFailed;
    std::string text;  // string, status or error text; for kFailed, why
    long long integer = 0;
    bool timed_out = false;
  };
  using Clock = std::chrono::steady_clock;

  RemoteCache(RemoteCacheOptions options, Endpoint endpoint, std::string secret);

  // One command on a pooled (or fresh) connection, within the deadline. Runs only when
  // the circuit lets it; a failure, or a reply of a kind not `expected` (nor an error
  // reply), opens the circuit.
  Reply Command(const std::vector<std::string>& args, std::initializer_list<Reply::Kind> expected);
  // Whether a call may go out now; `probe` says it is the one half-open probe.
  bool Admit(bool* probe);
  void Succeeded(bool probe);
  void Failed(bool probe, const std::string& why);
  redisContext* Connect(Clock::time_point deadline, std::string* why, bool* timed_out);
  Reply RunOn(redisContext* context, const std::vector<std::string>& args,
              Clock::time_point deadline);
  std::string RedisKey(const CacheKey& key) const { return options_.prefix + key.hex; }

  const RemoteCacheOptions options_;
  const Endpoint endpoint_;
  const std::string secret_;

  // std::mutex, not absl::Mutex: see jit/kernel_service.h (TSan).
  mutable std::mutex mu_;  // guards everything below
  std::vector<redisContext*> idle_;
  Clock::time_point open_until_{};  // circuit open while now < open_until_
  bool open_ = false;
  bool probing_ = false;
  absl::Duration current_backoff_;
  RemoteCacheStats stats_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_REMOTE_CACHE_H_
