// The host backend (jit/host) on its own: the compiler (identity, options, missing, failing,
// hanging and lying compilers), the runtime (grids, the thread pool, modules, memory,
// events) and the kernel service's tiers for host entries. The kernels' accuracy on the
// host is rope_gpu_test's host instance.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/disk_cache.h"
#include "jit/host/host_compiler.h"
#include "jit/host/host_runtime.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "rope/reference.h"
#include "rope/rope.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

// Rope::Create builds one module per kernel (rope/kernel_specs.h, via rope/rope.h).
constexpr size_t kModulesPerRope = sizeof(kAllRopeKernels) / sizeof(kAllRopeKernels[0]);

namespace fs = std::filesystem;

// A stand-in compiler: a shell script that answers --version like a compiler and does
// `body` for a compile (its arguments in "$@", the output path last).
std::string WriteCompilerScript(const std::string& dir, const std::string& body) {
  const std::string path = dir + "/fake-c++";
  std::ofstream(path) << "#!/bin/sh\n"
                      << "if [ \"$1\" = --version ]; then echo 'fake-c++ 1.0'; exit 0; fi\n"
                      << body << "\n";
  chmod(path.c_str(), 0755);
  return path;
}

HostCompilerOptions WithCompiler(const std::string& cxx,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  HostCompilerOptions options = HostCompilerOptions::FromEnvironment();
  options.cxx = cxx;
  options.timeout = timeout;
  return options;
}

// The kernel sources' text as the service sees it: the prelude with host_grid.h inlined.
std::string RunfileText(const std::string& path) {
  return ReadFile(RunfilePath(path));
}

// Test kernels on the real prelude: each thread counts itself in `counts`, so a grid that
// runs a thread twice or never shows it; `write_value` stores VALUE (two builds differ).
std::string TestKernelSource() {
  const std::string prelude = absl::StrReplaceAll(
      RunfileText("kernels/prelude.h"),
      {{"#include \"kernels/host_grid.h\"", RunfileText("kernels/host_grid.h")}});
  return absl::StrCat("#define ROPE_DTYPE 0\n", prelude, R"(
struct CountArgs {
  unsigned* counts;
  unsigned long long n;
};
extern "C" __global__ void count_threads(CountArgs a) {
  const unsigned long long block =
      blockIdx.x + 1ull * gridDim.x * (blockIdx.y + 1ull * gridDim.y * blockIdx.z);
  const unsigned long long thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned long long g = block * blockDim.x * blockDim.y * blockDim.z + thread;
  if (g < a.n) __atomic_fetch_add(&a.counts[g], 1u, __ATOMIC_RELAXED);
}
ROPE_HOST_ENTRY(count_threads, CountArgs)
extern "C" __global__ void write_value(CountArgs a) { a.counts[0] = VALUE; }
ROPE_HOST_ENTRY(write_value, CountArgs)
)");
}

struct CountArgs {
  unsigned* counts;
  unsigned long long n;
};

// One compiled test module per VALUE, shared by the tests of this binary.
const std::string& TestModule(int value) {
  static std::string* modules[2] = {nullptr, nullptr};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string*& module = modules[value - 1];
  if (module == nullptr) {
    HostCompiler compiler;
    const std::string source = TestKernelSource();
    absl::StatusOr<std::string> code = compiler.Compile(
        {source, "test_kernels", {absl::StrCat("VALUE=", value)}, std::string(kHostTarget)});
    EXPECT_TRUE(code.ok()) << code.status();
    module = new std::string(code.ok() ? *code : "");
  }
  return *module;
}

// ---------------------------------------------------------------------------------------
// Compiler

TEST(HostCompilerTest, IdentityNamesTheResolvedCompilerItsHashAndVersion) {
  HostCompiler compiler;
  absl::StatusOr<std::string> identity = compiler.Identity();
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_TRUE(absl::StartsWith(*identity, "host-cxx ")) << *identity;
  EXPECT_TRUE(absl::StrContains(*identity, "xxh3-128:")) << *identity;
  EXPECT_EQ(compiler.vendor(), Vendor::kHost);
  EXPECT_EQ(CompilerForTarget("host").value(), &CompilerForVendor(Vendor::kHost));

  // Another file with the same version line is another compiler.
  const std::string dir = FreshDir("identity");
  HostCompiler fake(WithCompiler(WriteCompilerScript(dir, "exit 1")));
  absl::StatusOr<std::string> fake_identity = fake.Identity();
  ASSERT_TRUE(fake_identity.ok()) << fake_identity.status();
  EXPECT_TRUE(absl::EndsWith(*fake_identity, "; fake-c++ 1.0")) << *fake_identity;
  EXPECT_NE(*fake_identity, *identity);
}

TEST(HostCompilerTest, OptionsArePinnedAndSanitizersAreAnOption) {
  HostCompilerOptions plain = HostCompilerOptions::FromEnvironment();
  plain.sanitize.clear();
  const std::vector<std::string> options = HostCompiler(plain).Options("host");
  for (const char* wanted : {"-std=c++17", "-O2", "-fPIC", "-shared", "-fno-strict-aliasing",
                             "-ffp-contract=off", "-DROPE_HOST=1"}) {
    EXPECT_NE(std::find(options.begin(), options.end(), wanted), options.end()) << wanted;
  }
  for (const std::string& option : options) {
    EXPECT_FALSE(absl::StartsWith(option, "-march")) << option;
    EXPECT_FALSE(absl::StartsWith(option, "-fsanitize")) << option;
  }
  HostCompilerOptions sanitized = plain;
  sanitized.sanitize = "address,undefined";
  const std::vector<std::string> with = HostCompiler(sanitized).Options("host");
  EXPECT_NE(std::find(with.begin(), with.end(), "-fsanitize=address,undefined"), with.end());
  EXPECT_NE(std::find(with.begin(), with.end(), "-O1"), with.end());
}

TEST(HostCompilerTest, BuildsOnlyForHost) {
  HostCompiler compiler;
  EXPECT_TRUE(compiler.ValidateTarget("host").ok());
  EXPECT_EQ(compiler.ValidateTarget("sm_90").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(compiler.ValidateTarget("banana").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(compiler.SupportedTargets().value(), std::vector<std::string>{"host"});
  absl::StatusOr<std::string> code = compiler.Compile({"", "x", {}, "sm_90"});
  EXPECT_EQ(code.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(HostCompilerTest, MissingCompilerIsUnavailableNamingWhatWasLookedFor) {
  HostCompiler compiler(WithCompiler("/nonexistent/c++"));
  absl::StatusOr<std::string> identity = compiler.Identity();
  EXPECT_EQ(identity.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(identity.status().message(), "/nonexistent/c++"))
      << identity.status();
  EXPECT_TRUE(absl::StrContains(identity.status().message(), "ROPE_JIT_HOST_CXX"))
      << identity.status();
  absl::StatusOr<std::string> code = compiler.Compile({"int x;", "x", {}, "host"});
  EXPECT_EQ(code.status().code(), absl::StatusCode::kUnavailable);

  HostCompiler not_on_path(WithCompiler("rope-jit-no-such-c++"));
  EXPECT_EQ(not_on_path.Identity().status().code(), absl::StatusCode::kUnavailable);
}

TEST(HostCompilerTest, CompileErrorIsInternalWithTheLog) {
  HostCompiler compiler;
  absl::StatusOr<std::string> code =
      compiler.Compile({"this is not C++;", "broken_kernel", {}, "host"});
  EXPECT_EQ(code.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(code.status().message(), "broken_kernel.cc")) << code.status();
  EXPECT_TRUE(absl::StrContains(code.status().message(), "error")) << code.status();
}

TEST(HostCompilerTest, CompilerThatExitsOneIsInternalWithItsOutput) {
  const std::string dir = FreshDir("exit1");
  HostCompiler compiler(
      WithCompiler(WriteCompilerScript(dir, "echo 'fake-c++: broken on purpose' >&2; exit 1")));
  absl::StatusOr<std::string> code = compiler.Compile({"int x;", "k", {}, "host"});
  EXPECT_EQ(code.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(code.status().message(), "broken on purpose")) << code.status();
  EXPECT_TRUE(absl::StrContains(code.status().message(), "exited with status 1"))
      << code.status();
}

TEST(HostCompilerTest, CompilerThatHangsIsKilledAtTheLimitAndLeavesNothingRunning) {
  const std::string dir = FreshDir("hang");
  const std::string pid_file = dir + "/pids";
  // The compiler and a child of its own both outlive the limit.
  HostCompiler compiler(WithCompiler(
      WriteCompilerScript(dir, "sleep 300 & echo $$ $! > " + pid_file + "; wait"),
      std::chrono::milliseconds(1500)));
  ASSERT_TRUE(compiler.Identity().ok());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> code = compiler.Compile({"int x;", "k", {}, "host"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(code.status().code(), absl::StatusCode::kDeadlineExceeded) << code.status();
  EXPECT_TRUE(absl::StrContains(code.status().message(), "1500 ms")) << code.status();
  std::vector<int> pids;
  std::istringstream words(ReadFile(pid_file));
  for (int pid; words >> pid;) pids.push_back(pid);
  ASSERT_EQ(pids.size(), 2u) << ReadFile(pid_file);
  for (int pid : pids) {
    bool gone = false;
    for (int i = 0; i < 500 && !gone; ++i) {
      const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
      const size_t paren = stat.rfind(')');
      gone = stat.empty() || (paren != std::string::npos && stat[paren + 2] == 'Z');
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(gone) << "process " << pid << " still running";
  }
}

TEST(HostCompilerTest, OutputThatIsNotASharedObjectIsRefused) {
  const std::string dir = FreshDir("garbage");
  HostCompiler compiler(WithCompiler(
      WriteCompilerScript(dir, "for last; do :; done; echo 'not an ELF' > \"$last\"")));
  absl::StatusOr<std::string> code = compiler.Compile({"int x;", "k", {}, "host"});
  EXPECT_EQ(code.status().code(), absl::StatusCode::kInternal) << code.status();
  EXPECT_TRUE(absl::StrContains(code.status().message(), "not an ELF")) << code.status();
}

TEST(HostCompilerTest, CompilesConcurrently) {
  HostCompiler compiler;
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> results(3, absl::UnknownError("not run"));
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      const std::string source = absl::StrCat("extern \"C\" int value() { return ", i, "; }");
      results[i] = compiler.Compile({source, "k", {}, "host"});
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_TRUE(result.ok()) << result.status();
}

// ---------------------------------------------------------------------------------------
// Runtime

TEST(HostRuntimeTest, OneDeviceNamedHost) {
  DeviceRuntime& runtime = RuntimeForVendor(Vendor::kHost);
  EXPECT_EQ(runtime.vendor(), Vendor::kHost);
  EXPECT_EQ(runtime.DeviceCount().value(), 1);
  EXPECT_EQ(runtime.DeviceTarget(0).value(), "host");
  absl::StatusOr<std::string> name = runtime.DeviceName(0);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_TRUE(absl::StrContains(*name, "host")) << *name;
  EXPECT_EQ(runtime.DeviceTarget(1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runtime.SetDevice(-1).code(), absl::StatusCode::kInvalidArgument);
  // A server asking for a device never gets the CPU.
  absl::StatusOr<DeviceRuntime*> gpu = AnyDeviceRuntime();
  if (gpu.ok()) {
    EXPECT_NE((*gpu)->vendor(), Vendor::kHost);
  }
}

void ExpectEveryThreadRunsOnce(HostRuntime& runtime, FunctionHandle count, Dim3 grid, Dim3 block) {
  const uint64_t n = uint64_t{grid.x} * grid.y * grid.z * block.x * block.y * block.z;
  std::vector<unsigned> counts(n, 0);
  CountArgs args{counts.data(), n};
  void* params[] = {&args};
  ASSERT_TRUE(runtime.Launch(0, count, grid, block, 0, nullptr, params).ok());
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(counts[i], 1u) << "thread " << i << " of grid " << grid.x << "x" << grid.y << "x"
                             << grid.z << ", block " << block.x << "x" << block.y << "x" << block.z;
  }
}

TEST(HostRuntimeTest, LaunchRunsEveryThreadOfTheGridOnce) {
  for (int workers : {1, 3, 0}) {
    HostRuntime runtime(workers);
    absl::StatusOr<ModuleHandle> module = runtime.LoadModule(0, TestModule(1));
    ASSERT_TRUE(module.ok()) << module.status();
    absl::StatusOr<FunctionHandle> count = runtime.GetFunction(*module, "count_threads");
    ASSERT_TRUE(count.ok()) << count.status();
    ExpectEveryThreadRunsOnce(runtime, *count, {1, 1, 1}, {1, 1, 1});
    ExpectEveryThreadRunsOnce(runtime, *count, {7, 3, 2}, {5, 4, 3});
    ExpectEveryThreadRunsOnce(runtime, *count, {1001, 1, 1}, {256, 1, 1});
    ExpectEveryThreadRunsOnce(runtime, *count, {3, 1, 1}, {1024, 1, 1});
    EXPECT_TRUE(runtime.UnloadModule(0, *module).ok());
  }
}

TEST(HostRuntimeTest, ConcurrentLaunchesShareThePool) {
  HostRuntime runtime(4);
  absl::StatusOr<ModuleHandle> module = runtime.LoadModule(0, TestModule(1));
  ASSERT_TRUE(module.ok()) << module.status();
  absl::StatusOr<FunctionHandle> count = runtime.GetFunction(*module, "count_threads");
  ASSERT_TRUE(count.ok()) << count.status();
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&runtime, &count, t] {
      for (int i = 0; i < 20; ++i) {
        ExpectEveryThreadRunsOnce(runtime, *count, {static_cast<uint32_t>(37 + t * 11 + i), 1, 1},
                                  {64, 1, 1});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

TEST(HostRuntimeTest, LaunchRefusesWhatTheHostCannotDo) {
  HostRuntime runtime(2);
  absl::StatusOr<ModuleHandle> module = runtime.LoadModule(0, TestModule(1));
  ASSERT_TRUE(module.ok()) << module.status();
  FunctionHandle count = runtime.GetFunction(*module, "count_threads").value();
  unsigned counts[1] = {0};
  CountArgs args{counts, 1};
  void* params[] = {&args};
  EXPECT_EQ(runtime.Launch(0, count, {1, 1, 1}, {1, 1, 1}, 16, nullptr, params).code(),
            absl::StatusCode::kInvalidArgument);  // shared memory
  EXPECT_EQ(runtime.Launch(0, count, {0, 1, 1}, {1, 1, 1}, 0, nullptr, params).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runtime.Launch(0, count, {1, 1, 1}, {2048, 1, 1}, 0, nullptr, params).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runtime.Launch(1, count, {1, 1, 1}, {1, 1, 1}, 0, nullptr, params).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runtime.Launch(0, nullptr, {1, 1, 1}, {1, 1, 1}, 0, nullptr, params).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(counts[0], 0u);  // nothing ran
  EXPECT_EQ(runtime.GetFunction(*module, "no_such_kernel").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(runtime.LoadModule(0, "not an ELF file").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(runtime.LoadModule(0, std::string("\x7f" "ELF", 4) + std::string(100, 'x')).ok());
  EXPECT_TRUE(runtime.UnloadModule(0, *module).ok());
}

// Modules loaded one after another from recycled descriptors stay distinct objects.
TEST(HostRuntimeTest, EachLoadIsItsOwnModule) {
  HostRuntime runtime(1);
  for (int round = 0; round < 4; ++round) {
    for (int value : {1, 2}) {
      absl::StatusOr<ModuleHandle> module = runtime.LoadModule(0, TestModule(value));
      ASSERT_TRUE(module.ok()) << module.status();
      FunctionHandle write = runtime.GetFunction(*module, "write_value").value();
      unsigned got[1] = {0};
      CountArgs args{got, 1};
      void* params[] = {&args};
      ASSERT_TRUE(runtime.Launch(0, write, {1, 1, 1}, {1, 1, 1}, 0, nullptr, params).ok());
      EXPECT_EQ(got[0], static_cast<unsigned>(value)) << "round " << round;
      ASSERT_TRUE(runtime.UnloadModule(0, *module).ok());
    }
  }
  // Two at once, too.
  ModuleHandle one = runtime.LoadModule(0, TestModule(1)).value();
  ModuleHandle two = runtime.LoadModule(0, TestModule(2)).value();
  EXPECT_NE(runtime.GetFunction(one, "write_value").value(),
            runtime.GetFunction(two, "write_value").value());
  EXPECT_TRUE(runtime.UnloadModule(0, one).ok());
  EXPECT_TRUE(runtime.UnloadModule(0, two).ok());
}

TEST(HostRuntimeTest, MemoryCopiesStreamsAndEvents) {
  HostRuntime runtime(1);
  for (size_t bytes : {size_t{1}, size_t{3}, size_t{64}, size_t{1000}}) {
    absl::StatusOr<DevicePointer> pointer = runtime.Allocate(0, bytes);
    ASSERT_TRUE(pointer.ok()) << pointer.status();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(*pointer) % 64, 0u);
    std::vector<uint8_t> in(bytes), out(bytes, 0);
    for (size_t i = 0; i < bytes; ++i) in[i] = static_cast<uint8_t>(i * 7 + 1);
    ASSERT_TRUE(runtime.CopyToDevice(0, *pointer, in.data(), bytes).ok());
    ASSERT_TRUE(runtime.CopyToHost(0, out.data(), *pointer, bytes).ok());
    EXPECT_EQ(in, out);
    ASSERT_TRUE(runtime.MemsetAsync(0, *pointer, 0xab, bytes, nullptr).ok());
    ASSERT_TRUE(runtime.CopyToHost(0, out.data(), *pointer, bytes).ok());
    EXPECT_EQ(out, std::vector<uint8_t>(bytes, 0xab));
    EXPECT_TRUE(runtime.Free(0, *pointer).ok());
  }
  EXPECT_EQ(runtime.Allocate(0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(runtime.Free(0, nullptr).ok());

  absl::StatusOr<StreamHandle> stream = runtime.CreateStream(0);
  ASSERT_TRUE(stream.ok());
  EXPECT_NE(*stream, nullptr);
  EventHandle start = runtime.CreateEvent(0).value();
  EventHandle end = runtime.CreateEvent(0).value();
  ASSERT_TRUE(runtime.RecordEvent(0, start, *stream).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(runtime.RecordEvent(0, end, *stream).ok());
  EXPECT_TRUE(runtime.SynchronizeStream(0, *stream).ok());
  absl::StatusOr<float> ms = runtime.ElapsedMs(0, start, end);
  ASSERT_TRUE(ms.ok());
  EXPECT_GE(*ms, 19.0f);
  EXPECT_LT(*ms, 10000.0f);
  EXPECT_TRUE(runtime.DestroyEvent(0, start).ok());
  EXPECT_TRUE(runtime.DestroyEvent(0, end).ok());
  EXPECT_TRUE(runtime.DestroyStream(0, *stream).ok());
}

// ---------------------------------------------------------------------------------------
// The kernel service with host entries

RopeConfig SmallConfig() {
  RopeConfig config;
  config.head_dim = 64;
  config.dtype = DType::kF32;
  config.max_position = 4096;
  return config;
}

ServiceOptions DiskOnly(const std::string& dir, HostCompiler* compiler = nullptr) {
  ServiceOptions options;
  options.disk.dir = dir;
  if (compiler != nullptr) {
    options.compiler_for_target = [compiler](absl::string_view) -> absl::StatusOr<Compiler*> {
      return compiler;
    };
  }
  return options;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (const fs::directory_entry& item : fs::recursive_directory_iterator(dir)) {
    if (item.is_regular_file() && DiskCache::IsEntryFileName(item.path().filename().string())) {
      names.push_back(item.path().string());
    }
  }
  return names;
}

// Applies `rope` to fresh random f32 input on the host and checks it against float64.
void ExpectRopeMatchesReference(const Rope& rope) {
  DeviceRuntime& runtime = RuntimeForVendor(Vendor::kHost);
  const RopeConfig& config = rope.config();
  const int tokens = 5, heads = 3, D = config.head_dim;
  std::vector<float> x(tokens * heads * D);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> uniform(-1, 1);
  for (float& v : x) v = uniform(rng);
  std::vector<int64_t> positions = {0, 17, 4095, 1000, 3};
  DevicePointer data = runtime.Allocate(0, x.size() * 4).value();
  DevicePointer pos = runtime.Allocate(0, positions.size() * 8).value();
  ASSERT_TRUE(runtime.CopyToDevice(0, data, x.data(), x.size() * 4).ok());
  ASSERT_TRUE(runtime.CopyToDevice(0, pos, positions.data(), positions.size() * 8).ok());
  DeviceTensor tensor = DeviceTensor::Contiguous(data, tokens, heads, D, DType::kF32);
  ASSERT_TRUE(rope.ApplyQDevice(tensor, Positions::Int64(static_cast<int64_t*>(pos)), nullptr).ok());
  std::vector<float> out(x.size());
  ASSERT_TRUE(runtime.CopyToHost(0, out.data(), data, out.size() * 4).ok());
  std::vector<double> x64(x.begin(), x.end());
  std::vector<double> want = ReferenceApply(config, rope.frequencies(), x64, tokens, heads, positions);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 2e-6) << i;
  EXPECT_TRUE(runtime.Free(0, data).ok());
  EXPECT_TRUE(runtime.Free(0, pos).ok());
}

TEST(HostServiceTest, ColdCompileMemoryHitDiskHitAndCorruptEntryRecompiled) {
  const std::string dir = FreshDir("tiers");
  DeviceRuntime& host = RuntimeForVendor(Vendor::kHost);
  {
    KernelService cold(DiskOnly(dir));
    absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(SmallConfig(), host, 0, cold);
    ASSERT_TRUE(rope.ok()) << rope.status();
    EXPECT_EQ(cold.stats().compiles, kModulesPerRope);
    EXPECT_EQ(cold.stats().disk_hits, 0u);
    ExpectRopeMatchesReference(**rope);
    const uint64_t hits = cold.stats().memory_hits;
    ASSERT_TRUE(Rope::Create(SmallConfig(), host, 0, cold).ok());
    EXPECT_EQ(cold.stats().compiles, kModulesPerRope);
    EXPECT_GT(cold.stats().memory_hits, hits);
  }
  ASSERT_EQ(Entries(dir).size(), kModulesPerRope);
  {
    KernelService fresh(DiskOnly(dir));
    absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(SmallConfig(), host, 0, fresh);
    ASSERT_TRUE(rope.ok()) << rope.status();
    EXPECT_EQ(fresh.stats().compiles, 0u);
    EXPECT_EQ(fresh.stats().disk_hits, kModulesPerRope);
    ExpectRopeMatchesReference(**rope);
  }
  // Flip one byte in the middle of every entry (inside the shared object).
  for (const std::string& entry : Entries(dir)) {
    std::string bytes = ReadFile(entry);
    bytes[bytes.size() / 2] ^= 0x5a;
    std::ofstream(entry, std::ios::binary | std::ios::trunc) << bytes;
  }
  {
    KernelService after(DiskOnly(dir));
    absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(SmallConfig(), host, 0, after);
    ASSERT_TRUE(rope.ok()) << rope.status();
    EXPECT_EQ(after.stats().disk.corrupt_entries, kModulesPerRope);
    EXPECT_EQ(after.stats().compiles, kModulesPerRope);
    EXPECT_EQ(after.stats().load_failures, 0u);
    ExpectRopeMatchesReference(**rope);
  }
  KernelService again(DiskOnly(dir));
  ASSERT_TRUE(Rope::Create(SmallConfig(), host, 0, again).ok());
  EXPECT_EQ(again.stats().disk_hits, kModulesPerRope);
}

// A missing, failing or hanging compiler: a clear status from Rope::Create, nothing in
// the cache, and a working compiler afterwards fills it.
TEST(HostServiceTest, BrokenCompilersCacheNothing) {
  const std::string dir = FreshDir("broken");
  const std::string scripts = FreshDir("broken_scripts");
  DeviceRuntime& host = RuntimeForVendor(Vendor::kHost);
  struct Broken {
    HostCompilerOptions options;
    absl::StatusCode code;
  };
  const std::string failing = WriteCompilerScript(scripts, "echo nope >&2; exit 1");
  std::vector<Broken> broken = {
      {WithCompiler("/nonexistent"), absl::StatusCode::kUnavailable},
      {WithCompiler(failing), absl::StatusCode::kInternal},
  };
  const std::string hang_dir = FreshDir("broken_hang");
  broken.push_back({WithCompiler(WriteCompilerScript(hang_dir, "exec sleep 300"),
                                 std::chrono::milliseconds(1000)),
                    absl::StatusCode::kDeadlineExceeded});
  for (Broken& b : broken) {
    HostCompiler compiler(b.options);
    KernelService service(DiskOnly(dir, &compiler));
    absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(SmallConfig(), host, 0, service);
    EXPECT_EQ(rope.status().code(), b.code) << b.options.cxx << ": " << rope.status();
    EXPECT_TRUE(Entries(dir).empty()) << b.options.cxx;
    EXPECT_EQ(service.stats().loads, 0u);
  }
  HostCompiler working;
  KernelService service(DiskOnly(dir, &working));
  ASSERT_TRUE(Rope::Create(SmallConfig(), host, 0, service).ok());
  EXPECT_EQ(Entries(dir).size(), kModulesPerRope);
}

}  // namespace
}  // namespace rope_jit
