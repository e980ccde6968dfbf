// The CUDA driver API (libcuda.so.1) behind the DeviceRuntime interface.
//
//   CudaRuntime cuda;  // usually RuntimeForVendor(Vendor::kNvidia), jit/backends.h
//   ASSIGN_OR_RETURN(int count, cuda.DeviceCount());           // 0 on a machine without GPU
//   ASSIGN_OR_RETURN(std::string arch, cuda.DeviceTarget(0));  // "sm_90"
//   ASSIGN_OR_RETURN(ModuleHandle module, cuda.LoadModule(0, cubin));
//   ASSIGN_OR_RETURN(FunctionHandle fn, cuda.GetFunction(module, "rope_apply"));
//   RETURN_IF_ERROR(cuda.Launch(0, fn, grid, block, 0, stream, args));
//
// The driver is loaded and cuInit'ed on first use, once. Each device works in its primary
// context (shared with the CUDA runtime API and PyTorch), retained on first use of that
// device and kept for the life of the process. Every call taking a device leaves that
// device's primary context current on the calling thread; Launch switches only when another
// context is current, so a steady stream of launches costs one cuCtxGetCurrent each and
// takes no lock.
//
// Streams from CreateStream are blocking streams (CU_STREAM_DEFAULT): they synchronize with
// the legacy default stream, so the synchronous CopyToDevice / CopyToHost order with them.
// Errors name the driver call and the error: "cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE".
#ifndef ROPE_JIT_JIT_CUDA_CUDA_RUNTIME_H_
#define ROPE_JIT_JIT_CUDA_CUDA_RUNTIME_H_

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/device_runtime.h"
#include "jit/target.h"

namespace rope_jit {

class CudaRuntime final : public DeviceRuntime {
 public:
  // Devices beyond this ordinal are reported by DeviceCount but refused (Unimplemented).
  static constexpr int kMaxDevices = 64;

  CudaRuntime();
  ~CudaRuntime() override;

  Vendor vendor() const override { return Vendor::kNvidia; }

  // 0 when the driver is present but reports no device (cuInit: CUDA_ERROR_NO_DEVICE);
  // Unavailable when libcuda.so.1 is missing or cuInit fails otherwise.
  absl::StatusOr<int> DeviceCount() override;
  // "sm_<major><minor>" from the compute capability, e.g. "sm_90" (never the "a" variant).
  absl::StatusOr<std::string> DeviceTarget(int device) override;
  absl::StatusOr<std::string> DeviceName(int device) override;
  absl::Status SetDevice(int device) override;

  absl::StatusOr<ModuleHandle> LoadModule(int device, absl::string_view code_object) override;
  absl::Status UnloadModule(int device, ModuleHandle module) override;
  absl::StatusOr<FunctionHandle> GetFunction(ModuleHandle module, const char* name) override;
  absl::Status Launch(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                      uint32_t shared_bytes, StreamHandle stream, void** args) override;
  // Programmatic dependent launch goes through cuLaunchKernelEx on devices of compute
  // capability 9.0 and up; elsewhere (or with a driver that lacks cuLaunchKernelEx) the
  // launch is a plain one.
  absl::Status LaunchWithOptions(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                                 uint32_t shared_bytes, StreamHandle stream, void** args,
                                 const LaunchOptions& options) override;

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
  struct Loaded;  // libcuda, its entry points and the devices it reported

  absl::StatusOr<const Loaded*> Init();
  absl::StatusOr<int> CheckDevice(int device);
  // The slow path of MakeCurrent: retains the device's primary context once.
  absl::StatusOr<void*> RetainContext(int device);
  // Makes the device's primary context current on this thread if it is not already.
  absl::Status MakeCurrent(int device);

  std::once_flag init_once_;
  absl::Status init_status_;
  bool no_device_ = false;  // cuInit said CUDA_ERROR_NO_DEVICE
  std::unique_ptr<Loaded> loaded_;
  std::mutex retain_mutex_;
  // Primary contexts (CUcontext), published once with release order; read lock-free.
  std::array<std::atomic<void*>, kMaxDevices> contexts_{};
  // Per device: whether it takes programmatic dependent launches (kPdlUnknown until the
  // first such launch asks). Read lock-free on the launch path.
  std::array<std::atomic<int>, kMaxDevices> programmatic_launch_{};
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_CUDA_CUDA_RUNTIME_H_
