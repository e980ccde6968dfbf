#include "jit/kernel_service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jit/backends.h"
#include "base/status_macros.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include "xxhash.h"

namespace rope_jit {
namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The memory tier's key: XXH3-128 of the device and the spec. Within one process the
// compiler and its options are fixed, so these say everything (the source by its hash).
// The fields, each with its length, are packed into a stack buffer and hashed in one
// call: a hit allocates nothing, and one-shot XXH3 costs a fraction of the streaming
// API's per-update overhead. (absl::InlinedVector's range insert measured twice as slow
// as memcpy here.) A spec past the buffer, none of this project's, spills to the heap.
KernelService::MemoryKey MakeMemoryKey(Vendor vendor, int device, const KernelSpec& spec) {
  char stack[512];
  size_t used = 0;
  std::string spilled;
  auto append = [&](const void* data, size_t size) {
    if (spilled.empty() && size <= sizeof(stack) - used) {
      std::memcpy(stack + used, data, size);
      used += size;
      return;
    }
    if (spilled.empty()) spilled.assign(stack, used);
    spilled.append(static_cast<const char*>(data), size);
  };
  auto add = [&append](absl::string_view field) {
    const uint64_t size = field.size();
    append(&size, sizeof(size));
    append(field.data(), field.size());
  };
  const int32_t ids[2] = {static_cast<int32_t>(vendor), device};
  append(ids, sizeof(ids));
  add(spec.kernel);
  add(spec.source_hash);
  for (const std::string& define : spec.defines) add(define);
  const XXH128_hash_t hash =
      spilled.empty() ? XXH3_128bits(stack, used) : XXH3_128bits(spilled.data(), spilled.size());
  return KernelService::MemoryKey{hash.high64, hash.low64};
}

}  // namespace

ServiceOptions ServiceOptions::FromEnvironment() {
  ServiceOptions options;
  options.disk = DiskCacheOptions::FromEnvironment();
  options.remote = RemoteCacheOptions::FromEnvironment();
  return options;
}

namespace {

std::unique_ptr<RemoteCache> MakeRemoteTier(RemoteCacheOptions options) {
  if (options.url.empty()) return nullptr;
  const std::string url = options.url;
  absl::StatusOr<std::unique_ptr<RemoteCache>> remote = RemoteCache::Create(std::move(options));
  if (!remote.ok()) {
    std::fprintf(stderr, "rope_jit: remote cache tier %s is off: %s\n", url.c_str(),
                 remote.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(remote);
}

}  // namespace

KernelService::KernelService(ServiceOptions options)
    : disk_(std::move(options.disk)),
      baked_(options.baked),
      remote_(MakeRemoteTier(std::move(options.remote))),
      compiler_for_target_(std::move(options.compiler_for_target)) {}

KernelService& KernelService::Default() {
  static KernelService* const service = new KernelService(ServiceOptions::FromEnvironment());
  return *service;
}

void KernelService::AddCount(uint64_t ServiceStats::*counter) {
  std::lock_guard<std::shared_mutex> lock(mu_);
  ++(stats_.*counter);
}

absl::StatusOr<KernelService::Resolved> KernelService::Resolve(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Compiler * compiler, compiler_for_target_ ? compiler_for_target_(spec.target)
                                                             : CompilerForTarget(spec.target));
  RETURN_IF_ERROR(compiler->ValidateTarget(spec.target));
  ASSIGN_OR_RETURN(std::string identity, compiler->Identity());
  return Resolved{compiler, MakeCacheKey(spec, identity, compiler->Options(spec.target))};
}

absl::StatusOr<CacheKey> KernelService::KeyFor(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Resolved resolved, Resolve(spec));
  return std::move(resolved.key);
}

absl::StatusOr<bool> KernelService::IsCached(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Resolved resolved, Resolve(spec));
  return disk_.Read(resolved.key).ok();
}

absl::StatusOr<KernelService::Fetched> KernelService::CompileAndPublish(const KernelSpec& spec,
                                                                        const Resolved& resolved) {
  CompileRequest request{spec.source, spec.kernel, spec.defines, spec.target};
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> code = resolved.compiler->Compile(request);
  double ms = MillisecondsSince(start);
  {
    std::lock_guard<std::shared_mutex> lock(mu_);
    ++stats_.compiles;
    stats_.compile_ms += ms;
    if (!code.ok()) ++stats_.compile_failures;
  }
  if (!code.ok()) return code.status();
  // A failed write already degraded the disk tier to memory-only with a warning; the
  // code object is still good.
  disk_.Write(resolved.key, *code).IgnoreError();
  auto owned = std::make_shared<const std::string>(*std::move(code));
  return Fetched{Tier::kCompiled, *owned, owned};
}

absl::StatusOr<KernelService::Fetched> KernelService::FetchOrCompile(const KernelSpec& spec,
                                                                     const Resolved& resolved,
                                                                     Tier first) {
  auto read_disk = [&]() -> absl::StatusOr<Fetched> {
    if (first > Tier::kDisk) return absl::NotFoundError("disk tier skipped");
    absl::StatusOr<std::string> cached = disk_.Read(resolved.key);
    if (!cached.ok()) return cached.status();
    AddCount(&ServiceStats::disk_hits);
    auto owned = std::make_shared<const std::string>(*std::move(cached));
    return Fetched{Tier::kDisk, *owned, owned};
  };
  absl::StatusOr<Fetched> fetched = read_disk();
  if (fetched.ok()) return fetched;
  if (remote_ != nullptr && first <= Tier::kRemote) {
    // Authenticated and validated by Get; kept on disk so that this node asks once.
    absl::StatusOr<std::string> shared = remote_->Get(resolved.key);
    if (shared.ok()) {
      disk_.Write(resolved.key, *shared).IgnoreError();
      auto owned = std::make_shared<const std::string>(*std::move(shared));
      return Fetched{Tier::kRemote, *owned, owned};
    }
  }
  // Another process may be compiling this key: wait for its lock, then look again.
  DiskCache::KeyLock key_lock = disk_.LockKey(resolved.key);
  fetched = read_disk();
  if (fetched.ok()) return fetched;
  if (first <= Tier::kDisk) AddCount(&ServiceStats::misses);  // a rebuild is no miss
  return CompileAndPublish(spec, resolved);
}

absl::StatusOr<KernelService::Fetched> KernelService::FetchShared(const KernelSpec& spec,
                                                                  const Resolved& resolved,
                                                                  Tier first) {
  // A rebuild (first == kCompiled) must not join a flight that may still serve the
  // entry the driver just refused, so it has a flight of its own.
  const std::string flight_key =
      first == Tier::kCompiled ? absl::StrCat(resolved.key.hex, "/rebuild") : resolved.key.hex;
  std::shared_ptr<InFlight> flight;
  bool leader = false;
  {
    std::lock_guard<std::shared_mutex> lock(mu_);
    std::shared_ptr<InFlight>& slot = in_flight_[flight_key];
    if (slot == nullptr) {
      slot = std::make_shared<InFlight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    {
      std::unique_lock<std::mutex> wait(flight->mu);
      flight->cv.wait(wait, [&] { return flight->done; });
    }
    AddCount(&ServiceStats::inflight_waits);
    return flight->result;
  }
  absl::StatusOr<Fetched> result = FetchOrCompile(spec, resolved, first);
  {
    std::lock_guard<std::shared_mutex> lock(mu_);
    in_flight_.erase(flight_key);
  }
  {
    std::lock_guard<std::mutex> wake(flight->mu);
    flight->result = result;
    flight->done = true;
  }
  flight->cv.notify_all();
  // After the waiters are woken: they do not wait for Redis, and the leader for at most
  // the remote tier's timeout (synchronous, so a jit_warm that exits right after has
  // published everything; see README).
  if (remote_ != nullptr && result.ok() && result->tier == Tier::kCompiled) {
    remote_->Put(resolved.key, result->code).IgnoreError();
  }
  return result;
}

absl::StatusOr<KernelService::Fetched> KernelService::Fetch(const KernelSpec& spec, Tier first) {
  // Before Resolve, which loads the compiler: a baked spec needs none. A baked hit is
  // counted by the caller once it is served (GetFunction: once the driver took it).
  if (first <= Tier::kBaked && baked_ != nullptr) {
    if (const BakedEntry* entry = FindBaked(*baked_, spec)) {
      return Fetched{Tier::kBaked, entry->code_object, nullptr};
    }
  }
  ASSIGN_OR_RETURN(Resolved resolved, Resolve(spec));
  return FetchShared(spec, resolved, std::max(first, Tier::kDisk));
}

absl::StatusOr<std::string> KernelService::GetCodeObject(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Fetched fetched, Fetch(spec, Tier::kBaked));
  if (fetched.tier == Tier::kBaked) baked_hits_.fetch_add(1, std::memory_order_relaxed);
  return std::string(fetched.code);
}

absl::StatusOr<std::string> KernelService::DeviceTarget(DeviceRuntime& runtime, int device) {
  std::string slot = absl::StrCat(VendorName(runtime.vendor()), "/", device);
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = device_targets_.find(slot);
    if (it != device_targets_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(std::string target, runtime.DeviceTarget(device));
  std::lock_guard<std::shared_mutex> lock(mu_);
  device_targets_[slot] = target;
  return target;
}

absl::StatusOr<bool> KernelService::PublishRemote(const KernelSpec& spec) {
  if (remote_ == nullptr) return absl::FailedPreconditionError("no remote cache tier");
  ASSIGN_OR_RETURN(Resolved resolved, Resolve(spec));
  ASSIGN_OR_RETURN(bool present, remote_->Contains(resolved.key));
  if (present) return false;
  ASSIGN_OR_RETURN(Fetched fetched, FetchShared(spec, resolved, Tier::kDisk));
  // A compile in FetchShared already published; a remote hit means another node just
  // did.
  if (fetched.tier == Tier::kDisk) {
    RETURN_IF_ERROR(remote_->Put(resolved.key, fetched.code));
  }
  return true;
}

std::shared_ptr<std::mutex> KernelService::ModuleLock(const MemoryKey& key) {
  std::lock_guard<std::shared_mutex> lock(mu_);
  std::shared_ptr<std::mutex>& slot = module_locks_[key];
  if (slot == nullptr) slot = std::make_shared<std::mutex>();
  return slot;
}

absl::StatusOr<ModuleHandle> KernelService::LoadForDevice(const KernelSpec& spec,
                                                         DeviceRuntime& runtime, int device) {
  KernelSpec device_spec = spec;
  ASSIGN_OR_RETURN(device_spec.target, DeviceTarget(runtime, device));
  ASSIGN_OR_RETURN(Fetched fetched, Fetch(device_spec, Tier::kBaked));
  absl::StatusOr<ModuleHandle> loaded = TimedLoad(runtime, device, fetched.code);
  if (!loaded.ok() && fetched.tier == Tier::kBaked) {
    // A baked object the driver refuses is left for the tiers below to replace.
    ASSIGN_OR_RETURN(fetched, Fetch(device_spec, Tier::kDisk));
    loaded = TimedLoad(runtime, device, fetched.code);
  }
  if (!loaded.ok() && (fetched.tier == Tier::kDisk || fetched.tier == Tier::kRemote)) {
    // The entry validated but the driver refused it (e.g. written by a compiler that
    // mislabelled its output): drop it and build it afresh, once.
    ASSIGN_OR_RETURN(Resolved resolved, Resolve(device_spec));
    disk_.Remove(resolved.key).IgnoreError();
    ASSIGN_OR_RETURN(fetched, FetchShared(device_spec, resolved, Tier::kCompiled));
    loaded = TimedLoad(runtime, device, fetched.code);
  }
  if (loaded.ok() && fetched.tier == Tier::kBaked) {
    baked_hits_.fetch_add(1, std::memory_order_relaxed);
  }
  return loaded;
}

absl::StatusOr<FunctionHandle> KernelService::GetFunction(const KernelSpec& spec,
                                                          DeviceRuntime& runtime, int device,
                                                          absl::string_view function_name) {
  const MemoryKey memory_key = MakeMemoryKey(runtime.vendor(), device, spec);
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto module = modules_.find(memory_key);
    if (module != modules_.end()) {
      auto function = module->second.functions.find(function_name);
      if (function != module->second.functions.end()) {
        memory_hits_.fetch_add(1, std::memory_order_relaxed);
        return function->second;
      }
    }
  }

  // Slow path: one thread per module at a time, so a module is never loaded twice;
  // threads missing other modules go on in parallel.
  const std::shared_ptr<std::mutex> module_lock = ModuleLock(memory_key);
  std::lock_guard<std::mutex> hold(*module_lock);
  ModuleHandle module = nullptr;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = modules_.find(memory_key);
    if (it != modules_.end()) module = it->second.module;
  }
  if (module == nullptr) {
    ASSIGN_OR_RETURN(module, LoadForDevice(spec, runtime, device));
    std::lock_guard<std::shared_mutex> lock(mu_);
    modules_[memory_key].module = module;
  }
  const std::string name(function_name);
  ASSIGN_OR_RETURN(FunctionHandle function, runtime.GetFunction(module, name.c_str()));
  std::lock_guard<std::shared_mutex> lock(mu_);
  modules_[memory_key].functions[name] = function;
  return function;
}

absl::StatusOr<ModuleHandle> KernelService::TimedLoad(DeviceRuntime& runtime, int device,
                                                     absl::string_view code_object) {
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ModuleHandle> loaded = runtime.LoadModule(device, code_object);
  const double ms = MillisecondsSince(start);
  std::lock_guard<std::shared_mutex> lock(mu_);
  ++stats_.loads;
  stats_.load_ms += ms;
  if (!loaded.ok()) ++stats_.load_failures;
  return loaded;
}

ServiceStats KernelService::stats() const {
  ServiceStats stats;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    stats = stats_;
  }
  stats.memory_hits = memory_hits_.load(std::memory_order_relaxed);
  stats.baked_hits = baked_hits_.load(std::memory_order_relaxed);
  stats.disk = disk_.stats();
  stats.remote_enabled = remote_ != nullptr;
  if (remote_ != nullptr) stats.remote = remote_->stats();
  return stats;
}

}  // namespace rope_jit
