#include "jit/kernel_service.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "jit/backends.h"
#include "jit/status_macros.h"

namespace rope_jit {
namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The memory tier's key. Within one process the compiler and its options are fixed, so
// the spec and the device say everything; the source is named by its hash.
std::string MemoryKey(Vendor vendor, int device, const KernelSpec& spec) {
  return absl::StrCat(VendorName(vendor), "/", device, "/", spec.kernel, "/", spec.source_hash, "/",
                      absl::StrJoin(spec.defines, ","));
}

}  // namespace

ServiceOptions ServiceOptions::FromEnvironment() {
  ServiceOptions options;
  options.disk = DiskCacheOptions::FromEnvironment();
  return options;
}

KernelService::KernelService(ServiceOptions options) : disk_(std::move(options.disk)) {}

KernelService& KernelService::Default() {
  static KernelService* const service = new KernelService(ServiceOptions::FromEnvironment());
  return *service;
}

absl::StatusOr<KernelService::Resolved> KernelService::Resolve(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Compiler * compiler, CompilerForTarget(spec.target));
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

absl::StatusOr<std::string> KernelService::CompileAndPublish(const KernelSpec& spec,
                                                             const Resolved& resolved) {
  CompileRequest request{spec.source, spec.kernel, spec.defines, spec.target};
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> code = resolved.compiler->Compile(request);
  double ms = MillisecondsSince(start);
  {
    absl::MutexLock lock(&mu_);
    ++stats_.compiles;
    stats_.compile_ms += ms;
    if (!code.ok()) ++stats_.compile_failures;
  }
  if (!code.ok()) return code.status();
  // A failed write already degraded the disk tier to memory-only with a warning; the
  // code object is still good.
  disk_.Write(resolved.key, *code).IgnoreError();
  return code;
}

absl::StatusOr<std::string> KernelService::FetchOrCompile(const KernelSpec& spec,
                                                          const Resolved& resolved,
                                                          bool* from_disk) {
  *from_disk = true;
  absl::StatusOr<std::string> cached = disk_.Read(resolved.key);
  if (cached.ok()) {
    absl::MutexLock lock(&mu_);
    ++stats_.disk_hits;
    return cached;
  }
  // Another process may be compiling this key: wait for its lock, then look again.
  DiskCache::KeyLock key_lock = disk_.LockKey(resolved.key);
  cached = disk_.Read(resolved.key);
  if (cached.ok()) {
    absl::MutexLock lock(&mu_);
    ++stats_.disk_hits;
    return cached;
  }
  *from_disk = false;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.misses;
  }
  return CompileAndPublish(spec, resolved);
}

absl::StatusOr<std::string> KernelService::GetCodeObject(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Resolved resolved, Resolve(spec));
  std::shared_ptr<InFlight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<InFlight>& slot = in_flight_[resolved.key.hex];
    if (slot == nullptr) {
      slot = std::make_shared<InFlight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    flight->done.WaitForNotification();
    absl::MutexLock lock(&mu_);
    ++stats_.inflight_waits;
    return flight->result;
  }
  bool from_disk = false;
  flight->result = FetchOrCompile(spec, resolved, &from_disk);
  {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(resolved.key.hex);
  }
  flight->done.Notify();
  return flight->result;
}

absl::StatusOr<std::string> KernelService::DeviceTarget(DeviceRuntime& runtime, int device) {
  std::string slot = absl::StrCat(VendorName(runtime.vendor()), "/", device);
  {
    absl::MutexLock lock(&mu_);
    auto it = device_targets_.find(slot);
    if (it != device_targets_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(std::string target, runtime.DeviceTarget(device));
  absl::MutexLock lock(&mu_);
  device_targets_[slot] = target;
  return target;
}

absl::StatusOr<FunctionHandle> KernelService::GetFunction(const KernelSpec& spec,
                                                          DeviceRuntime& runtime, int device,
                                                          absl::string_view function_name) {
  const std::string memory_key = MemoryKey(runtime.vendor(), device, spec);
  {
    absl::ReaderMutexLock lock(&mu_);
    auto module = modules_.find(memory_key);
    if (module != modules_.end()) {
      auto function = module->second.functions.find(function_name);
      if (function != module->second.functions.end()) {
        memory_hits_.fetch_add(1, std::memory_order_relaxed);
        return function->second;
      }
    }
  }

  // Slow path: one thread at a time, so a module is never loaded twice.
  absl::MutexLock load_lock(&load_mu_);
  ModuleHandle module = nullptr;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = modules_.find(memory_key);
    if (it != modules_.end()) module = it->second.module;
  }
  if (module == nullptr) {
    KernelSpec device_spec = spec;
    ASSIGN_OR_RETURN(device_spec.target, DeviceTarget(runtime, device));
    ASSIGN_OR_RETURN(Resolved resolved, Resolve(device_spec));
    bool from_disk = false;
    ASSIGN_OR_RETURN(std::string code, FetchOrCompile(device_spec, resolved, &from_disk));

    auto load = [&](const std::string& code_object) {
      auto start = std::chrono::steady_clock::now();
      absl::StatusOr<ModuleHandle> loaded = runtime.LoadModule(device, code_object);
      double ms = MillisecondsSince(start);
      absl::MutexLock lock(&mu_);
      ++stats_.loads;
      stats_.load_ms += ms;
      if (!loaded.ok()) ++stats_.load_failures;
      return loaded;
    };
    absl::StatusOr<ModuleHandle> loaded = load(code);
    if (!loaded.ok() && from_disk) {
      // The entry validated but the driver refused it (e.g. written by a compiler that
      // mislabelled its output): drop it and build it afresh, once.
      disk_.Remove(resolved.key).IgnoreError();
      ASSIGN_OR_RETURN(code, CompileAndPublish(device_spec, resolved));
      loaded = load(code);
    }
    if (!loaded.ok()) return loaded.status();
    module = *loaded;
    absl::MutexLock lock(&mu_);
    modules_[memory_key].module = module;
  }
  const std::string name(function_name);
  ASSIGN_OR_RETURN(FunctionHandle function, runtime.GetFunction(module, name.c_str()));
  absl::MutexLock lock(&mu_);
  modules_[memory_key].functions[name] = function;
  return function;
}

ServiceStats KernelService::stats() const {
  ServiceStats stats;
  {
    absl::MutexLock lock(&mu_);
    stats = stats_;
  }
  stats.memory_hits = memory_hits_.load(std::memory_order_relaxed);
  stats.disk = disk_.stats();
  return stats;
}

}  // namespace rope_jit
