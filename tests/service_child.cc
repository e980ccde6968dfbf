// A separate process for the kernel service's cross-process tests (kernel_service_test,
// kernel_service_process_test):
//
//   service_child --cache_dir=DIR --targets=sm_90[,sm_80,...] [--head_dims=128[,64,...]]
//                 [--threads=1] [--repeat=1] [--wait_file=PATH] [--fsize_limit=BYTES]
//                 [--memory_tier] [--fake_compile_ms=N]
//
// One fresh KernelService over DIR builds the rope kernel for every (target, head_dim).
// Each of --threads threads requests every spec --repeat times, starting at a different
// spec so that the threads overlap on every key. Requests go through GetCodeObject, or
// with --memory_tier through GetFunction on a FakeRuntime (one per target), which has
// the memory tier. With --wait_file the work starts once that file exists, so that many
// children start together. --fsize_limit sets RLIMIT_FSIZE first (a full disk).
// --fake_compile_ms compiles with tests/fake_compiler.h, taking N ms per compile (tests
// about the tiers, not the compiler). The remote tier is configured from the environment
// (ROPE_JIT_REMOTE_CACHE, ...), as in a server.
//
// Prints one line per spec, then one line of the service's stats:
//   spec target=sm_90 head_dim=128 key=<hex> code=<XXH3-128 of the code object> bytes=<n>
//   stats compiles=<n> misses=<n> disk_hits=<n> memory_hits=<n> inflight_waits=<n> ...
//         remote_hits=<n> remote_writes=<n> ... remote_enabled=<0|1>
// (code and bytes are "-" with --memory_tier). Exit code 0 when every request succeeded
// and, per spec, every thread got the same bytes; 1 on a failed request, 2 on a usage
// error, 3 on differing bytes.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "jit/kernel_service.h"
#include "jit/kernel_spec.h"
#include "rope/kernel_specs.h"
#include "tests/fake_compiler.h"
#include "tests/fake_runtime.h"

namespace rope_jit {
namespace {

struct Flags {
  std::string cache_dir;
  std::vector<std::string> targets;
  std::vector<int> head_dims = {128};
  int threads = 1;
  int repeat = 1;
  std::string wait_file;
  std::optional<rlim_t> fsize_limit;
  bool memory_tier = false;
  int fake_compile_ms = -1;  // < 0: the real compilers
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const size_t equals = arg.find('=');
    const absl::string_view name = arg.substr(0, equals);
    const absl::string_view value =
        equals == absl::string_view::npos ? absl::string_view() : arg.substr(equals + 1);
    int number = 0;
    uint64_t bytes = 0;
    if (name == "--cache_dir") {
      flags->cache_dir = std::string(value);
    } else if (name == "--targets") {
      flags->targets = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (name == "--head_dims") {
      flags->head_dims.clear();
      for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        if (!absl::SimpleAtoi(item, &number)) return false;
        flags->head_dims.push_back(number);
      }
    } else if (name == "--threads" && absl::SimpleAtoi(value, &number) && number > 0) {
      flags->threads = number;
    } else if (name == "--repeat" && absl::SimpleAtoi(value, &number) && number > 0) {
      flags->repeat = number;
    } else if (name == "--wait_file") {
      flags->wait_file = std::string(value);
    } else if (name == "--fsize_limit" && absl::SimpleAtoi(value, &bytes)) {
      flags->fsize_limit = static_cast<rlim_t>(bytes);
    } else if (name == "--fake_compile_ms" && absl::SimpleAtoi(value, &number) && number >= 0) {
      flags->fake_compile_ms = number;
    } else if (name == "--memory_tier" && value.empty()) {
      flags->memory_tier = true;
    } else {
      std::fprintf(stderr, "service_child: bad argument %s\n", argv[i]);
      return false;
    }
  }
  return !flags->targets.empty() && !flags->head_dims.empty();
}

struct Request {
  std::string target;
  int head_dim = 0;
  KernelSpec spec;
  CacheKey key;
};

// What one thread got for one spec: the code object (GetCodeObject) or nothing.
struct Result {
  bool ok = false;
  std::string error;
  std::string code;
};

int Run(const Flags& flags) {
  if (!flags.wait_file.empty()) {
    struct stat info;
    for (int i = 0; i < 4000 && stat(flags.wait_file.c_str(), &info) != 0; ++i) usleep(5000);
  }
  if (flags.fsize_limit.has_value()) {
    const struct rlimit limit = {*flags.fsize_limit, *flags.fsize_limit};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) {
      std::perror("setrlimit");
      return 1;
    }
  }
  ServiceOptions options;
  options.disk.dir = flags.cache_dir;
  options.remote = RemoteCacheOptions::FromEnvironment();
  FakeCompiler fake_compiler;
  if (flags.fake_compile_ms >= 0) {
    const int ms = flags.fake_compile_ms;
    fake_compiler.set_on_compile(
        [ms] { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); });
    options.compiler_for_target = fake_compiler.AsLookup();
  }
  KernelService service(options);

  std::vector<Request> requests;
  for (const std::string& target : flags.targets) {
    for (int head_dim : flags.head_dims) {
      RopeConfig config;
      config.head_dim = head_dim;
      absl::StatusOr<KernelSpec> spec = RopeKernelSpec(config, RopeKernel::kRope, target);
      if (!spec.ok()) {
        std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
        return 1;
      }
      absl::StatusOr<CacheKey> key = service.KeyFor(*spec);
      if (!key.ok()) {
        std::fprintf(stderr, "%s\n", key.status().ToString().c_str());
        return 1;
      }
      requests.push_back({target, head_dim, *spec, *key});
    }
  }
  // One fake device per target for --memory_tier; the spec's own target is then empty,
  // as Rope::Create leaves it (the device says which).
  std::vector<std::unique_ptr<FakeRuntime>> runtimes;
  for (const Request& request : requests) {
    runtimes.push_back(std::make_unique<FakeRuntime>(request.target));
  }

  const size_t n = requests.size();
  // results[thread][repeat * n + spec]
  std::vector<std::vector<Result>> results(flags.threads, std::vector<Result>(flags.repeat * n));
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < flags.repeat; ++r) {
        for (size_t step = 0; step < n; ++step) {
          const size_t i = (step + t) % n;
          Result& result = results[t][r * n + i];
          if (flags.memory_tier) {
            KernelSpec spec = requests[i].spec;
            spec.target.clear();
            absl::StatusOr<FunctionHandle> function =
                service.GetFunction(spec, *runtimes[i], 0, AlignedFunctionName(RopeKernel::kRope));
            result.ok = function.ok();
            if (!function.ok()) result.error = function.status().ToString();
          } else {
            absl::StatusOr<std::string> code = service.GetCodeObject(requests[i].spec);
            result.ok = code.ok();
            if (code.ok()) {
              result.code = *std::move(code);
            } else {
              result.error = code.status().ToString();
            }
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  int exit_code = 0;
  for (size_t i = 0; i < n; ++i) {
    const Result& first = results[0][i];
    for (int t = 0; t < flags.threads; ++t) {
      for (int r = 0; r < flags.repeat; ++r) {
        const Result& result = results[t][r * n + i];
        if (!result.ok) {
          std::fprintf(stderr, "request %s head_dim=%d failed: %s\n", requests[i].target.c_str(),
                       requests[i].head_dim, result.error.c_str());
          exit_code = 1;
        } else if (first.ok && result.code != first.code && exit_code == 0) {
          std::fprintf(stderr, "threads got different code objects for %s head_dim=%d\n",
                       requests[i].target.c_str(), requests[i].head_dim);
          exit_code = 3;
        }
      }
    }
    const bool have_code = first.ok && !flags.memory_tier;
    std::printf("spec target=%s head_dim=%d key=%s code=%s bytes=%s\n", requests[i].target.c_str(),
                requests[i].head_dim, requests[i].key.hex.c_str(),
                have_code ? HexHash128(first.code).c_str() : "-",
                have_code ? std::to_string(first.code.size()).c_str() : "-");
  }

  const ServiceStats stats = service.stats();
  const DiskCacheStats& disk = stats.disk;
  const std::string line =
      absl::StrCat("stats compiles=", stats.compiles, " compile_ms=", stats.compile_ms,
                   " compile_failures=", stats.compile_failures, " misses=", stats.misses,
                   " disk_hits=", stats.disk_hits, " memory_hits=", stats.memory_hits,
                   " inflight_waits=", stats.inflight_waits, " loads=", stats.loads,
                   " corrupt=", disk.corrupt_entries, " writes=", disk.writes,
                   " write_failures=", disk.write_failures, " lock_waits=", disk.lock_waits,
                   " lock_timeouts=", disk.lock_timeouts, " lock_errors=", disk.lock_errors,
                   " disk_enabled=", service.disk().enabled() ? 1 : 0);
  const RemoteCacheStats& remote = stats.remote;
  const std::string remote_line = absl::StrCat(
      " remote_hits=", remote.hits, " remote_misses=", remote.misses,
      " remote_bad_entries=", remote.bad_entries, " remote_writes=", remote.writes,
      " remote_timeouts=", remote.timeouts, " remote_errors=", remote.errors,
      " remote_enabled=", stats.remote_enabled ? 1 : 0);
  std::printf("%s%s\n", line.c_str(), remote_line.c_str());
  return exit_code;
}

}  // namespace
}  // namespace rope_jit

int main(int argc, char** argv) {
  rope_jit::Flags flags;
  if (!rope_jit::ParseFlags(argc, argv, &flags)) {
    std::fprintf(stderr,
                 "usage: service_child --cache_dir=DIR --targets=T[,T...] [--head_dims=N[,N...]] "
                 "[--threads=N] [--repeat=N] [--wait_file=PATH] [--fsize_limit=BYTES] "
                 "[--memory_tier] [--fake_compile_ms=N]\n");
    return 2;
  }
  return rope_jit::Run(flags);
}
