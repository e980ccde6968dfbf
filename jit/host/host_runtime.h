// The CPU as a device behind the DeviceRuntime interface: runs the shared objects that
// jit/host/host_compiler.h builds from the unmodified kernels.
//
//   HostRuntime host;  // usually RuntimeForVendor(Vendor::kHost), jit/backends.h
//   ASSIGN_OR_RETURN(ModuleHandle module, host.LoadModule(0, shared_object));
//   ASSIGN_OR_RETURN(FunctionHandle fn, host.GetFunction(module, "rope_apply_aligned"));
//   RETURN_IF_ERROR(host.Launch(0, fn, grid, block, 0, /*stream=*/nullptr, args));  // done
//
// One device, 0, with target id `host`. Memory is host memory (Allocate is 64-byte
// aligned and exactly the size asked for, so ASan sees any access past it); copies are
// memcpy.
//
// Launches are synchronous: Launch returns when the whole grid has run, its blocks
// spread over a pool of at most hardware_concurrency threads (the calling thread is one
// of them; the pool starts on the first launch large enough to need it). Streams are
// accepted and ignored: every call is complete when it returns, so any order a stream
// would impose already holds; SynchronizeStream returns at once. Events are host clock
// stamps taken when recorded.
//
// LoadModule writes the (already validated) bytes into an anonymous memory file and
// dlopens it through /proc/self/fd, so no file on disk can be swapped between validation
// and load. GetFunction(module, name) resolves the entry `<name>_host_grid` that
// ROPE_HOST_ENTRY generates (kernels/prelude.h). Safe to use from several threads.
#ifndef ROPE_JIT_JIT_HOST_HOST_RUNTIME_H_
#define ROPE_JIT_JIT_HOST_HOST_RUNTIME_H_

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/device_runtime.h"
#include "jit/target.h"

namespace rope_jit {

class HostRuntime final : public DeviceRuntime {
 public:
  // `max_workers` 0: std::thread::hardware_concurrency().
  explicit HostRuntime(int max_workers = 0);
  ~HostRuntime() override;

  Vendor vendor() const override { return Vendor::kHost; }

  absl::StatusOr<int> DeviceCount() override { return 1; }
  absl::StatusOr<std::string> DeviceTarget(int device) override;
  // The CPU model from /proc/cpuinfo and the number of worker threads.
  absl::StatusOr<std::string> DeviceName(int device) override;
  absl::Status SetDevice(int device) override;

  absl::StatusOr<ModuleHandle> LoadModule(int device, absl::string_view code_object) override;
  absl::Status UnloadModule(int device, ModuleHandle module) override;
  absl::StatusOr<FunctionHandle> GetFunction(ModuleHandle module, const char* name) override;
  // `shared_bytes` must be 0 (the host has no shared memory); `stream` is ignored.
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

  int max_workers() const { return max_workers_; }

  // Joins the worker threads; later launches run on the calling thread alone. For process
  // exit: LeakSanitizer's exit-time scan crashes on live threads that hold the kernels'
  // thread-local storage (dlopen'd modules' dynamic TLS).
  void StopWorkers();

 private:
  struct Job;  // one launch: its grid, split into chunks of blocks that threads claim

  void StartWorkersLocked();
  void WorkerLoop();

  const int max_workers_;
  std::mutex mu_;  // guards everything below
  // dlopen handle (the ModuleHandle) -> the memory file it was loaded from. The descriptor
  // stays open while the object is loaded: its /proc/self/fd/N name is then unique among
  // loaded objects (the dynamic loader reuses an object whose name matches).
  std::map<void*, int> module_fds_;
  std::condition_variable work_ready_;    // a job was queued, or stopping_
  std::condition_variable job_released_;  // a worker let go of a job
  std::deque<Job*> jobs_;                 // launches with chunks left to claim
  std::vector<std::thread> workers_;      // max_workers_ - 1 once started
  bool stopping_ = false;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_HOST_HOST_RUNTIME_H_
