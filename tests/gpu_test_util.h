// Shared by the device suites: the runtime a test runs on, or skip only when no GPU exists.
//
//   class RopeGpuTest : public ::testing::TestWithParam<TestBackend> {};
//   TEST_P(RopeGpuTest, Something) {
//     ROPE_JIT_BACKEND_OR_SKIP(runtime);  // the host runtime, or a GPU runtime
//     ...
//   }
//   ROPE_JIT_INSTANTIATE_BACKENDS(RopeGpuTest);  // .../host and .../gpu
//
// The host backend (jit/host) always runs: every kernel executes in CI. The GPU instance
// skips only when no GPU device node exists; a machine with GPU device nodes whose
// runtime fails is a failure, not a skip: a GPU test must never pass because the GPU
// path broke. ROPE_JIT_GPU_OR_SKIP is the same for a GPU-only test.
#ifndef ROPE_JIT_TESTS_GPU_TEST_UTIL_H_
#define ROPE_JIT_TESTS_GPU_TEST_UTIL_H_

#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/target.h"

namespace rope_jit {

inline bool GpuDeviceNodesPresent() {
  struct stat info;
  for (const char* node : {"/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd"}) {
    if (stat(node, &info) == 0) return true;
  }
  return false;
}

inline std::string NoGpuReason() {
  return "no GPU on this machine (no /dev/nvidia0, /dev/nvidiactl or /dev/kfd)";
}

// Sets *runtime to a runtime with at least one device. Leaves it null (caller skips)
// only when no GPU device node exists; fails the test when one exists but the runtime
// cannot use it.
inline void RequireGpuOrSkip(DeviceRuntime** runtime) {
  *runtime = nullptr;
  absl::StatusOr<DeviceRuntime*> found = AnyDeviceRuntime();
  if (found.ok()) {
    *runtime = *found;
    return;
  }
  ASSERT_FALSE(GpuDeviceNodesPresent())
      << "GPU device nodes exist but no runtime works: " << found.status();
}

#define ROPE_JIT_GPU_OR_SKIP(runtime_var)                    \
  DeviceRuntime* runtime_var = nullptr;                      \
  ASSERT_NO_FATAL_FAILURE(RequireGpuOrSkip(&runtime_var));   \
  if (runtime_var == nullptr) GTEST_SKIP() << NoGpuReason()

enum class TestBackend { kHost, kGpu };

inline std::string TestBackendName(const ::testing::TestParamInfo<TestBackend>& info) {
  return info.param == TestBackend::kHost ? "host" : "gpu";
}

// The host runtime for kHost; for kGpu as RequireGpuOrSkip.
inline void RequireBackendOrSkip(TestBackend backend, DeviceRuntime** runtime) {
  if (backend == TestBackend::kHost) {
    *runtime = &RuntimeForVendor(Vendor::kHost);
    return;
  }
  RequireGpuOrSkip(runtime);
}

inline bool IsHost(const DeviceRuntime& runtime) { return runtime.vendor() == Vendor::kHost; }

#define ROPE_JIT_BACKEND_OR_SKIP(runtime_var)                                \
  DeviceRuntime* runtime_var = nullptr;                                       \
  ASSERT_NO_FATAL_FAILURE(RequireBackendOrSkip(GetParam(), &runtime_var));    \
  if (runtime_var == nullptr) GTEST_SKIP() << NoGpuReason()

#define ROPE_JIT_INSTANTIATE_BACKENDS(suite)                                          \
  INSTANTIATE_TEST_SUITE_P(Backends, suite,                                           \
                           ::testing::Values(TestBackend::kHost, TestBackend::kGpu), \
                           TestBackendName)

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_GPU_TEST_UTIL_H_
