// The HIP runtime (libamdhip64) behind the DeviceRuntime interface.
//
//   HipRuntime hip;  // usually RuntimeForVendor(Vendor::kAmd), jit/backends.h
//   ASSIGN_OR_RETURN(int count, hip.DeviceCount());           // 0 on a machine without GPU
//   ASSIGN_OR_RETURN(std::string arch, hip.DeviceTarget(0));  // "gfx90a:sramecc+:xnack-"
//   ASSIGN_OR_RETURN(ModuleHandle module, hip.LoadModule(0, hsaco));
//   ASSIGN_OR_RETURN(FunctionHandle fn, hip.GetFunction(module, "rope_apply"));
//   RETURN_IF_ERROR(hip.Launch(0, fn, grid, block, 0, stream, args));
//
// libamdhip64.so.6 (then .so.5) is loaded and hipInit'ed on first use, once. HIP keeps a
// current device per thread; every call taking a device leaves it current, and Launch calls
// hipSetDevice only when hipGetDevice says another one is current.
//
// Honesty note: no AMD GPU has been available to test this file. It is the plain HIP
// module API, call for call the twin of CudaRuntime (which is tested on an H200); on hosts
// without an AMD GPU it is tested to report 0 devices and return errors. DeviceTarget reads
// gcnArchName out of hipDeviceProp_t at an offset taken from the headers (see the .cc) and
// refuses anything that does not parse as a gfx target id.
#ifndef ROPE_JIT_JIT_ROCM_HIP_RUNTIME_H_
#define ROPE_JIT_JIT_ROCM_HIP_RUNTIME_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/device_runtime.h"
#include "jit/target.h"

namespace rope_jit {

class HipRuntime final : public DeviceRuntime {
 public:
  HipRuntime();
  ~HipRuntime() override;

  Vendor vendor() const override { return Vendor::kAmd; }

  // 0 when the runtime loads but finds no device (hipErrorNoDevice / hipErrorInvalidDevice
  // from hipInit, as ROCm 5.2 says without /dev/kfd); Unavailable when libamdhip64 is
  // missing or hipInit fails otherwise.
  absl::StatusOr<int> DeviceCount() override;
  // gcnArchName: the full target id, e.g. "gfx90a:sramecc+:xnack-".
  absl::StatusOr<std::string> DeviceTarget(int device) override;
  absl::StatusOr<std::string> DeviceName(int device) override;
  absl::Status SetDevice(int device) override;

  absl::StatusOr<ModuleHandle> LoadModule(int device, absl::string_view code_object) override;
  absl::Status UnloadModule(int device, ModuleHandle module) override;
  absl::StatusOr<FunctionHandle> GetFunction(ModuleHandle module, const char* name) override;
  absl::Status Launch(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                      uint32_t shared_bytes, StreamHandle stream, void** args) override;

  absl::StatusOr<DevicePointer> Allocate(int device, size_t bytes) override;
  absl::Status Free(int device, DevicePointer pointer) override;
  absl::Status CopyToDevice(int device, DevicePointer dst, const void* src, size_t bytes) override;
  absl::Status CopyToHost(int device, void* dst, DevicePointer src, size_t bytes) override;
  absl::Status CopyDeviceToDeviceAsync(int device, DevicePointer dst, DevicePointer src,
                                       size_t bytes, StreamHandle stream) override;
  absl::Status MemsetAsync(int device, DevicePointer dst, uint8_t value, size_t bytes,
                           StreamHandle stream) override;
  absl::StatusOr<StreamHandle> CreateStream(int device) override;
  absl::Status DestroyStream(int device, StreamHandle stream) override;
  absl::Status SynchronizeStream(int device, StreamHandle stream) override;
  absl::StatusOr<EventHandle> CreateEvent(int device) override;
  absl::Status DestroyEvent(int device, EventHandle event) override;
  absl::Status RecordEvent(int device, EventHandle event, StreamHandle stream) override;
  absl::StatusOr<float> ElapsedMs(int device, EventHandle start, EventHandle end) override;

 private:
  struct Loaded;  // libamdhip64, its entry points and the device count

  absl::StatusOr<const Loaded*> Init();
  absl::Status CheckDevice(int device);
  // hipSetDevice(device) unless it is already current on this thread.
  absl::Status MakeCurrent(int device);

  std::once_flag init_once_;
  absl::Status init_status_;
  bool no_device_ = false;
  std::unique_ptr<Loaded> loaded_;
  int device_count_ = 0;  // set once by Init
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_ROCM_HIP_RUNTIME_H_
