// The kernel service: compiled code objects by key, through three tiers.
//
//   KernelService& service = KernelService::Default();   // env-configured, process-wide
//   ASSIGN_OR_RETURN(FunctionHandle fn,
//                    service.GetFunction(spec, runtime, device, "rope_apply_aligned"));
//
//   memory tier  per device: (spec, device) -> loaded module and its functions; a hit
//                is one hash-map lookup under a reader lock
//   baked tier   optional, read-only: code objects built at build time and linked in
//                (ServiceOptions::baked, jit/baked_tier.h); needs no compiler
//   disk tier    one self-validating file per key (jit/disk_cache.h)
//   remote tier  optional, shared by a fleet: Redis, entries authenticated with
//                HMAC-SHA256 (jit/remote_cache.h); a hit is written to the disk tier
//   compile      hipRTC / NVRTC, single-flight: N threads of this process missing one
//                key cause one compile (the rest wait for its result), and N processes
//                sharing the cache directory compile it once (per-key lock file);
//                the result is published to disk, then to the remote tier
//
// GetCodeObject and GetFunction share one pipeline (baked -> disk -> remote -> compile,
// then for GetFunction one timed load). All waiting is per key: a cold miss of one key never
// holds up another key's miss, so two models or two devices compile side by side.
// GetCodeObject needs no GPU (prewarming, AOT/JIT parity). An entry that validates but
// that the driver refuses to load is dropped, counted and recompiled once.
#ifndef ROPE_JIT_JIT_KERNEL_SERVICE_H_
#define ROPE_JIT_JIT_KERNEL_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "jit/baked_tier.h"
#include "jit/compiler.h"
#include "jit/device_runtime.h"
#include "jit/disk_cache.h"
#include "jit/kernel_spec.h"
#include "jit/remote_cache.h"

namespace rope_jit {

struct ServiceOptions {
  DiskCacheOptions disk;
  // Consulted after the memory tier and before the disk tier; not owned, must outlive the
  // service. Null: no baked tier (FromEnvironment leaves it null).
  const BakedTier* baked = nullptr;
  // The compiler for a target. Null: the process-wide vendor compilers
  // (CompilerForTarget in jit/backends.h); tests put a compiler double here.
  std::function<absl::StatusOr<Compiler*>(absl::string_view target)> compiler_for_target;
  // remote.url empty: no remote tier. A tier that cannot be set up (no or bad key file,
  // bad url) is left off with one warning: never unauthenticated.
  RemoteCacheOptions remote;
  static ServiceOptions FromEnvironment();
};

struct ServiceStats {
  uint64_t memory_hits = 0;
  uint64_t disk_hits = 0;
  uint64_t baked_hits = 0;  // code objects served by the baked tier (no compile, no disk)
  uint64_t misses = 0;  // requests that found the key in no tier
  uint64_t compiles = 0;
  uint64_t compile_failures = 0;
  // Wall time inside Compiler::Compile, summed over threads. hipRTC compiles hold one
  // process-wide lock (it is not thread-safe), so with parallel AMD compiles this also
  // counts the time spent waiting for that lock.
  double compile_ms = 0;
  uint64_t loads = 0;  // module loads onto a device
  uint64_t load_failures = 0;
  double load_ms = 0;
  uint64_t inflight_waits = 0;  // threads that waited for another thread's compile
  DiskCacheStats disk;          // lock waits, corrupt entries, evictions, ...
  bool remote_enabled = false;
  RemoteCacheStats remote;      // hits, bad entries, timeouts, circuit opens, bytes, ...
};

class KernelService {
 public:
  explicit KernelService(ServiceOptions options);
  KernelService(const KernelService&) = delete;
  KernelService& operator=(const KernelService&) = delete;

  // The process-wide service configured from the environment (ROPE_JIT_CACHE_DIR, ...).
  static KernelService& Default();

  // The key `spec` has with this machine's compiler for spec.target.
  absl::StatusOr<CacheKey> KeyFor(const KernelSpec& spec);

  // The code object for spec.target, from disk or compiled; no device needed.
  absl::StatusOr<std::string> GetCodeObject(const KernelSpec& spec);

  // Whether the disk tier holds a valid entry for `spec` (no compile; for --dry_run).
  absl::StatusOr<bool> IsCached(const KernelSpec& spec);

  // A function of the module built from `spec` for `device`'s own target (spec.target
  // is ignored), loaded on that device; memory tier first.
  absl::StatusOr<FunctionHandle> GetFunction(const KernelSpec& spec, DeviceRuntime& runtime,
                                             int device, absl::string_view function_name);

  // Makes the remote tier hold `spec`'s entry (jit_warm fills it): from the disk tier,
  // else compiled. True when it stored one, false when Redis already had it;
  // FailedPrecondition without a remote tier, Unavailable when Redis cannot be reached.
  absl::StatusOr<bool> PublishRemote(const KernelSpec& spec);

  ServiceStats stats() const;
  DiskCache& disk() { return disk_; }
  RemoteCache* remote() { return remote_.get(); }  // null without a remote tier

  // Names a module in the memory tier (see kernel_service.cc).
  struct MemoryKey {
    uint64_t high, low;
    bool operator==(const MemoryKey& other) const { return high == other.high && low == other.low; }
    template <typename H>
    friend H AbslHashValue(H h, const MemoryKey& key) {
      return H::combine(std::move(h), key.high, key.low);
    }
  };

 private:
  struct Resolved {  // what a spec means on this machine
    Compiler* compiler;
    CacheKey key;
  };
  // Where a code object came from, in pipeline order.
  enum class Tier { kBaked, kDisk, kRemote, kCompiled };
  struct Fetched {
    Tier tier;
    // Into `owned`, or into the baked tier's static bytes. `owned` is shared so that the
    // threads waiting for one compile share its bytes, and so that moving a Fetched keeps
    // `code` valid.
    absl::string_view code;
    std::shared_ptr<const std::string> owned;
  };
  // One fetch-or-compile that the other threads of this process missing the same key
  // wait for. The leader writes `result`, then sets `done` under `mu`.
  struct InFlight {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    absl::StatusOr<Fetched> result = absl::UnknownError("in flight");
  };
  struct LoadedModule {
    ModuleHandle module = nullptr;
    absl::flat_hash_map<std::string, FunctionHandle> functions;
  };

  absl::StatusOr<Resolved> Resolve(const KernelSpec& spec);
  // The pipeline below the memory tier, for spec.target: the baked tier, then (single
  // flight per key) the disk tier, the remote tier and a compile under the per-key lock
  // that publishes to disk and then remotely. Tiers before
  // `first` are skipped: the driver refused what they gave.
  absl::StatusOr<Fetched> Fetch(const KernelSpec& spec, Tier first);
  // The single-flight part of Fetch: one leader per (key, first) runs FetchOrCompile.
  absl::StatusOr<Fetched> FetchShared(const KernelSpec& spec, const Resolved& resolved,
                                      Tier first);
  absl::StatusOr<Fetched> FetchOrCompile(const KernelSpec& spec, const Resolved& resolved,
                                         Tier first);
  absl::StatusOr<Fetched> CompileAndPublish(const KernelSpec& spec, const Resolved& resolved);
  absl::StatusOr<std::string> DeviceTarget(DeviceRuntime& runtime, int device);
  // The memory tier's slow path: the pipeline for `device`'s target, one timed load, and
  // the driver-refusal rule.
  absl::StatusOr<ModuleHandle> LoadForDevice(const KernelSpec& spec, DeviceRuntime& runtime,
                                             int device);
  // LoadModule, counted and timed in the stats.
  absl::StatusOr<ModuleHandle> TimedLoad(DeviceRuntime& runtime, int device,
                                         absl::string_view code_object);
  // The lock that makes one thread at a time load the module of `key` (never two loads
  // of one module); other keys' loads do not wait for it.
  std::shared_ptr<std::mutex> ModuleLock(const MemoryKey& key);
  void AddCount(uint64_t ServiceStats::*counter);

  // Standard-library locks rather than absl::Mutex: they are pthreads underneath, which
  // ThreadSanitizer understands, while the system Abseil is not built for TSan and its
  // mutex would make every guarded field look racy (CI runs the threaded tests under TSan).
  DiskCache disk_;
  const BakedTier* const baked_;  // may be null
  const std::unique_ptr<RemoteCache> remote_;  // may be null
  const std::function<absl::StatusOr<Compiler*>(absl::string_view)> compiler_for_target_;
  std::atomic<uint64_t> baked_hits_{0};   // lock-free like memory_hits_
  std::atomic<uint64_t> memory_hits_{0};  // counted outside the lock: the hot path reads only
  // Guards everything below. The memory-tier hit takes it shared. Never held across a
  // tier's I/O, a compile or a load.
  mutable std::shared_mutex mu_;
  ServiceStats stats_;
  absl::flat_hash_map<std::string, std::shared_ptr<InFlight>> in_flight_;
  absl::flat_hash_map<std::string, std::string> device_targets_;
  // Memory tier, keyed by a 128-bit hash of vendor/device/kernel/source hash/defines.
  absl::flat_hash_map<MemoryKey, LoadedModule> modules_;
  // One per memory key ever missed (as many as modules_ holds, plus failed ones).
  absl::flat_hash_map<MemoryKey, std::shared_ptr<std::mutex>> module_locks_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_KERNEL_SERVICE_H_
