#include "jit/host/host_runtime.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "kernels/host_grid.h"

namespace rope_jit {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kAlignment = 64;
constexpr uint64_t kMaxThreadsPerBlock = 1024;  // as on the GPUs
// Chunks per worker thread: enough that threads finishing early take more work.
constexpr uint64_t kChunksPerWorker = 4;

absl::Status CheckDevice(int device) {
  if (device == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("host device ", device, " does not exist; the host backend has device 0"));
}

absl::Status WriteAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("write to memfd: ", std::strerror(errno)));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "model name")) {
      const size_t colon = rest.find(':');
      if (colon != absl::string_view::npos) {
        return std::string(absl::StripAsciiWhitespace(rest.substr(colon + 1)));
      }
    }
  }
  return "CPU";
}

}  // namespace

struct HostRuntime::Job {
  RopeHostGridEntry entry = nullptr;
  void** args = nullptr;
  RopeHostGrid grid{};  // first_block/last_block set per chunk
  uint64_t total_blocks = 0;
  uint64_t chunk_blocks = 1;
  uint64_t chunks = 0;
  std::atomic<uint64_t> next_chunk{0};
  int holders = 0;  // worker threads inside Run; guarded by HostRuntime::mu_

  // Claims and runs chunks until none is left.
  void Run() {
    for (;;) {
      const uint64_t chunk = next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (chunk >= chunks) return;
      RopeHostGrid part = grid;
      part.first_block = chunk * chunk_blocks;
      part.last_block = std::min<uint64_t>(total_blocks, part.first_block + chunk_blocks);
      entry(&part, args);
    }
  }
  bool Exhausted() const { return next_chunk.load(std::memory_order_relaxed) >= chunks; }
};

HostRuntime::HostRuntime(int max_workers)
    : max_workers_(max_workers > 0
                       ? max_workers
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {}

HostRuntime::~HostRuntime() { StopWorkers(); }

void HostRuntime::StopWorkers() {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    workers.swap(workers_);
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers) worker.join();
}

absl::StatusOr<std::string> HostRuntime::DeviceTarget(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  return std::string(kHostTarget);
}

absl::StatusOr<std::string> HostRuntime::DeviceName(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  return absl::StrCat(CpuModel(), " (host, ", max_workers_, " threads)");
}

absl::Status HostRuntime::SetDevice(int device) { return CheckDevice(device); }

absl::StatusOr<ModuleHandle> HostRuntime::LoadModule(int device, absl::string_view code_object) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (!absl::StartsWith(code_object, "\x7f" "ELF")) {
    return absl::InvalidArgumentError("the code object is not an ELF shared object");
  }
  const int fd = memfd_create("rope_jit_host_module", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  absl::Status written = WriteAll(fd, code_object);
  if (!written.ok()) {
    close(fd);
    return written;
  }
  const std::string path = absl::StrCat("/proc/self/fd/", fd);
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    close(fd);
    return absl::InternalError(absl::StrCat("dlopen of the host code object failed: ",
                                            error != nullptr ? error : "unknown error"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  module_fds_[handle] = fd;
  return static_cast<ModuleHandle>(handle);
}

absl::Status HostRuntime::UnloadModule(int device, ModuleHandle module) {
  RETURN_IF_ERROR(CheckDevice(device));
  int fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto loaded = module_fds_.find(module);
    if (loaded == module_fds_.end()) {
      return absl::InvalidArgumentError("UnloadModule: not a module of this runtime");
    }
    fd = loaded->second;
    module_fds_.erase(loaded);
  }
  const std::string path = absl::StrCat("/proc/self/fd/", fd);
  absl::Status status;
  if (dlclose(module) != 0) {
    const char* error = dlerror();
    status = absl::InternalError(absl::StrCat("dlclose: ", error != nullptr ? error : "?"));
  }
  // An object the loader keeps (unique symbols, another reference) keeps its name: the
  // descriptor is then left open for good, so that no later module can get that name.
  if (void* still = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) {
    dlclose(still);
  } else {
    close(fd);
  }
  return status;
}

absl::StatusOr<FunctionHandle> HostRuntime::GetFunction(ModuleHandle module, const char* name) {
  if (module == nullptr || name == nullptr) {
    return absl::InvalidArgumentError("GetFunction: null module or name");
  }
  const std::string entry = absl::StrCat(name, "_host_grid");
  dlerror();
  void* symbol = dlsym(module, entry.c_str());
  if (symbol == nullptr) {
    const char* error = dlerror();
    return absl::NotFoundError(absl::StrCat("the host code object has no ", entry, ": ",
                                            error != nullptr ? error : "null symbol"));
  }
  return symbol;
}

absl::Status HostRuntime::Launch(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                                 uint32_t shared_bytes, StreamHandle stream, void** args) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (function == nullptr || args == nullptr) {
    return absl::InvalidArgumentError("Launch: null function or arguments");
  }
  const uint64_t threads_per_block = uint64_t{block.x} * block.y * block.z;
  if (threads_per_block == 0 || threads_per_block > kMaxThreadsPerBlock) {
    return absl::InvalidArgumentError(absl::StrCat("Launch: a block of ", block.x, "x", block.y,
                                                   "x", block.z, " threads; at most ",
                                                   kMaxThreadsPerBlock));
  }
  const uint64_t total_blocks = uint64_t{grid.x} * grid.y * grid.z;
  if (total_blocks == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Launch: an empty grid ", grid.x, "x", grid.y, "x", grid.z));
  }
  if (shared_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Launch: ", shared_bytes, " bytes of shared memory; host kernels have none"));
  }
  Job job;
  job.entry = reinterpret_cast<RopeHostGridEntry>(function);
  job.args = args;
  job.grid = RopeHostGrid{{grid.x, grid.y, grid.z}, {block.x, block.y, block.z}, 0, 0};
  job.total_blocks = total_blocks;
  const uint64_t wanted_chunks =
      std::min<uint64_t>(total_blocks, uint64_t(max_workers_) * kChunksPerWorker);
  job.chunk_blocks = (total_blocks + wanted_chunks - 1) / wanted_chunks;
  job.chunks = (total_blocks + job.chunk_blocks - 1) / job.chunk_blocks;
  if (job.chunks == 1 || max_workers_ == 1) {
    job.chunk_blocks = total_blocks;
    job.chunks = 1;
    job.Run();
    return absl::OkStatus();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    StartWorkersLocked();
    jobs_.push_back(&job);
  }
  work_ready_.notify_all();
  job.Run();
  // Every chunk is claimed; wait for the workers still running one of them.
  std::unique_lock<std::mutex> lock(mu_);
  auto queued = std::find(jobs_.begin(), jobs_.end(), &job);
  if (queued != jobs_.end()) jobs_.erase(queued);
  job_released_.wait(lock, [&job] { return job.holders == 0; });
  return absl::OkStatus();
}

void HostRuntime::StartWorkersLocked() {
  while (!stopping_ && static_cast<int>(workers_.size()) < max_workers_ - 1) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

void HostRuntime::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    Job* job = jobs_.front();
    if (job->Exhausted()) {
      jobs_.pop_front();
      continue;
    }
    ++job->holders;
    lock.unlock();
    job->Run();
    lock.lock();
    if (--job->holders == 0) job_released_.notify_all();
  }
}

absl::StatusOr<DevicePointer> HostRuntime::Allocate(int device, size_t bytes) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (bytes == 0) return absl::InvalidArgumentError("Allocate: 0 bytes");
  void* pointer = nullptr;
  if (posix_memalign(&pointer, kAlignment, bytes) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " host bytes"));
  }
  return pointer;
}

absl::Status HostRuntime::Free(int device, DevicePointer pointer) {
  RETURN_IF_ERROR(CheckDevice(device));
  std::free(pointer);
  return absl::OkStatus();
}

absl::Status HostRuntime::CopyToDevice(int device, DevicePointer dst, const void* src,
                                       size_t bytes) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return absl::OkStatus();
}

absl::Status HostRuntime::CopyToHost(int device, void* dst, DevicePointer src, size_t bytes) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return absl::OkStatus();
}

absl::Status HostRuntime::CopyDeviceToDeviceAsync(int device, DevicePointer dst,
                                                  DevicePointer src, size_t bytes,
                                                  StreamHandle stream) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (bytes > 0) std::memmove(dst, src, bytes);
  return absl::OkStatus();
}

absl::Status HostRuntime::MemsetAsync(int device, DevicePointer dst, uint8_t value, size_t bytes,
                                      StreamHandle stream) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (bytes > 0) std::memset(dst, value, bytes);
  return absl::OkStatus();
}

// A stream is a distinct token with nothing behind it.
absl::StatusOr<StreamHandle> HostRuntime::CreateStream(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  return static_cast<StreamHandle>(new char);
}

absl::Status HostRuntime::DestroyStream(int device, StreamHandle stream) {
  RETURN_IF_ERROR(CheckDevice(device));
  delete static_cast<char*>(stream);
  return absl::OkStatus();
}

absl::Status HostRuntime::SynchronizeStream(int device, StreamHandle stream) {
  return CheckDevice(device);
}

absl::StatusOr<EventHandle> HostRuntime::CreateEvent(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  return static_cast<EventHandle>(new Clock::time_point(Clock::now()));
}

absl::Status HostRuntime::DestroyEvent(int device, EventHandle event) {
  RETURN_IF_ERROR(CheckDevice(device));
  delete static_cast<Clock::time_point*>(event);
  return absl::OkStatus();
}

absl::Status HostRuntime::RecordEvent(int device, EventHandle event, StreamHandle stream) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (event == nullptr) return absl::InvalidArgumentError("RecordEvent: null event");
  *static_cast<Clock::time_point*>(event) = Clock::now();
  return absl::OkStatus();
}

absl::StatusOr<float> HostRuntime::ElapsedMs(int device, EventHandle start, EventHandle end) {
  RETURN_IF_ERROR(CheckDevice(device));
  if (start == nullptr || end == nullptr) return absl::InvalidArgumentError("ElapsedMs: null event");
  const Clock::duration elapsed =
      *static_cast<Clock::time_point*>(end) - *static_cast<Clock::time_point*>(start);
  return std::chrono::duration<float, std::milli>(elapsed).count();
}

}  // namespace rope_jit
