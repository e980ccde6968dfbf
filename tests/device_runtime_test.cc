// Device runtimes. Without a GPU: clean "no device" answers and errors, never a crash.
// With one (the same binary on a GPU host): a compiled stand-in kernel checked against a
// float64 CPU computation. GPU tests skip only when no device is present.
#include "jit/device_runtime.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/compiler.h"
#include "tests/gpu_test_util.h"

namespace rope_jit {
namespace {

constexpr char kStandIn[] = R"(
#ifndef STAND_IN_SCALE
#define STAND_IN_SCALE 2.0f
#endif
extern "C" __global__ void stand_in(float* out, const float* x, const float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = x[i] * STAND_IN_SCALE + y[i] * y[i];
}
)";

// ---------------------------------------------------------------------------------------
// Any machine

void ExpectNoDeviceIsClean(Vendor vendor) {
  DeviceRuntime& runtime = RuntimeForVendor(vendor);
  EXPECT_EQ(runtime.vendor(), vendor);
  absl::StatusOr<int> count = runtime.DeviceCount();
  ASSERT_TRUE(count.ok() || count.status().code() == absl::StatusCode::kUnavailable)
      << count.status();
  std::cout << VendorName(vendor) << " device count: "
            << (count.ok() ? std::to_string(*count) : count.status().ToString()) << "\n";
  if (count.ok() && *count > 0) return;  // a GPU host: the fixture tests below cover it
  // No device: every device call is an error, never a crash.
  EXPECT_FALSE(runtime.DeviceTarget(0).ok());
  EXPECT_FALSE(runtime.DeviceName(0).ok());
  EXPECT_FALSE(runtime.SetDevice(0).ok());
  EXPECT_FALSE(runtime.Allocate(0, 256).ok());
  EXPECT_FALSE(runtime.CreateStream(0).ok());
  EXPECT_FALSE(runtime.LoadModule(0, "not a code object").ok());
  EXPECT_FALSE(runtime.Launch(0, nullptr, {}, {}, 0, nullptr, nullptr).ok());
}

TEST(CudaRuntimeTest, NoDeviceIsZeroOrUnavailable) { ExpectNoDeviceIsClean(Vendor::kNvidia); }

TEST(HipRuntimeTest, NoDeviceIsZeroOrUnavailable) { ExpectNoDeviceIsClean(Vendor::kAmd); }

TEST(CudaRuntimeTest, MissingDriverNamesWhatWasTried) {
  absl::StatusOr<int> count = RuntimeForVendor(Vendor::kNvidia).DeviceCount();
  if (count.ok()) {
    GTEST_SKIP() << "libcuda.so.1 is installed here";
  }
  EXPECT_TRUE(absl::StrContains(count.status().message(), "libcuda.so.1") ||
              absl::StrContains(count.status().message(), "cuInit"))
      << count.status();
}

TEST(BackendsTest, AnyDeviceRuntimeNamesWhatEachVendorSaid) {
  absl::StatusOr<DeviceRuntime*> runtime = AnyDeviceRuntime();
  if (runtime.ok()) {
    auto count = (*runtime)->DeviceCount();
    ASSERT_TRUE(count.ok());
    EXPECT_GT(*count, 0);
    return;
  }
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(runtime.status().message(), "nvidia")) << runtime.status();
  EXPECT_TRUE(absl::StrContains(runtime.status().message(), "amd")) << runtime.status();
}

// ---------------------------------------------------------------------------------------
// GPU

class DeviceRuntimeGpuTest : public ::testing::Test {
 protected:
  static constexpr int kDevice = 0;

  void SetUp() override {
    // Skips only where no GPU device node exists; a GPU whose runtime fails is a failure.
    ASSERT_NO_FATAL_FAILURE(RequireGpuOrSkip(&runtime_));
    if (runtime_ == nullptr) GTEST_SKIP() << NoGpuReason();
    // From here on a device is present: everything must work.
    auto target = runtime_->DeviceTarget(kDevice);
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *target;
    auto compiler = CompilerForTarget(target_);
    ASSERT_TRUE(compiler.ok()) << compiler.status();
    auto code = (*compiler)->Compile(CompileRequest{kStandIn, "stand_in.cu", {}, target_});
    ASSERT_TRUE(code.ok()) << code.status();
    code_ = *code;
    auto module = runtime_->LoadModule(kDevice, code_);
    ASSERT_TRUE(module.ok()) << module.status();
    module_ = *module;
    auto function = runtime_->GetFunction(module_, "stand_in");
    ASSERT_TRUE(function.ok()) << function.status();
    function_ = *function;
  }

  void TearDown() override {
    if (runtime_ == nullptr) return;
    for (DevicePointer pointer : allocations_) EXPECT_TRUE(runtime_->Free(kDevice, pointer).ok());
    if (module_ != nullptr) {
      EXPECT_TRUE(runtime_->UnloadModule(kDevice, module_).ok());
    }
  }

  DevicePointer Allocate(size_t bytes) {
    auto pointer = runtime_->Allocate(kDevice, bytes);
    EXPECT_TRUE(pointer.ok()) << pointer.status();
    if (!pointer.ok()) return nullptr;
    allocations_.push_back(*pointer);
    return *pointer;
  }

  // Launches stand_in over n elements on `stream`.
  absl::Status LaunchStandIn(DevicePointer out, DevicePointer x, DevicePointer y, int n,
                             StreamHandle stream) {
    void* args[] = {&out, &x, &y, &n};
    const uint32_t block = 256;
    const uint32_t grid = (static_cast<uint32_t>(n) + block - 1) / block;
    return runtime_->Launch(kDevice, function_, {grid, 1, 1}, {block, 1, 1}, 0, stream, args);
  }

  DeviceRuntime* runtime_ = nullptr;
  std::string target_;
  std::string code_;
  ModuleHandle module_ = nullptr;
  FunctionHandle function_ = nullptr;
  std::vector<DevicePointer> allocations_;
};

TEST_F(DeviceRuntimeGpuTest, DescribesTheDevice) {
  auto name = runtime_->DeviceName(kDevice);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_FALSE(name->empty());
  auto vendor = VendorOfTarget(target_);
  ASSERT_TRUE(vendor.ok()) << target_;
  EXPECT_EQ(*vendor, runtime_->vendor());
  std::cout << "device 0: " << *name << " (" << target_ << ")\n";
  auto count = runtime_->DeviceCount();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(runtime_->DeviceTarget(*count).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runtime_->DeviceTarget(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DeviceRuntimeGpuTest, KernelMatchesAFloat64Reference) {
  const int n = (1 << 20) + 123;  // not a multiple of the block
  const size_t bytes = n * sizeof(float);
  std::mt19937 random(20261128);
  std::uniform_real_distribution<float> uniform(-4.0f, 4.0f);
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = uniform(random);
    y[i] = uniform(random);
  }
  DevicePointer dx = Allocate(bytes), dy = Allocate(bytes), dout = Allocate(bytes);
  ASSERT_TRUE(dx && dy && dout);
  ASSERT_TRUE(runtime_->CopyToDevice(kDevice, dx, x.data(), bytes).ok());
  ASSERT_TRUE(runtime_->CopyToDevice(kDevice, dy, y.data(), bytes).ok());

  auto stream = runtime_->CreateStream(kDevice);
  ASSERT_TRUE(stream.ok()) << stream.status();
  // Poison: 0xFF bytes are NaNs, so an element the kernel misses cannot pass.
  ASSERT_TRUE(runtime_->MemsetAsync(kDevice, dout, 0xFF, bytes, *stream).ok());
  ASSERT_TRUE(LaunchStandIn(dout, dx, dy, n, *stream).ok());
  ASSERT_TRUE(runtime_->SynchronizeStream(kDevice, *stream).ok());
  std::vector<float> out(n, 0.0f);
  ASSERT_TRUE(runtime_->CopyToHost(kDevice, out.data(), dout, bytes).ok());
  EXPECT_TRUE(runtime_->DestroyStream(kDevice, *stream).ok());

  double worst = 0;
  int mismatches = 0;
  for (int i = 0; i < n; ++i) {
    const double product = static_cast<double>(x[i]) * 2.0;
    const double square = static_cast<double>(y[i]) * y[i];
    const double reference = product + square;
    // Two float roundings (or one, with FMA contraction) of terms of this size.
    const double tolerance =
        2.0 * std::numeric_limits<float>::epsilon() * (std::fabs(product) + square) + 1e-30;
    const double error = std::fabs(out[i] - reference);
    if (!(error <= tolerance)) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "element " << i << ": got " << out[i] << ", want " << reference;
      }
    }
    if (std::isfinite(error)) worst = std::max(worst, error);
  }
  EXPECT_EQ(mismatches, 0);
  std::cout << "max abs error vs float64: " << worst << "\n";
}

TEST_F(DeviceRuntimeGpuTest, CopiesAndMemsetsOnAStream) {
  const size_t bytes = 4096;
  DevicePointer a = Allocate(bytes), b = Allocate(bytes);
  ASSERT_TRUE(a && b);
  auto stream = runtime_->CreateStream(kDevice);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_TRUE(runtime_->MemsetAsync(kDevice, b, 0x00, bytes, *stream).ok());
  ASSERT_TRUE(runtime_->MemsetAsync(kDevice, a, 0x5A, bytes, *stream).ok());
  ASSERT_TRUE(runtime_->CopyDeviceToDeviceAsync(kDevice, b, a, bytes / 2, *stream).ok());
  ASSERT_TRUE(runtime_->SynchronizeStream(kDevice, *stream).ok());
  std::vector<unsigned char> host(bytes, 0xEE);
  ASSERT_TRUE(runtime_->CopyToHost(kDevice, host.data(), b, bytes).ok());
  for (size_t i = 0; i < bytes; ++i) {
    ASSERT_EQ(host[i], i < bytes / 2 ? 0x5A : 0x00) << "byte " << i;
  }
  EXPECT_TRUE(runtime_->DestroyStream(kDevice, *stream).ok());
}

TEST_F(DeviceRuntimeGpuTest, EventsMeasureAPositiveTime) {
  const int n = 1 << 22;
  DevicePointer dx = Allocate(n * sizeof(float)), dy = Allocate(n * sizeof(float)),
                dout = Allocate(n * sizeof(float));
  ASSERT_TRUE(dx && dy && dout);
  auto stream = runtime_->CreateStream(kDevice);
  auto start = runtime_->CreateEvent(kDevice);
  auto end = runtime_->CreateEvent(kDevice);
  ASSERT_TRUE(stream.ok() && start.ok() && end.ok());
  ASSERT_TRUE(runtime_->MemsetAsync(kDevice, dx, 0, n * sizeof(float), *stream).ok());
  ASSERT_TRUE(runtime_->MemsetAsync(kDevice, dy, 0, n * sizeof(float), *stream).ok());
  ASSERT_TRUE(LaunchStandIn(dout, dx, dy, n, *stream).ok());  // warm-up
  ASSERT_TRUE(runtime_->RecordEvent(kDevice, *start, *stream).ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(LaunchStandIn(dout, dx, dy, n, *stream).ok());
  ASSERT_TRUE(runtime_->RecordEvent(kDevice, *end, *stream).ok());
  auto elapsed = runtime_->ElapsedMs(kDevice, *start, *end);
  ASSERT_TRUE(elapsed.ok()) << elapsed.status();
  EXPECT_GT(*elapsed, 0.0f);
  std::cout << "20 launches over " << n << " floats: " << *elapsed << " ms\n";
  EXPECT_TRUE(runtime_->DestroyEvent(kDevice, *start).ok());
  EXPECT_TRUE(runtime_->DestroyEvent(kDevice, *end).ok());
  EXPECT_TRUE(runtime_->DestroyStream(kDevice, *stream).ok());
}

TEST_F(DeviceRuntimeGpuTest, LaunchIsCheapOnTheHost) {
  DevicePointer d = Allocate(256 * sizeof(float));
  ASSERT_TRUE(d);
  auto stream = runtime_->CreateStream(kDevice);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE(LaunchStandIn(d, d, d, 256, *stream).ok());
  ASSERT_TRUE(runtime_->SynchronizeStream(kDevice, *stream).ok());
  constexpr int kLaunches = 2000;
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < kLaunches; ++i) ASSERT_TRUE(LaunchStandIn(d, d, d, 256, *stream).ok());
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                              begin).count() / kLaunches;
  ASSERT_TRUE(runtime_->SynchronizeStream(kDevice, *stream).ok());
  std::cout << "host cost per Launch (incl. driver): " << us << " us\n";
  EXPECT_TRUE(runtime_->DestroyStream(kDevice, *stream).ok());
}

TEST_F(DeviceRuntimeGpuTest, WorksFromAThreadWithNothingCurrent) {
  const int n = 1000;
  DevicePointer dx = Allocate(n * sizeof(float)), dout = Allocate(n * sizeof(float));
  ASSERT_TRUE(dx && dout);
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i) * 0.25f;
  ASSERT_TRUE(runtime_->CopyToDevice(kDevice, dx, x.data(), n * sizeof(float)).ok());
  absl::Status thread_status;
  std::thread worker([&] {
    auto function = runtime_->GetFunction(module_, "stand_in");
    if (!function.ok()) {
      thread_status = function.status();
      return;
    }
    thread_status = LaunchStandIn(dout, dx, dx, n, nullptr);
    if (thread_status.ok()) thread_status = runtime_->SynchronizeStream(kDevice, nullptr);
  });
  worker.join();
  ASSERT_TRUE(thread_status.ok()) << thread_status;
  std::vector<float> out(n);
  ASSERT_TRUE(runtime_->CopyToHost(kDevice, out.data(), dout, n * sizeof(float)).ok());
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(out[i], x[i] * 2.0f + x[i] * x[i]) << i;
}

TEST_F(DeviceRuntimeGpuTest, BadCodeObjectsAreErrorsNotCrashes) {
  EXPECT_EQ(runtime_->LoadModule(kDevice, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(runtime_->LoadModule(kDevice, "definitely not a code object").ok());
  const std::string truncated = code_.substr(0, code_.size() / 2);
  EXPECT_FALSE(runtime_->LoadModule(kDevice, truncated).ok());
  auto missing = runtime_->GetFunction(module_, "no_such_kernel");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "no_such_kernel"));
}

}  // namespace
}  // namespace rope_jit
