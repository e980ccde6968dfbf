// A DeviceRuntime with no GPU behind it, for CPU tests of the service and the apply API:
// it reports one device of a chosen target, "loads" any ELF code object, and records
// launches instead of running them.
#ifndef ROPE_JIT_TESTS_FAKE_RUNTIME_H_
#define ROPE_JIT_TESTS_FAKE_RUNTIME_H_

#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "jit/device_runtime.h"
#include "kernels/rope_args.h"

namespace rope_jit {

class FakeRuntime final : public DeviceRuntime {
 public:
  struct LaunchRecord {
    FunctionHandle function;
    Dim3 grid, block;
    RopeLaunchArgs args;  // every launch in these tests takes one RopeLaunchArgs
    LaunchOptions options;
  };

  explicit FakeRuntime(std::string target = "sm_90") : target_(std::move(target)) {}

  Vendor vendor() const override {
    return absl::StartsWith(target_, "gfx") ? Vendor::kAmd : Vendor::kNvidia;
  }
  absl::StatusOr<int> DeviceCount() override { return 1; }
  absl::StatusOr<std::string> DeviceTarget(int) override { return target_; }
  absl::StatusOr<std::string> DeviceName(int) override { return "fake"; }
  absl::Status SetDevice(int) override { return absl::OkStatus(); }

  absl::StatusOr<ModuleHandle> LoadModule(int, absl::string_view code) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++loads_;
    // Like a driver, refuse anything that is not an ELF code object.
    if (!absl::StartsWith(code, "\x7f" "ELF")) {
      return absl::InvalidArgumentError("fake driver: not an ELF code object");
    }
    modules_.push_back(std::string(code));
    return reinterpret_cast<ModuleHandle>(modules_.size());
  }
  absl::Status UnloadModule(int, ModuleHandle) override { return absl::OkStatus(); }
  absl::StatusOr<FunctionHandle> GetFunction(ModuleHandle module, const char* name) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string& code = modules_.at(reinterpret_cast<size_t>(module) - 1);
    if (code.find(name) == std::string::npos) return absl::NotFoundError(name);
    names_.push_back(name);
    return reinterpret_cast<FunctionHandle>(names_.size());
  }
  absl::Status Launch(int, FunctionHandle function, Dim3 grid, Dim3 block, uint32_t, StreamHandle,
                      void** args) override {
    return LaunchWithOptions(0, function, grid, block, 0, nullptr, args, LaunchOptions{});
  }
  absl::Status LaunchWithOptions(int, FunctionHandle function, Dim3 grid, Dim3 block, uint32_t,
                                 StreamHandle, void** args, const LaunchOptions& options) override {
    LaunchRecord record{function, grid, block, {}, options};
    std::memcpy(&record.args, args[0], sizeof(RopeLaunchArgs));
    std::lock_guard<std::mutex> lock(mu_);
    launches_.push_back(record);
    return absl::OkStatus();
  }

  absl::StatusOr<DevicePointer> Allocate(int, size_t bytes) override {
    return static_cast<DevicePointer>(new char[bytes]);
  }
  absl::Status Free(int, DevicePointer pointer) override {
    delete[] static_cast<char*>(pointer);
    return absl::OkStatus();
  }
  absl::Status CopyToDevice(int, DevicePointer dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(int, void* dst, DevicePointer src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyDeviceToDeviceAsync(int, DevicePointer dst, DevicePointer src, size_t bytes,
                                       StreamHandle) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status MemsetAsync(int, DevicePointer dst, uint8_t value, size_t bytes, StreamHandle) override {
    std::memset(dst, value, bytes);
    return absl::OkStatus();
  }
  absl::StatusOr<StreamHandle> CreateStream(int) override { return nullptr; }
  absl::Status DestroyStream(int, StreamHandle) override { return absl::OkStatus(); }
  absl::Status SynchronizeStream(int, StreamHandle) override { return absl::OkStatus(); }
  absl::StatusOr<EventHandle> CreateEvent(int) override { return nullptr; }
  absl::Status DestroyEvent(int, EventHandle) override { return absl::OkStatus(); }
  absl::Status RecordEvent(int, EventHandle, StreamHandle) override { return absl::OkStatus(); }
  absl::StatusOr<float> ElapsedMs(int, EventHandle, EventHandle) override { return 0.0f; }

  int loads() {
    std::lock_guard<std::mutex> lock(mu_);
    return loads_;
  }
  std::vector<LaunchRecord> launches() {
    std::lock_guard<std::mutex> lock(mu_);
    return launches_;
  }
  std::string FunctionName(FunctionHandle function) {
    std::lock_guard<std::mutex> lock(mu_);
    return names_.at(reinterpret_cast<size_t>(function) - 1);
  }

 private:
  const std::string target_;
  std::mutex mu_;  // not absl::Mutex, so that the TSan run sees the locking
  int loads_ = 0;
  std::vector<std::string> modules_;
  std::vector<std::string> names_;
  std::vector<LaunchRecord> launches_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_FAKE_RUNTIME_H_
