// jit_warm: compiles RoPE kernel specializations into the disk cache before a server
// starts, so that it never compiles while serving. `jit_warm --help` for the flags;
// tools/warm_plan.h for the scope and manifest rules.
//
//   bazel run //tools:jit_warm                                  # this machine's targets
//   bazel run //tools:jit_warm -- --arch=sm_90,gfx90a --head_dim=128 --dtype=bf16
//   bazel run //tools:jit_warm -- --manifest=models.txt --verify
//   bazel run //tools:jit_warm -- --hf_config=/models/Qwen3-VL-8B/config.json
//
// stdout: the dry-run listing, the summary and --stats. stderr: notes, warnings,
// progress (one updating line on a terminal, one line per item otherwise) and failures
// with their compiler logs.
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "jit/backends.h"
#include "jit/kernel_service.h"
#include "jit/target.h"
#include "rope/kernel_specs.h"
#include "tools/cache_probe.h"
#include "tools/warm_plan.h"

namespace rope_jit {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIncomplete = 3;  // all compiled, but not all are in the cache at the end

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void PrintError(absl::string_view message) {
  fprintf(stderr, "jit_warm: %s\n", std::string(message).c_str());
}

int UsageError(absl::string_view message) {
  PrintError(message);
  fprintf(stderr, "jit_warm: run with --help for the flags\n");
  return kExitUsage;
}

// `bazel run` starts the binary in its runfiles tree; a relative path the user typed
// means the directory they typed it in.
std::string UserPath(const std::string& path) {
  const char* invoked_from = getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || invoked_from == nullptr || *invoked_from == '\0')
    return path;
  return absl::StrCat(invoked_from, "/", path);
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Whether the local compilers can build a target, asked once per target: comgr's ISA
// list and NVRTC's arch list do not change while we run.
class CachedValidator {
 public:
  absl::Status operator()(absl::string_view target) {
    auto it = results_.find(std::string(target));
    if (it != results_.end()) return it->second;
    absl::Status status;
    absl::StatusOr<Compiler*> compiler = CompilerForTarget(target);
    status = compiler.ok() ? (*compiler)->ValidateTarget(target) : compiler.status();
    results_.emplace(std::string(target), status);
    return status;
  }

 private:
  std::map<std::string, absl::Status> results_;
};

struct Device {
  DeviceRuntime* runtime = nullptr;
  int index = 0;
  std::string name;
};

// target -> the first device of that target; empty without a GPU.
std::map<std::string, Device> DetectDevices(std::string* why_none) {
  std::map<std::string, Device> devices;
  absl::StatusOr<DeviceRuntime*> runtime = AnyDeviceRuntime();
  if (!runtime.ok()) {
    *why_none = std::string(runtime.status().message());
    return devices;
  }
  absl::StatusOr<int> count = (*runtime)->DeviceCount();
  for (int i = 0; count.ok() && i < *count; ++i) {
    absl::StatusOr<std::string> target = (*runtime)->DeviceTarget(i);
    if (!target.ok()) continue;
    absl::StatusOr<std::string> name = (*runtime)->DeviceName(i);
    devices.emplace(*target, Device{*runtime, i, name.ok() ? *name : "?"});
  }
  if (devices.empty())
    *why_none = count.ok() ? "no device reported" : std::string(count.status().message());
  return devices;
}

std::string FormatDuration(double seconds) {
  if (seconds < 60) return absl::StrFormat("%.0fs", seconds);
  const int whole = static_cast<int>(seconds + 0.5);
  return absl::StrFormat("%dm%02ds", whole / 60, whole % 60);
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1u << 20)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024.0));
}

enum class Outcome { kCompiled, kCached, kRepaired, kFailed };

const char* OutcomeLabel(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCompiled: return "compiled";
    case Outcome::kCached: return "cached";
    case Outcome::kRepaired: return "repaired";
    case Outcome::kFailed: return "FAILED";
  }
  return "?";
}

struct ItemResult {
  Outcome outcome = Outcome::kFailed;
  std::string detail;  // the failure (with the compiler log), or what was repaired
  double seconds = 0;
  bool loaded = false;         // --verify loaded it on a GPU of its target
  bool remote_failed = false;  // with a remote tier: it could not be made to hold the entry
};

// Progress on stderr. On a terminal one status line, redrawn in place; in a log one
// line per finished item. Thread-safe.
class Progress {
 public:
  Progress(size_t total, bool terminal)
      : total_(total), terminal_(terminal), start_(Clock::now()) {}

  void Started(const std::string& item) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = item;
    if (terminal_) Redraw();
  }

  void Finished(const std::string& item, const ItemResult& result) {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    const std::string line = absl::StrFormat("[%d/%d] %-8s %s (%.2f s)", done_, total_,
                                             OutcomeLabel(result.outcome), item, result.seconds);
    if (!terminal_) {
      fprintf(stderr, "%s\n", line.c_str());
      return;
    }
    // Failures and repairs stay on screen; the rest only advances the counter.
    if (result.outcome == Outcome::kFailed || result.outcome == Outcome::kRepaired) {
      fprintf(stderr, "\r\033[K%s\n", line.c_str());
    }
    Redraw();
  }

  void Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    if (terminal_) fprintf(stderr, "\r\033[K");
    fflush(stderr);
  }

 private:
  void Redraw() {  // mu_ held
    std::string line = absl::StrFormat("[%d/%d] %s", done_, total_, current_);
    if (done_ > 0 && done_ < total_) {
      const double elapsed = SecondsSince(start_);
      absl::StrAppend(&line, "  ETA ", FormatDuration(elapsed * (total_ - done_) / done_));
    }
    // A line wider than the terminal wraps, and \r then redraws only its last row.
    struct winsize size;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 &&
        line.size() >= size.ws_col) {
      line.resize(size.ws_col - 1);
    }
    fprintf(stderr, "\r\033[K%s", line.c_str());
    fflush(stderr);
  }

  // A std::mutex, as in the library: ThreadSanitizer does not see the system Abseil's.
  std::mutex mu_;
  const size_t total_;
  const bool terminal_;
  const Clock::time_point start_;
  size_t done_ = 0;      // guarded by mu_
  std::string current_;  // guarded by mu_
};

class Warmer {
 public:
  Warmer(KernelService& service, bool verify, std::map<std::string, Device> devices)
      : service_(service), verify_(verify), devices_(std::move(devices)) {}

  ItemResult Warm(const WarmItem& item) {
    const Clock::time_point start = Clock::now();
    ItemResult result = WarmUntimed(item);
    // A node that warms also fills the fleet's remote tier: entries it compiled were
    // published by the service; ones it already had on disk are published here.
    if (result.outcome != Outcome::kFailed && service_.remote() != nullptr) {
      absl::StatusOr<KernelSpec> spec = RopeKernelSpec(item.config, item.kernel, item.target);
      result.remote_failed = !spec.ok() || !service_.PublishRemote(*spec).ok();
    }
    result.seconds = SecondsSince(start);
    return result;
  }

 private:
  static ItemResult Failed(absl::string_view what, const absl::Status& status) {
    ItemResult result;
    result.outcome = Outcome::kFailed;
    result.detail = absl::StrCat(what, status.ToString());
    return result;
  }

  ItemResult WarmUntimed(const WarmItem& item) {
    absl::StatusOr<KernelSpec> spec = RopeKernelSpec(item.config, item.kernel, item.target);
    if (!spec.ok()) return Failed("", spec.status());
    absl::StatusOr<CacheKey> key = service_.KeyFor(*spec);
    if (!key.ok()) return Failed("", key.status());

    ItemResult result;
    std::string code;
    bool have_code = false;
    bool damaged = false;
    if (service_.disk().enabled()) {
      EntryProbe probe = ProbeEntry(service_.disk().dir(), *key, /*check_contents=*/verify_);
      switch (probe.state) {
        case EntryState::kPresent: result.outcome = Outcome::kCached; return result;
        case EntryState::kValid:
          result.outcome = Outcome::kCached;
          code = std::move(probe.payload);
          have_code = true;
          break;
        case EntryState::kDamaged:
          // GetCodeObject's read drops the damaged entry and compiles a fresh one.
          damaged = true;
          result.detail = probe.detail;
          break;
        case EntryState::kMissing: break;
      }
    }
    if (!have_code) {
      absl::StatusOr<std::string> compiled = service_.GetCodeObject(*spec);
      if (!compiled.ok()) return Failed("", compiled.status());
      code = std::move(*compiled);
      result.outcome = damaged ? Outcome::kRepaired : Outcome::kCompiled;
    }

    // --verify with a device of this target: the driver has the last word on an entry.
    auto device = devices_.find(item.target);
    if (!verify_ || device == devices_.end()) return result;
    absl::Status loads = LoadCheck(device->second, item.kernel, code);
    result.loaded = loads.ok();
    if (loads.ok()) return result;
    if (result.outcome != Outcome::kCached) {
      return Failed("compiled, but the driver does not load it: ", loads);
    }
    service_.disk().Remove(*key).IgnoreError();
    absl::StatusOr<std::string> compiled = service_.GetCodeObject(*spec);
    if (!compiled.ok()) return Failed("", compiled.status());
    absl::Status reloaded = LoadCheck(device->second, item.kernel, *compiled);
    if (!reloaded.ok()) return Failed("recompiled, but the driver does not load it: ", reloaded);
    result.outcome = Outcome::kRepaired;
    result.loaded = true;
    result.detail = absl::StrCat("cached entry did not load: ", loads.message());
    return result;
  }

  static absl::Status LoadCheck(const Device& device, RopeKernel kernel, const std::string& code) {
    absl::StatusOr<ModuleHandle> module = device.runtime->LoadModule(device.index, code);
    if (!module.ok()) return module.status();
    absl::Status status;
    for (const char* name : {AlignedFunctionName(kernel), UnalignedFunctionName(kernel),
                             AlignedEarlyFunctionName(kernel)}) {
      absl::StatusOr<FunctionHandle> function = device.runtime->GetFunction(*module, name);
      if (!function.ok() && status.ok()) status = function.status();
    }
    device.runtime->UnloadModule(device.index, *module).IgnoreError();
    return status;
  }

  KernelService& service_;
  const bool verify_;
  const std::map<std::string, Device> devices_;
};

void PrintStats(const ServiceStats& s) {
  printf(
      "stats: memory_hits %llu, disk_hits %llu, misses %llu, compiles %llu (%llu failed, %.1f ms), "
      "loads %llu (%llu failed, %.1f ms), inflight_waits %llu\n",
      (unsigned long long)s.memory_hits, (unsigned long long)s.disk_hits,
      (unsigned long long)s.misses, (unsigned long long)s.compiles,
      (unsigned long long)s.compile_failures, s.compile_ms, (unsigned long long)s.loads,
      (unsigned long long)s.load_failures, s.load_ms, (unsigned long long)s.inflight_waits);
  const DiskCacheStats& d = s.disk;
  printf(
      "disk: hits %llu, misses %llu, corrupt_entries %llu, writes %llu (%llu failed), "
      "evictions %llu, lock_waits %llu (%llu timeouts, %llu errors, %.1f ms), read %.1f ms\n",
      (unsigned long long)d.hits, (unsigned long long)d.misses,
      (unsigned long long)d.corrupt_entries, (unsigned long long)d.writes,
      (unsigned long long)d.write_failures, (unsigned long long)d.evictions,
      (unsigned long long)d.lock_waits, (unsigned long long)d.lock_timeouts,
      (unsigned long long)d.lock_errors, d.lock_wait_ms, d.read_ms);
  if (!s.remote_enabled) return;
  const RemoteCacheStats& r = s.remote;
  printf(
      "remote: hits %llu, misses %llu, bad_entries %llu, timeouts %llu, errors %llu, "
      "circuit_opens %llu, skipped %llu, writes %llu (%llu failed), read %llu bytes, "
      "written %llu bytes, get %.1f ms, put %.1f ms\n",
      (unsigned long long)r.hits, (unsigned long long)r.misses, (unsigned long long)r.bad_entries,
      (unsigned long long)r.timeouts, (unsigned long long)r.errors,
      (unsigned long long)r.circuit_opens, (unsigned long long)r.skipped,
      (unsigned long long)r.writes, (unsigned long long)r.write_failures,
      (unsigned long long)r.bytes_read, (unsigned long long)r.bytes_written, r.get_ms, r.put_ms);
}

// --dry_run: keys only (a service without a disk tier creates no directory), entries
// probed read-only.
int DryRun(const std::vector<WarmItem>& items, const std::string& cache_dir, size_t unsupported,
           bool print_stats) {
  KernelService keys_only{ServiceOptions{}};
  size_t would_compile = 0, cached = 0, damaged = 0, errors = 0;
  for (const WarmItem& item : items) {
    if (!item.unsupported.empty()) continue;
    const std::string what = DescribeItem(item);
    absl::StatusOr<KernelSpec> spec = RopeKernelSpec(item.config, item.kernel, item.target);
    absl::StatusOr<CacheKey> key = spec.ok() ? keys_only.KeyFor(*spec) : spec.status();
    if (!key.ok()) {
      ++errors;
      printf("error          %s: %s\n", what.c_str(), key.status().ToString().c_str());
      continue;
    }
    const EntryProbe probe =
        cache_dir.empty() ? EntryProbe{} : ProbeEntry(cache_dir, *key, /*check_contents=*/true);
    switch (probe.state) {
      case EntryState::kValid:
      case EntryState::kPresent:
        ++cached;
        printf("cached         %s\n", what.c_str());
        break;
      case EntryState::kDamaged:
        ++damaged;
        printf("damaged        %s: %s (would recompile)\n", what.c_str(), probe.detail.c_str());
        break;
      case EntryState::kMissing:
        ++would_compile;
        printf("would compile  %s\n", what.c_str());
        break;
    }
  }
  printf(
      "dry run: would compile %zu, already cached %zu, damaged %zu, unsupported %zu%s; "
      "nothing was written\n",
      would_compile, cached, damaged, unsupported,
      errors == 0 ? "" : absl::StrCat(", errors ", errors).c_str());
  if (print_stats) PrintStats(keys_only.stats());
  return errors == 0 ? kExitOk : kExitFailed;
}

// The items of `order` that did not fail and whose entry is not in the cache now, after
// the run: a write that failed (the disk cache then disables itself) or the run's own
// evictions can leave a cache that the summary alone would call warm.
std::vector<size_t> MissingEntries(KernelService& service, const std::vector<WarmItem>& items,
                                   const std::vector<size_t>& order,
                                   const std::vector<ItemResult>& results) {
  std::vector<size_t> missing;
  for (size_t index : order) {
    if (results[index].outcome == Outcome::kFailed) continue;
    const WarmItem& item = items[index];
    absl::StatusOr<KernelSpec> spec = RopeKernelSpec(item.config, item.kernel, item.target);
    absl::StatusOr<CacheKey> key = spec.ok() ? service.KeyFor(*spec) : spec.status();
    const EntryState state =
        key.ok() ? ProbeEntry(service.disk().dir(), *key, false).state : EntryState::kMissing;
    if (state != EntryState::kPresent && state != EntryState::kValid) missing.push_back(index);
  }
  return missing;
}

std::string WhyMissing(KernelService& service, const ServiceStats& stats, uint64_t max_bytes) {
  if (!service.disk().enabled()) {
    return absl::StrCat("the disk cache was disabled during the run: ",
                        service.disk().disabled_reason());
  }
  if (stats.disk.evictions > 0) {
    return absl::StrCat("this run evicted ", stats.disk.evictions,
                        " entries to stay within the cache budget of ", max_bytes,
                        " bytes (ROPE_JIT_CACHE_MAX_BYTES), smaller than the scope needs");
  }
  return "removed during the run by another process (its eviction) or by hand";
}

// Counts what this process compiled: an item whose compile another process finished
// first (this one waited on its lock, then read its entry) was already cached.
void CountOwnCompiles(const ServiceStats& stats, size_t* compiled, size_t* repaired,
                      size_t* cached) {
  const uint64_t own = stats.compiles - stats.compile_failures;
  const uint64_t claimed = *compiled + *repaired;
  if (own >= claimed) return;
  const size_t raced = std::min<size_t>(claimed - own, *compiled);
  *compiled -= raced;
  *cached += raced;
}

int Run(int argc, char** argv) {
  const Clock::time_point start = Clock::now();
  const int default_jobs = std::max(1u, std::thread::hardware_concurrency());

  absl::StatusOr<WarmFlags> parsed =
      ParseWarmFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) return UsageError(parsed.status().message());
  WarmFlags flags = std::move(*parsed);
  if (flags.help) {
    fputs(WarmUsage(default_jobs).c_str(), stdout);
    return kExitOk;
  }

  std::vector<ManifestEntry> manifest;
  const std::string manifest_path = UserPath(flags.manifest);
  if (!flags.manifest.empty()) {
    absl::StatusOr<std::string> text = ReadTextFile(manifest_path);
    if (!text.ok()) return UsageError(absl::StrCat("--manifest: ", text.status().message()));
    absl::StatusOr<std::vector<ManifestEntry>> entries = ParseManifest(*text, flags.manifest);
    if (!entries.ok()) return UsageError(entries.status().message());
    manifest = std::move(*entries);
  }
  std::vector<HfConfigFile> hf_configs;
  for (const std::string& name : flags.hf_configs) {
    absl::StatusOr<std::string> text = ReadTextFile(UserPath(name));
    if (!text.ok()) return UsageError(absl::StrCat("--hf_config: ", text.status().message()));
    hf_configs.push_back(HfConfigFile{name, std::move(*text)});
  }
  const bool manifest_names_all_targets =
      !flags.manifest.empty() &&
      std::all_of(manifest.begin(), manifest.end(),
                  [](const ManifestEntry& e) { return e.arch.has_value(); });

  // GPUs matter for the default targets and for --verify's load check.
  const bool need_default_targets = flags.arch.empty() && !manifest_names_all_targets;
  std::map<std::string, Device> devices;
  std::string why_no_gpu;
  if (need_default_targets || flags.verify) devices = DetectDevices(&why_no_gpu);

  CachedValidator validator;
  TargetValidator validate = [&validator](absl::string_view target) { return validator(target); };
  TargetChoice targets;
  absl::Status targets_status;
  if (!flags.arch.empty() || need_default_targets) {
    std::vector<std::string> device_targets;
    for (const auto& entry : devices) device_targets.push_back(entry.first);
    absl::StatusOr<TargetChoice> choice = ChooseTargets(flags.arch, device_targets, validate);
    if (absl::IsInvalidArgument(choice.status())) return UsageError(choice.status().message());
    if (choice.ok()) {
      targets = std::move(*choice);
    } else {
      targets_status = choice.status();  // reported after the scope is checked for usage errors
    }
  }
  absl::StatusOr<std::vector<WarmItem>> built =
      !hf_configs.empty() ? BuildItemsFromHfConfigs(flags, targets, hf_configs)
                          : BuildItems(flags, targets, flags.manifest.empty() ? nullptr : &manifest,
                                       flags.manifest, validate);
  if (!built.ok()) return UsageError(built.status().message());
  if (!targets_status.ok()) {
    PrintError(targets_status.message());
    return kExitFailed;
  }
  const std::vector<WarmItem> items = std::move(*built);
  // --verify loads host entries on the host backend (never a default target: a GPU-less
  // machine's defaults are GPU targets).
  if (flags.verify && std::any_of(items.begin(), items.end(), [](const WarmItem& item) {
        return item.target == kHostTarget;
      })) {
    DeviceRuntime& host = RuntimeForVendor(Vendor::kHost);
    devices.emplace(std::string(kHostTarget),
                    Device{&host, 0, host.DeviceName(0).value_or("host")});
  }

  // Say where the targets came from and what is skipped, once per target.
  if (targets.source == "the GPUs present") {
    std::vector<std::string> names;
    for (const auto& [target, device] : devices) {
      names.push_back(absl::StrCat(target, " (", device.name, ")"));
    }
    fprintf(stderr, "note: compiling for the GPUs present: %s\n",
            absl::StrJoin(names, ", ").c_str());
  } else if (targets.source == "the default targets") {
    fprintf(stderr, "note: no GPU found (%s); compiling for the default targets %s\n",
            why_no_gpu.c_str(), absl::StrJoin(targets.usable, ", ").c_str());
  }
  std::map<std::string, std::pair<size_t, std::string>> skipped;  // target -> (items, why)
  size_t unsupported = 0;
  for (const WarmItem& item : items) {
    if (item.unsupported.empty()) continue;
    ++unsupported;
    auto& entry = skipped[item.target];
    ++entry.first;
    entry.second = item.unsupported;
  }
  for (const auto& [target, entry] : skipped) {
    fprintf(stderr, "note: skipping %s (%zu specialization%s): %s\n", target.c_str(), entry.first,
            entry.first == 1 ? "" : "s", entry.second.c_str());
  }

  ServiceOptions options = ServiceOptions::FromEnvironment();
  if (flags.cache_dir.has_value()) options.disk.dir = UserPath(*flags.cache_dir);
  if (flags.dry_run) return DryRun(items, options.disk.dir, unsupported, flags.stats);

  // The service's DiskCache prints the one warning when the directory is unusable.
  KernelService service(options);
  const bool cache_enabled_at_start = service.disk().enabled();
  std::string cache_line;
  if (service.disk().enabled()) {
    cache_line = absl::StrCat("cache: ", service.disk().dir());
  } else if (options.disk.dir.empty()) {
    fprintf(stderr,
            "warning: the disk cache is disabled (ROPE_JIT_CACHE_DISABLE); compiled "
            "kernels are not kept\n");
    cache_line = "cache: memory only (disk cache disabled)";
  } else {
    cache_line = absl::StrCat("cache: memory only (", service.disk().disabled_reason(), ")");
  }

  std::vector<size_t> order;
  for (size_t index : InterleaveByTarget(items)) {
    if (items[index].unsupported.empty()) order.push_back(index);
  }
  const size_t jobs = std::max<size_t>(
      1, std::min<size_t>(flags.jobs > 0 ? flags.jobs : default_jobs, order.size()));
  Warmer warmer(service, flags.verify, std::move(devices));
  Progress progress(order.size(), isatty(STDERR_FILENO) == 1);
  std::vector<ItemResult> results(items.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (size_t j = 0; j < jobs; ++j) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < order.size(); i = next++) {
        const WarmItem& item = items[order[i]];
        const std::string what = DescribeItem(item);
        progress.Started(what);
        results[order[i]] = warmer.Warm(item);
        progress.Finished(what, results[order[i]]);
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  progress.Finish();

  size_t counts[4] = {0, 0, 0, 0};
  size_t loaded = 0;
  size_t remote_failed = 0;
  for (size_t index : order) {
    const ItemResult& result = results[index];
    ++counts[static_cast<int>(result.outcome)];
    if (result.loaded) ++loaded;
    if (result.remote_failed) ++remote_failed;
    if (result.outcome == Outcome::kFailed) {
      // The status message carries the compiler log; indent it under its item.
      fprintf(stderr, "FAILED %s:\n  %s\n", DescribeItem(items[index]).c_str(),
              absl::StrReplaceAll(result.detail, {{"\n", "\n  "}}).c_str());
    } else if (result.outcome == Outcome::kRepaired) {
      fprintf(stderr, "repaired %s: %s\n", DescribeItem(items[index]).c_str(),
              result.detail.c_str());
    }
  }
  const ServiceStats stats = service.stats();
  std::vector<size_t> missing;
  if (cache_enabled_at_start) missing = MissingEntries(service, items, order, results);
  if (!missing.empty()) {
    fprintf(stderr, "jit_warm: %zu of %zu entries in scope are missing from the cache: %s\n",
            missing.size(), order.size(),
            WhyMissing(service, stats, options.disk.max_bytes).c_str());
    for (size_t index : missing)
      fprintf(stderr, "  missing %s\n", DescribeItem(items[index]).c_str());
  }
  if (service.disk().enabled()) {
    absl::StrAppend(&cache_line, " (", FormatBytes(service.disk().TotalBytes()),
                    " in all entries)");
  }
  printf("%s\n", cache_line.c_str());
  if (service.remote() != nullptr) {
    const size_t warmed = order.size() - counts[static_cast<int>(Outcome::kFailed)];
    printf("remote: %s holds %zu of %zu entries (%llu stored now)%s\n",
           service.remote()->url().c_str(), warmed - remote_failed, warmed,
           (unsigned long long)stats.remote.writes,
           remote_failed > 0 ? "; unreachable for the rest" : "");
  }
  size_t compiled = counts[static_cast<int>(Outcome::kCompiled)];
  size_t cached = counts[static_cast<int>(Outcome::kCached)];
  size_t repaired = counts[static_cast<int>(Outcome::kRepaired)];
  CountOwnCompiles(stats, &compiled, &repaired, &cached);
  printf(
      "summary: compiled %zu, already cached %zu, repaired %zu, failed %zu, unsupported %zu; "
      "wall %.2f s, compile %.2f s summed over %zu jobs%s\n",
      compiled, cached, repaired, counts[static_cast<int>(Outcome::kFailed)], unsupported,
      SecondsSince(start), stats.compile_ms / 1000.0, jobs,
      flags.verify ? absl::StrCat("; loaded on a device ", loaded).c_str() : "");
  if (!missing.empty()) {
    printf("incomplete: %zu of %zu entries in scope are not in the cache (see stderr)\n",
           missing.size(), order.size());
  }
  if (flags.stats) PrintStats(stats);
  if (counts[static_cast<int>(Outcome::kFailed)] != 0) return kExitFailed;
  return missing.empty() ? kExitOk : kExitIncomplete;
}

}  // namespace
}  // namespace rope_jit

int main(int argc, char** argv) { return rope_jit::Run(argc, argv); }
