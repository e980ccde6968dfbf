// A GPU driver runtime (HIP or the CUDA driver API), or the host CPU (jit/host), behind one
// interface: just what the kernel service, the apply API, the tests and the tools need.
//
//   ASSIGN_OR_RETURN(DeviceRuntime * runtime, AnyDeviceRuntime());  // jit/backends.h
//   ASSIGN_OR_RETURN(std::string arch, runtime->DeviceTarget(0));   // "sm_90"
//   ASSIGN_OR_RETURN(ModuleHandle module, runtime->LoadModule(0, code_object));
//   ASSIGN_OR_RETURN(FunctionHandle fn, runtime->GetFunction(module, "rope_apply"));
//   RETURN_IF_ERROR(runtime->Launch(0, fn, {blocks, 1, 1}, {256, 1, 1}, 0, stream, args));
//
// Handles are opaque pointers (CUmodule/hipModule_t, CUfunction/hipFunction_t,
// CUstream/hipStream_t, CUevent/hipEvent_t); no vendor header is included here.
// A missing runtime library or driver is Unavailable.
#ifndef ROPE_JIT_JIT_DEVICE_RUNTIME_H_
#define ROPE_JIT_JIT_DEVICE_RUNTIME_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/target.h"

namespace rope_jit {

using ModuleHandle = void*;
using FunctionHandle = void*;
using StreamHandle = void*;  // nullptr: the legacy default stream
using EventHandle = void*;
using DevicePointer = void*;

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// How a kernel is launched beyond its grid.
struct LaunchOptions {
  // Programmatic dependent launch (NVIDIA sm_90+): the kernel may start while the previous
  // kernel on the stream is still finishing, and waits for it inside (griddepcontrol.wait)
  // before touching memory. Hides most of the launch gap between dependent kernels, which is
  // most of a decode step's RoPE cost. A runtime or device without it launches normally: the
  // kernels' wait is then a no-op, so the result is the same either way.
  bool programmatic_dependent_launch = false;
};

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;

  virtual Vendor vendor() const = 0;

  // Unavailable when the library or driver is missing or no device is usable; a
  // machine with the library but no GPU reports 0 devices.
  virtual absl::StatusOr<int> DeviceCount() = 0;

  // Full target id of a device: "sm_90", "gfx90a:sramecc+:xnack-".
  virtual absl::StatusOr<std::string> DeviceTarget(int device) = 0;
  virtual absl::StatusOr<std::string> DeviceName(int device) = 0;

  // Makes `device` current for the calling thread (primary context on CUDA).
  virtual absl::Status SetDevice(int device) = 0;

  virtual absl::StatusOr<ModuleHandle> LoadModule(int device, absl::string_view code_object) = 0;
  virtual absl::Status UnloadModule(int device, ModuleHandle module) = 0;
  virtual absl::StatusOr<FunctionHandle> GetFunction(ModuleHandle module, const char* name) = 0;

  // Asynchronous launch on `stream` of `device`. `args` as for cuLaunchKernel.
  // No synchronization.
  virtual absl::Status Launch(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                              uint32_t shared_bytes, StreamHandle stream, void** args) = 0;
  // Launch with options; a runtime without a given option launches as Launch does.
  virtual absl::Status LaunchWithOptions(int device, FunctionHandle function, Dim3 grid,
                                         Dim3 block, uint32_t shared_bytes, StreamHandle stream,
                                         void** args, const LaunchOptions& options) {
    (void)options;
    return Launch(device, function, grid, block, shared_bytes, stream, args);
  }

  // Memory and streams for tests, tools and one-time table uploads (never per apply).
  virtual absl::StatusOr<DevicePointer> Allocate(int device, size_t bytes) = 0;
  virtual absl::Status Free(int device, DevicePointer pointer) = 0;
  virtual absl::Status CopyToDevice(int device, DevicePointer dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(int device, void* dst, DevicePointer src, size_t bytes) = 0;
  virtual absl::Status CopyDeviceToDeviceAsync(int device, DevicePointer dst, DevicePointer src,
                                               size_t bytes, StreamHandle stream) = 0;
  virtual absl::Status MemsetAsync(int device, DevicePointer dst, uint8_t value, size_t bytes,
                                   StreamHandle stream) = 0;
  virtual absl::StatusOr<StreamHandle> CreateStream(int device) = 0;
  virtual absl::Status DestroyStream(int device, StreamHandle stream) = 0;
  virtual absl::Status SynchronizeStream(int device, StreamHandle stream) = 0;
  virtual absl::StatusOr<EventHandle> CreateEvent(int device) = 0;
  virtual absl::Status DestroyEvent(int device, EventHandle event) = 0;
  virtual absl::Status RecordEvent(int device, EventHandle event, StreamHandle stream) = 0;
  // Milliseconds between two recorded events; waits for `end`.
  virtual absl::StatusOr<float> ElapsedMs(int device, EventHandle start, EventHandle end) = 0;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_DEVICE_RUNTIME_H_
