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
//   compile      hipRTC / NVRTC, single-flight: N threads of this process missing one
//                key cause one compile (the rest wait for its result), and N processes
//                sharing the cache directory compile it once (per-key lock file)
//
// GetCodeObject needs no GPU (prewarming, AOT/JIT parity). An entry that validates but
// that the driver refuses to load is dropped, counted and recompiled once.
#ifndef ROPE_JIT_JIT_KERNEL_SERVICE_H_
#define ROPE_JIT_JIT_KERNEL_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
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

namespace rope_jit {

struct ServiceOptions {
  DiskCacheOptions disk;
  // Consulted after the memory tier and before the disk tier; not owned, must outlive the
  // service. Null: no baked tier (FromEnvironment leaves it null).
  const BakedTier* baked = nullptr;
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

  ServiceStats stats() const;
  DiskCache& disk() { return disk_; }

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
  // One fetch-or-compile that the other threads of this process missing the same key
  // wait for. The leader writes `result`, then sets `done` under `mu`.
  struct InFlight {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    absl::StatusOr<std::string> result;
  };
  struct LoadedModule {
    ModuleHandle module = nullptr;
    absl::flat_hash_map<std::string, FunctionHandle> functions;
  };

  absl::StatusOr<Resolved> Resolve(const KernelSpec& spec);
  // Disk tier, then a compile under the per-key lock. `from_disk` says which.
  absl::StatusOr<std::string> FetchOrCompile(const KernelSpec& spec, const Resolved& resolved,
                                             bool* from_disk);
  absl::StatusOr<std::string> CompileAndPublish(const KernelSpec& spec, const Resolved& resolved);
  absl::StatusOr<std::string> DeviceTarget(DeviceRuntime& runtime, int device);
  // Loads the baked code object for `device_spec` (its target set) onto `device`.
  // NotFound when the tier has none; the driver's error when it refuses it (the caller
  // falls back to JIT).
  absl::StatusOr<ModuleHandle> LoadBaked(const KernelSpec& device_spec, DeviceRuntime& runtime,
                                         int device);
  // LoadModule, counted and timed in the stats.
  absl::StatusOr<ModuleHandle> TimedLoad(DeviceRuntime& runtime, int device,
                                         absl::string_view code_object);

  // Standard-library locks rather than absl::Mutex: they are pthreads underneath, which
  // ThreadSanitizer understands, while the system Abseil is not built for TSan and its
  // mutex would make every guarded field look racy (CI runs the threaded tests under TSan).
  DiskCache disk_;
  const BakedTier* const baked_;        // may be null
  std::atomic<uint64_t> baked_hits_{0};  // lock-free like memory_hits_
  std::atomic<uint64_t> memory_hits_{0};  // counted outside the lock: the hot path reads only
  // Guards everything below up to load_mu_. The memory-tier hit takes it shared.
  mutable std::shared_mutex mu_;
  ServiceStats stats_;
  absl::flat_hash_map<std::string, std::shared_ptr<InFlight>> in_flight_;
  absl::flat_hash_map<std::string, std::string> device_targets_;
  // Memory tier, keyed by a 128-bit hash of vendor/device/kernel/source hash/defines.
  absl::flat_hash_map<MemoryKey, LoadedModule> modules_;
  // Serializes module loads so that two threads never load the same module twice.
  std::mutex load_mu_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_KERNEL_SERVICE_H_
