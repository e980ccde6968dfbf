// Shared by the GPU suites: find the device runtime, or skip only when no GPU exists.
//
//   TEST(RopeGpuTest, Something) {
//     DeviceRuntime* runtime = nullptr;
//     ASSERT_NO_FATAL_FAILURE(RequireGpuOrSkip(&runtime));
//     if (runtime == nullptr) GTEST_SKIP() << NoGpuReason();
//
// A machine with GPU device nodes whose runtime fails is a failure, not a skip: a GPU
// test must never pass because the GPU path broke.
#ifndef ROPE_JIT_TESTS_GPU_TEST_UTIL_H_
#define ROPE_JIT_TESTS_GPU_TEST_UTIL_H_

#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"
#include "jit/backends.h"

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

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_GPU_TEST_UTIL_H_
