// The kernel service without a GPU: real compiles (NVRTC for sm_80/sm_90, hipRTC for
// gfx90a), the key, the memory and disk tiers, faults, and single flight across threads
// and processes.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/disk_cache.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "tests/fake_compiler.h"
#include "tests/fake_runtime.h"
#include "tests/require_compiler.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

ServiceOptions OptionsFor(const std::string& dir) {
  ServiceOptions options;
  options.disk.dir = dir;
  return options;
}

KernelSpec Spec(const std::string& target, int head_dim = 128, DType dtype = DType::kBF16) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.dtype = dtype;
  auto spec = RopeKernelSpec(config, RopeKernel::kRope, target);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}


TEST(KernelServiceTest, CompilesRealKernelsForNamedArchsWithoutAGpu) {
  KernelService service(OptionsFor(TempPath("archs")));
  int compiled = 0;
  for (const char* target : {"sm_80", "sm_90", "gfx90a", "gfx1030"}) {
    Vendor vendor = *VendorOfTarget(target);
    if (!CompilerForVendor(vendor).Identity().ok()) continue;
    for (RopeKernel kernel : {RopeKernel::kRope, RopeKernel::kPositionEmbeddings}) {
      RopeConfig config;
      auto spec = RopeKernelSpec(config, kernel, target);
      ASSERT_TRUE(spec.ok()) << spec.status();
      auto code = service.GetCodeObject(*spec);
      ASSERT_TRUE(code.ok()) << target << ": " << code.status();
      EXPECT_TRUE(absl::StartsWith(*code, "\x7f" "ELF")) << target;
      EXPECT_TRUE(absl::StrContains(*code, AlignedFunctionName(kernel))) << target;
      ++compiled;
    }
  }
  if (compiled == 0) GTEST_SKIP() << "neither NVRTC nor hipRTC is installed";
  EXPECT_EQ(service.stats().compiles, static_cast<uint64_t>(compiled));
}

TEST(KernelServiceTest, UnsupportedOrGarbageArchIsAClearErrorAndTheProcessLives) {
  KernelService service(OptionsFor(TempPath("badarch")));
  // gfx950 is past both Debian's hipRTC and clang 19; gfx942 and gfx1100, past hipRTC only,
  // go to clang (jit/backends.h) and are built in kernel_compile_test.
  for (const char* target : {"gfx950", "gfx9999", "sm_10"}) {
    Vendor vendor = *VendorOfTarget(target);
    if (!CompilerForVendor(vendor).Identity().ok()) continue;
    auto code = service.GetCodeObject(Spec(target));
    EXPECT_EQ(code.status().code(), absl::StatusCode::kUnimplemented) << target << ": " << code.status();
  }
  for (const char* target : {"banana", "gfx90a;rm", ""}) {
    RopeConfig config;
    auto spec = RopeKernelSpec(config, RopeKernel::kRope, target);
    ASSERT_TRUE(spec.ok());
    EXPECT_EQ(service.GetCodeObject(*spec).status().code(), absl::StatusCode::kInvalidArgument) << target;
  }
  EXPECT_EQ(service.stats().compiles, 0u);
}

TEST(KernelServiceTest, EveryKeyInputChangesTheKey) {
  const KernelSpec base = Spec("sm_90");
  const std::vector<std::string> options = {"-O3"};
  const std::string key = MakeCacheKey(base, "nvrtc-1", options).hex;
  std::set<std::string> keys = {key};
  auto add = [&](const KernelSpec& spec, const std::string& identity, const std::vector<std::string>& opts) {
    keys.insert(MakeCacheKey(spec, identity, opts).hex);
  };
  KernelSpec other = base;
  other.target = "sm_90a";
  add(other, "nvrtc-1", options);
  other = base;
  other.source_hash = "0" + other.source_hash.substr(1);
  add(other, "nvrtc-1", options);
  other = base;
  other.kernel = "position_embeddings";
  add(other, "nvrtc-1", options);
  for (size_t i = 0; i < base.defines.size(); ++i) {
    other = base;
    other.defines[i] += "0";
    add(other, "nvrtc-1", options);
  }
  add(base, "nvrtc-2", options);
  add(base, "nvrtc-1", {"-O2"});
  add(base, "nvrtc-1", {"-O3", "-DX"});
  EXPECT_EQ(keys.size(), 7u + base.defines.size());  // base, 3 spec fields, identity, 2 option lists
  // Same inputs, same key; and a baked parameter seen through RopeKernelSpec.
  EXPECT_EQ(MakeCacheKey(base, "nvrtc-1", options).hex, key);
  EXPECT_NE(MakeCacheKey(Spec("sm_90", 64), "nvrtc-1", options).hex, key);
  EXPECT_NE(MakeCacheKey(Spec("sm_90", 128, DType::kF16), "nvrtc-1", options).hex, key);
  EXPECT_EQ(key.size(), 32u);
}

std::string RunChild(const std::string& args) {
  const std::string command = RunfilePath("tests/service_child") + " " + args;
  const ShellRun run = RunShell(command);
  EXPECT_EQ(run.exit_code, 0) << command << " -> " << run.output;
  return run.output;
}

std::string Field(const std::string& line, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(line, absl::ByAnyChar(" \n"))) {
    if (absl::StartsWith(part, name + "=")) return std::string(part.substr(name.size() + 1));
  }
  return "";
}

TEST(KernelServiceTest, KeyIsTheSameInAnotherProcess) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  KernelService service(OptionsFor(TempPath("samekey")));
  RopeConfig config;
  auto key = service.KeyFor(*RopeKernelSpec(config, RopeKernel::kRope, "sm_90"));
  ASSERT_TRUE(key.ok()) << key.status();
  std::string child = RunChild("--cache_dir=" + TempPath("samekey_child") + " --targets=sm_90");
  EXPECT_EQ(Field(child, "key"), key->hex) << child;
}

TEST(KernelServiceTest, MemoryThenDiskHitsWithoutCompiling) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const std::string dir = TempPath("tiers");
  FakeRuntime runtime("sm_90");
  const KernelSpec spec = Spec("");
  {
    KernelService service(OptionsFor(dir));
    ASSERT_TRUE(service.GetFunction(spec, runtime, 0, "rope_apply_aligned").ok());
    ASSERT_TRUE(service.GetFunction(spec, runtime, 0, "rope_apply_aligned").ok());
    ServiceStats stats = service.stats();
    EXPECT_EQ(stats.compiles, 1u);
    EXPECT_EQ(stats.misses, 1u);
    EXPECT_EQ(stats.memory_hits, 1u);
    EXPECT_EQ(stats.loads, 1u);
  }
  KernelService fresh(OptionsFor(dir));
  ASSERT_TRUE(fresh.GetFunction(spec, runtime, 0, "rope_apply_aligned").ok());
  ServiceStats stats = fresh.stats();
  EXPECT_EQ(stats.compiles, 0u);
  EXPECT_EQ(stats.disk_hits, 1u);
  EXPECT_EQ(stats.memory_hits, 0u);
  auto missing = fresh.GetFunction(spec, runtime, 0, "no_such_function");
  EXPECT_FALSE(missing.ok());
}

// The memory key packs a spec's fields into a stack buffer and spills longer specs to the
// heap: such a spec still hits memory, and one differing only in its last define is
// still a different module.
TEST(KernelServiceTest, LongSpecsStillHitMemoryAndStayDistinct) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  KernelService service(OptionsFor(""));
  FakeRuntime runtime("sm_90");
  KernelSpec long_spec = Spec("");
  for (int i = 0; i < 40; ++i) long_spec.defines.push_back(absl::StrCat("ROPE_TEST_UNUSED_", i, "=12345678"));
  KernelSpec other = long_spec;
  other.defines.back() = "ROPE_TEST_UNUSED_39=87654321";
  ASSERT_TRUE(service.GetFunction(long_spec, runtime, 0, "rope_apply_aligned").ok());
  ASSERT_TRUE(service.GetFunction(long_spec, runtime, 0, "rope_apply_aligned").ok());
  EXPECT_EQ(service.stats().compiles, 1u);
  EXPECT_EQ(service.stats().memory_hits, 1u);
  ASSERT_TRUE(service.GetFunction(other, runtime, 0, "rope_apply_aligned").ok());
  EXPECT_EQ(service.stats().compiles, 2u);
  EXPECT_EQ(service.stats().memory_hits, 1u);
}

// A corrupted entry is a miss: recompiled, replaced, then served from disk again.
TEST(KernelServiceTest, CorruptEntryIsRecompiledAndReplaced) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const std::string dir = TempPath("corrupt");
  const KernelSpec spec = Spec("sm_90");
  std::string path;
  {
    KernelService service(OptionsFor(dir));
    ASSERT_TRUE(service.GetCodeObject(spec).ok());
    path = dir + "/" + DiskCache::EntryFileName(*service.KeyFor(spec));
  }
  std::string bytes = ReadFile(path);
  ASSERT_FALSE(bytes.empty()) << path;
  bytes[bytes.size() / 2] ^= 0x40;
  WriteFile(path, bytes);
  {
    KernelService service(OptionsFor(dir));
    auto code = service.GetCodeObject(spec);
    ASSERT_TRUE(code.ok()) << code.status();
    ServiceStats stats = service.stats();
    EXPECT_EQ(stats.compiles, 1u);
    EXPECT_EQ(stats.disk.corrupt_entries, 1u);
  }
  KernelService service(OptionsFor(dir));
  ASSERT_TRUE(service.GetCodeObject(spec).ok());
  EXPECT_EQ(service.stats().compiles, 0u);
  EXPECT_EQ(service.stats().disk_hits, 1u);
}

// An entry that validates but that the driver refuses is dropped and rebuilt once.
TEST(KernelServiceTest, EntryTheDriverRefusesIsRebuilt) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const std::string dir = TempPath("refused");
  FakeRuntime runtime("sm_90");
  KernelService service(OptionsFor(dir));
  const KernelSpec spec = Spec("sm_90");
  auto key = service.KeyFor(spec);
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(service.disk().Write(*key, "not a code object").ok());
  auto function = service.GetFunction(Spec(""), runtime, 0, "rope_apply_aligned");
  ASSERT_TRUE(function.ok()) << function.status();
  ServiceStats stats = service.stats();
  EXPECT_EQ(stats.load_failures, 1u);
  EXPECT_EQ(stats.compiles, 1u);
  EXPECT_EQ(runtime.loads(), 2);
}

TEST(KernelServiceTest, EightThreadsOnOneColdKeyCompileOnce) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  KernelService service(OptionsFor(TempPath("threads")));
  const KernelSpec spec = Spec("sm_80", 64, DType::kF16);
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> results(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = service.GetCodeObject(spec); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, *results[0]);
  }
  EXPECT_EQ(service.stats().compiles, 1u);
}

// The in-process half of the load test (kernel_service_process_test has the processes),
// small enough for CI's ThreadSanitizer run: threads that overlap on several cold keys
// get identical bytes, and each key is compiled once.
TEST(KernelServiceTest, ThreadsOnOverlappingKeysCompileEachOnce) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  KernelService service(OptionsFor(TempPath("overlap")));
  const std::vector<KernelSpec> specs = {Spec("sm_80", 64), Spec("sm_80", 128), Spec("sm_90", 64),
                                         Spec("sm_90", 128)};
  constexpr int kThreads = 8;
  std::vector<std::vector<absl::StatusOr<std::string>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      results[t].resize(specs.size());
      // Each thread starts at another key, so every key has several first requesters.
      for (size_t step = 0; step < specs.size(); ++step) {
        const size_t i = (step + t) % specs.size();
        results[t][i] = service.GetCodeObject(specs[i]);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> distinct;
  for (size_t i = 0; i < specs.size(); ++i) {
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_TRUE(results[t][i].ok()) << results[t][i].status();
      EXPECT_EQ(*results[t][i], *results[0][i]) << "spec " << i << ", thread " << t;
    }
    distinct.insert(*results[0][i]);
  }
  EXPECT_EQ(distinct.size(), specs.size());
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.compiles, specs.size());
  EXPECT_EQ(stats.compile_failures, 0u);
  // Every request is a compile, a disk hit (the key was published between its miss and
  // its look) or a wait for another thread's compile.
  EXPECT_EQ(stats.misses + stats.disk_hits + stats.inflight_waits, kThreads * specs.size());
}

// The memory tier under threads: hits take the shared lock while other threads load.
TEST(KernelServiceTest, ThreadsShareTheMemoryTier) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  KernelService service(OptionsFor(TempPath("memory_threads")));
  FakeRuntime runtime("sm_90");
  const std::vector<KernelSpec> specs = {Spec("", 64), Spec("", 128)};
  const char* const functions[] = {AlignedFunctionName(RopeKernel::kRope),
                                   UnalignedFunctionName(RopeKernel::kRope)};
  constexpr int kThreads = 8;
  constexpr int kRounds = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const KernelSpec& spec = specs[(round + t) % specs.size()];
        if (!service.GetFunction(spec, runtime, 0, functions[(round / 2 + t) % 2]).ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.compiles, specs.size());
  EXPECT_EQ(stats.loads, specs.size());
  // At most each thread's first request of each (spec, function) misses the memory tier.
  EXPECT_GE(stats.memory_hits, static_cast<uint64_t>(kThreads * kRounds - kThreads * 4));
}

// Each compile records when it ran; the hook makes it wait (up to a deadline) until
// `expected` compiles are inside at once, which can only happen if nothing serializes
// them.
class CompileGate {
 public:
  explicit CompileGate(int expected) : expected_(expected) {}
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    ++inside_;
    cv_.notify_all();
    all_inside_ |= cv_.wait_for(lock, std::chrono::seconds(5), [&] { return inside_ >= expected_; });
  }
  bool all_inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_inside_;
  }

 private:
  const int expected_;
  std::mutex mu_;
  std::condition_variable cv_;
  int inside_ = 0;
  bool all_inside_ = false;
};

ServiceOptions FakeCompilerOptions(FakeCompiler& compiler, const std::string& dir) {
  ServiceOptions options = OptionsFor(dir);
  options.compiler_for_target = compiler.AsLookup();
  return options;
}

// Two cold misses of different keys, from two threads (two models, or two GPUs): both
// compiles are inside the compiler at once, through GetFunction and GetCodeObject alike.
TEST(KernelServiceTest, MissesOfDifferentKeysCompileConcurrently) {
  for (bool through_function : {true, false}) {
    SCOPED_TRACE(through_function ? "GetFunction" : "GetCodeObject");
    FakeCompiler compiler;
    CompileGate gate(2);
    compiler.set_on_compile([&] { gate.Enter(); });
    KernelService service(FakeCompilerOptions(compiler, TempPath("concurrent")));
    FakeRuntime runtime("sm_90");
    const std::vector<KernelSpec> specs = {Spec("", 64), Spec("", 128)};
    std::vector<absl::Status> results(2);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        if (through_function) {
          results[i] = service.GetFunction(specs[i], runtime, 0, "rope_apply_aligned").status();
        } else {
          KernelSpec spec = specs[i];
          spec.target = "sm_90";
          results[i] = service.GetCodeObject(spec).status();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
    EXPECT_TRUE(gate.all_inside()) << "the two compiles ran one after the other";
    EXPECT_EQ(service.stats().compiles, 2u);
    EXPECT_EQ(compiler.compiles(), 2);
  }
}

// Two threads missing one key while its compile is running: one compile. Through
// GetFunction on two devices of one target (two memory keys, one cache key) and
// through GetCodeObject.
TEST(KernelServiceTest, MissesOfOneKeyCompileOnce) {
  FakeCompiler compiler;
  std::atomic<int> entered{0};
  compiler.set_on_compile([&] {
    ++entered;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the others arrive meanwhile
  });
  KernelService service(FakeCompilerOptions(compiler, TempPath("one_key")));
  FakeRuntime runtime("sm_90");
  const KernelSpec spec = Spec("", 64);
  KernelSpec targeted = spec;
  targeted.target = "sm_90";
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      if (i < 2) {
        results[i] = service.GetFunction(spec, runtime, i, "rope_apply_aligned").status();
      } else {
        results[i] = service.GetCodeObject(targeted).status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.compiles, 1u);
  EXPECT_EQ(entered.load(), 1);
  EXPECT_EQ(stats.loads, 2u);  // one module per device
  EXPECT_EQ(stats.misses + stats.disk_hits + stats.inflight_waits, 4u);
}

TEST(KernelServiceTest, FourProcessesOnOneColdKeyCompileOnce) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const std::string dir = TempPath("processes");
  const std::string go = dir + "_go";
  std::vector<FILE*> pipes;
  for (int i = 0; i < 4; ++i) {
    pipes.push_back(StartShell(absl::StrCat(RunfilePath("tests/service_child"),
                                            " --cache_dir=", dir, " --targets=sm_90 --wait_file=", go)));
    ASSERT_NE(pipes.back(), nullptr);
  }
  WriteFile(go, "go");
  int compiles = 0, hits = 0;
  std::set<std::string> keys;
  for (FILE* pipe : pipes) {
    const ShellRun run = FinishShell(pipe);
    const std::string& output = run.output;
    EXPECT_EQ(run.exit_code, 0) << output;
    compiles += std::atoi(Field(output, "compiles").c_str());
    hits += std::atoi(Field(output, "disk_hits").c_str());
    keys.insert(Field(output, "key"));
  }
  EXPECT_EQ(compiles, 1);
  EXPECT_EQ(hits, 3);
  EXPECT_EQ(keys.size(), 1u);
}

TEST(KernelServiceTest, UnusableCacheDirectoryStillServesFromMemory) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const std::string file = TempPath("not_a_dir");
  WriteFile(file, "x");
  KernelService service(OptionsFor(file + "/cache"));  // parent is a file: cannot exist
  EXPECT_FALSE(service.disk().enabled());
  FakeRuntime runtime("sm_90");
  ASSERT_TRUE(service.GetFunction(Spec(""), runtime, 0, "rope_apply_aligned").ok());
  ASSERT_TRUE(service.GetFunction(Spec(""), runtime, 0, "rope_apply_aligned").ok());
  EXPECT_EQ(service.stats().compiles, 1u);
  EXPECT_EQ(service.stats().memory_hits, 1u);
}

TEST(KernelServiceTest, DisabledCacheKeepsEverythingInMemory) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  KernelService service(OptionsFor(""));
  EXPECT_FALSE(service.disk().enabled());
  ASSERT_TRUE(service.GetCodeObject(Spec("sm_90")).ok());
  EXPECT_EQ(service.stats().compiles, 1u);
}

}  // namespace
}  // namespace rope_jit
