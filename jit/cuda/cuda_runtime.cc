#include "jit/cuda/cuda_runtime.h"

#include <cstdint>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "jit/dynamic_library.h"
#include "jit/elf_sections.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

// The slice of cuda.h we use, declared here so that no CUDA header is needed to build.
using CUresult = int;  // enum cudaError_enum
using CUdevice = int;
using CUdeviceptr = unsigned long long;  // NOLINT: the driver's 64-bit CUdeviceptr_v2
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;
using CUevent = struct CUevent_st*;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr unsigned CU_STREAM_DEFAULT = 0;
constexpr int CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;

// cuLaunchKernelEx's configuration (cuda.h's CUlaunchAttribute_st / CUlaunchConfig_st).
struct CUlaunchAttribute {
  int id;
  char pad[8 - sizeof(int)];
  union {
    char pad[64];
    int programmatic_stream_serialization_allowed;
  } value;
};
struct CUlaunchConfig {
  unsigned grid_x, grid_y, grid_z;
  unsigned block_x, block_y, block_z;
  unsigned shared_bytes;
  CUstream stream;
  CUlaunchAttribute* attributes;
  unsigned attribute_count;
};
using LaunchKernelExFunction = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);

// States of CudaRuntime::programmatic_launch_.
constexpr int kPdlUnknown = 0;
constexpr int kPdlSupported = 1;
constexpr int kPdlUnsupported = 2;
constexpr unsigned CU_EVENT_DEFAULT = 0;

// One list generates both the function-pointer table and its loader: (member, exported
// symbol, result, parameters). The versioned symbols are what cuda.h maps the names to;
// the unversioned ones are the legacy 32-bit-size entry points.
#define ROPE_JIT_CUDA_SYMBOLS(X)                                                            \
  X(cuInit, "cuInit", CUresult, (unsigned))                                                 \
  X(cuGetErrorName, "cuGetErrorName", CUresult, (CUresult, const char**))                   \
  X(cuDeviceGetCount, "cuDeviceGetCount", CUresult, (int*))                                 \
  X(cuDeviceGet, "cuDeviceGet", CUresult, (CUdevice*, int))                                 \
  X(cuDeviceGetName, "cuDeviceGetName", CUresult, (char*, int, CUdevice))                   \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", CUresult, (int*, int, CUdevice))          \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", CUresult, (CUcontext*, CUdevice)) \
  X(cuCtxGetCurrent, "cuCtxGetCurrent", CUresult, (CUcontext*))                             \
  X(cuCtxSetCurrent, "cuCtxSetCurrent", CUresult, (CUcontext))                              \
  X(cuModuleLoadData, "cuModuleLoadData", CUresult, (CUmodule*, const void*))               \
  X(cuModuleUnload, "cuModuleUnload", CUresult, (CUmodule))                                 \
  X(cuModuleGetFunction, "cuModuleGetFunction", CUresult, (CUfunction*, CUmodule, const char*)) \
  X(cuLaunchKernel, "cuLaunchKernel", CUresult,                                             \
    (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,      \
     CUstream, void**, void**))                                                             \
  X(cuMemAlloc, "cuMemAlloc_v2", CUresult, (CUdeviceptr*, size_t))                          \
  X(cuMemFree, "cuMemFree_v2", CUresult, (CUdeviceptr))                                     \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2", CUresult, (CUdeviceptr, const void*, size_t))          \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2", CUresult, (void*, CUdeviceptr, size_t))               \
  X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2", CUresult,                                    \
    (CUdeviceptr, CUdeviceptr, size_t, CUstream))                                           \
  X(cuMemsetD8Async, "cuMemsetD8Async", CUresult,                                           \
    (CUdeviceptr, unsigned char, size_t, CUstream))                                         \
  X(cuStreamCreate, "cuStreamCreate", CUresult, (CUstream*, unsigned))                      \
  X(cuStreamDestroy, "cuStreamDestroy_v2", CUresult, (CUstream))                            \
  X(cuStreamSynchronize, "cuStreamSynchronize", CUresult, (CUstream))                       \
  X(cuEventCreate, "cuEventCreate", CUresult, (CUevent*, unsigned))                         \
  X(cuEventDestroy, "cuEventDestroy_v2", CUresult, (CUevent))                               \
  X(cuEventRecord, "cuEventRecord", CUresult, (CUevent, CUstream))                          \
  X(cuEventSynchronize, "cuEventSynchronize", CUresult, (CUevent))                          \
  X(cuEventElapsedTime, "cuEventElapsedTime", CUresult, (float*, CUevent, CUevent))

struct CudaApi {
#define ROPE_JIT_CUDA_POINTER(member, symbol, result, params) result(*member) params = nullptr;
  ROPE_JIT_CUDA_SYMBOLS(ROPE_JIT_CUDA_POINTER)
#undef ROPE_JIT_CUDA_POINTER
};

absl::Status BindCuda(const DynamicLibrary& library, CudaApi* api) {
#define ROPE_JIT_CUDA_BIND(member, symbol, result, params) \
  RETURN_IF_ERROR(library.Bind(symbol, &api->member));
  ROPE_JIT_CUDA_SYMBOLS(ROPE_JIT_CUDA_BIND)
#undef ROPE_JIT_CUDA_BIND
  return absl::OkStatus();
}

absl::StatusCode CodeOf(CUresult result) {
  switch (result) {
    case 1:    // CUDA_ERROR_INVALID_VALUE
    case 101:  // CUDA_ERROR_INVALID_DEVICE
    case 400:  // CUDA_ERROR_INVALID_HANDLE
    case 200:  // CUDA_ERROR_INVALID_IMAGE
    case 209:  // CUDA_ERROR_NO_BINARY_FOR_GPU
    case 218:  // CUDA_ERROR_INVALID_PTX
    case 222:  // CUDA_ERROR_UNSUPPORTED_PTX_VERSION
      return absl::StatusCode::kInvalidArgument;
    case 2:    // CUDA_ERROR_OUT_OF_MEMORY
    case 701:  // CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
      return absl::StatusCode::kResourceExhausted;
    case 3:    // CUDA_ERROR_NOT_INITIALIZED
    case 4:    // CUDA_ERROR_DEINITIALIZED
    case 34:   // CUDA_ERROR_STUB_LIBRARY
    case 35:   // CUDA_ERROR_INSUFFICIENT_DRIVER
    case 46:   // CUDA_ERROR_DEVICE_UNAVAILABLE
    case 100:  // CUDA_ERROR_NO_DEVICE
    case 802:  // CUDA_ERROR_SYSTEM_NOT_READY
    case 803:  // CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
    case 804:  // CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE
      return absl::StatusCode::kUnavailable;
    case 500:  // CUDA_ERROR_NOT_FOUND
      return absl::StatusCode::kNotFound;
    default:
      return absl::StatusCode::kInternal;
  }
}

CUdeviceptr ToDevice(DevicePointer pointer) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer));
}

}  // namespace

struct CudaRuntime::Loaded {
  DynamicLibrary library;
  CudaApi api;
  std::vector<CUdevice> devices;
  // Optional (CUDA 11.8+ drivers): programmatic dependent launch needs it.
  LaunchKernelExFunction launch_kernel_ex = nullptr;

  absl::Status Error(CUresult result, const char* call) const {
    const char* name = nullptr;
    if (api.cuGetErrorName == nullptr || api.cuGetErrorName(result, &name) != CUDA_SUCCESS ||
        name == nullptr) {
      return absl::Status(CodeOf(result), absl::StrCat(call, " failed: CUresult ", result));
    }
    return absl::Status(CodeOf(result), absl::StrCat(call, " failed: ", name));
  }
  absl::Status Check(CUresult result, const char* call) const {
    if (ABSL_PREDICT_TRUE(result == CUDA_SUCCESS)) return absl::OkStatus();
    return Error(result, call);
  }
};

CudaRuntime::CudaRuntime() = default;
CudaRuntime::~CudaRuntime() = default;

absl::StatusOr<const CudaRuntime::Loaded*> CudaRuntime::Init() {
  std::call_once(init_once_, [this] {
    // The driver comes with the kernel module, not the toolkit: only the loader's path.
    LibrarySearch search;
    search.names = {"libcuda.so.1"};
    search.required_symbol = "cuInit";
    auto library = DynamicLibrary::Open(search);
    if (!library.ok()) {
      init_status_ = library.status();
      return;
    }
    auto driver = std::make_unique<Loaded>(Loaded{std::move(*library), {}, {}, nullptr});
    if (init_status_ = BindCuda(driver->library, &driver->api); !init_status_.ok()) return;
    driver->launch_kernel_ex =
        reinterpret_cast<LaunchKernelExFunction>(driver->library.FindSymbol("cuLaunchKernelEx"));
    const CudaApi& api = driver->api;
    const CUresult initialized = api.cuInit(0);
    if (initialized != CUDA_SUCCESS) {
      no_device_ = initialized == CUDA_ERROR_NO_DEVICE;
      init_status_ = driver->Error(initialized, "cuInit");
      // Whatever the driver said, no device of it is usable.
      init_status_ = absl::UnavailableError(init_status_.message());
      return;
    }
    int count = 0;
    if (init_status_ = driver->Check(api.cuDeviceGetCount(&count), "cuDeviceGetCount");
        !init_status_.ok()) {
      return;
    }
    driver->devices.resize(count);
    for (int i = 0; i < count; ++i) {
      init_status_ = driver->Check(api.cuDeviceGet(&driver->devices[i], i), "cuDeviceGet");
      if (!init_status_.ok()) return;
    }
    loaded_ = std::move(driver);
  });
  if (!init_status_.ok()) return init_status_;
  return loaded_.get();
}

absl::StatusOr<int> CudaRuntime::DeviceCount() {
  auto driver = Init();
  if (!driver.ok()) {
    if (no_device_) return 0;
    return driver.status();
  }
  return static_cast<int>((*driver)->devices.size());
}

absl::StatusOr<int> CudaRuntime::CheckDevice(int device) {
  ASSIGN_OR_RETURN(const Loaded* driver, Init());
  const int count = static_cast<int>(driver->devices.size());
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", device, " does not exist; there are ", count));
  }
  if (device >= kMaxDevices) {
    return absl::UnimplementedError(
        absl::StrCat("CUDA device ", device, ": at most ", kMaxDevices, " devices are supported"));
  }
  return driver->devices[device];
}

absl::StatusOr<std::string> CudaRuntime::DeviceTarget(int device) {
  ASSIGN_OR_RETURN(CUdevice handle, CheckDevice(device));
  const CudaApi& api = loaded_->api;
  int major = 0, minor = 0;
  RETURN_IF_ERROR(loaded_->Check(
      api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle),
      "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)"));
  RETURN_IF_ERROR(loaded_->Check(
      api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle),
      "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)"));
  return absl::StrCat("sm_", major, minor);
}

absl::StatusOr<std::string> CudaRuntime::DeviceName(int device) {
  ASSIGN_OR_RETURN(CUdevice handle, CheckDevice(device));
  char name[256] = {};
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.cuDeviceGetName(name, sizeof(name) - 1, handle),
                                 "cuDeviceGetName"));
  return std::string(name);
}

absl::StatusOr<void*> CudaRuntime::RetainContext(int device) {
  ASSIGN_OR_RETURN(CUdevice handle, CheckDevice(device));
  std::lock_guard<std::mutex> lock(retain_mutex_);
  if (void* context = contexts_[device].load(std::memory_order_acquire)) return context;
  CUcontext context = nullptr;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.cuDevicePrimaryCtxRetain(&context, handle),
                                 "cuDevicePrimaryCtxRetain"));
  // Never released: the primary context outlives every module and buffer we hand out.
  contexts_[device].store(context, std::memory_order_release);
  return static_cast<void*>(context);
}

absl::Status CudaRuntime::MakeCurrent(int device) {
  if (ABSL_PREDICT_FALSE(device < 0 || device >= kMaxDevices)) {
    return CheckDevice(device).status();
  }
  void* context = contexts_[device].load(std::memory_order_acquire);
  if (ABSL_PREDICT_FALSE(context == nullptr)) {
    ASSIGN_OR_RETURN(context, RetainContext(device));
  }
  // loaded_ was set before any context was published.
  const CudaApi& api = loaded_->api;
  CUcontext current = nullptr;
  RETURN_IF_ERROR(loaded_->Check(api.cuCtxGetCurrent(&current), "cuCtxGetCurrent"));
  if (current == static_cast<CUcontext>(context)) return absl::OkStatus();
  return loaded_->Check(api.cuCtxSetCurrent(static_cast<CUcontext>(context)), "cuCtxSetCurrent");
}

absl::Status CudaRuntime::SetDevice(int device) { return MakeCurrent(device); }

absl::StatusOr<ModuleHandle> CudaRuntime::LoadModule(int device, absl::string_view code_object) {
  if (code_object.empty()) return absl::InvalidArgumentError("empty code object");
  // A cubin whose headers point past its end would make the driver read out of bounds: an
  // ELF image is bounds-checked first. Other input (a fatbin, PTX text) is the driver's.
  if (absl::StartsWith(code_object, "\x7f" "ELF")) {
    RETURN_IF_ERROR(CheckElfBounds(code_object));
  }
  RETURN_IF_ERROR(MakeCurrent(device));
  // A NUL-terminated copy: the driver reads anything that is not ELF or a fatbin as PTX
  // text, up to a NUL.
  const std::string image(code_object);
  CUmodule module = nullptr;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.cuModuleLoadData(&module, image.c_str()),
                                 "cuModuleLoadData"));
  return static_cast<ModuleHandle>(module);
}

absl::Status CudaRuntime::UnloadModule(int device, ModuleHandle module) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuModuleUnload(static_cast<CUmodule>(module)),
                        "cuModuleUnload");
}

absl::StatusOr<FunctionHandle> CudaRuntime::GetFunction(ModuleHandle module, const char* name) {
  ASSIGN_OR_RETURN(const Loaded* driver, Init());
  CUfunction function = nullptr;
  const CUresult result =
      driver->api.cuModuleGetFunction(&function, static_cast<CUmodule>(module), name);
  if (result != CUDA_SUCCESS) {
    absl::Status status = driver->Error(result, "cuModuleGetFunction");
    return absl::Status(status.code(), absl::StrCat(status.message(), " (", name, ")"));
  }
  return static_cast<FunctionHandle>(function);
}

absl::Status CudaRuntime::Launch(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                                 uint32_t shared_bytes, StreamHandle stream, void** args) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(
      loaded_->api.cuLaunchKernel(static_cast<CUfunction>(function), grid.x, grid.y, grid.z,
                                  block.x, block.y, block.z, shared_bytes,
                                  static_cast<CUstream>(stream), args, nullptr),
      "cuLaunchKernel");
}

absl::Status CudaRuntime::LaunchWithOptions(int device, FunctionHandle function, Dim3 grid,
                                            Dim3 block, uint32_t shared_bytes, StreamHandle stream,
                                            void** args, const LaunchOptions& options) {
  if (!options.programmatic_dependent_launch) {
    return Launch(device, function, grid, block, shared_bytes, stream, args);
  }
  RETURN_IF_ERROR(MakeCurrent(device));  // checks `device`
  std::atomic<int>& supported = programmatic_launch_[device];
  int state = supported.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_FALSE(state == kPdlUnknown)) {
    // Hopper (compute capability 9.0) and later schedule dependent grids early.
    int major = 0;
    RETURN_IF_ERROR(loaded_->Check(
        loaded_->api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                          loaded_->devices[device]),
        "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)"));
    state = major >= 9 && loaded_->launch_kernel_ex != nullptr ? kPdlSupported : kPdlUnsupported;
    supported.store(state, std::memory_order_relaxed);
  }
  if (state != kPdlSupported) {
    return Launch(device, function, grid, block, shared_bytes, stream, args);
  }
  CUlaunchAttribute attribute;
  std::memset(&attribute, 0, sizeof(attribute));
  attribute.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attribute.value.programmatic_stream_serialization_allowed = 1;
  CUlaunchConfig config{grid.x,       grid.y,  grid.z, block.x,   block.y, block.z,
                        shared_bytes, static_cast<CUstream>(stream), &attribute, 1};
  return loaded_->Check(
      loaded_->launch_kernel_ex(&config, static_cast<CUfunction>(function), args, nullptr),
      "cuLaunchKernelEx");
}

absl::StatusOr<DevicePointer> CudaRuntime::Allocate(int device, size_t bytes) {
  RETURN_IF_ERROR(MakeCurrent(device));
  CUdeviceptr pointer = 0;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.cuMemAlloc(&pointer, bytes), "cuMemAlloc"));
  return reinterpret_cast<DevicePointer>(static_cast<uintptr_t>(pointer));
}

absl::Status CudaRuntime::Free(int device, DevicePointer pointer) {
  if (pointer == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuMemFree(ToDevice(pointer)), "cuMemFree");
}

absl::Status CudaRuntime::CopyToDevice(int device, DevicePointer dst, const void* src,
                                       size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuMemcpyHtoD(ToDevice(dst), src, bytes), "cuMemcpyHtoD");
}

absl::Status CudaRuntime::CopyToHost(int device, void* dst, DevicePointer src, size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuMemcpyDtoH(dst, ToDevice(src), bytes), "cuMemcpyDtoH");
}

absl::Status CudaRuntime::CopyDeviceToDeviceAsync(int device, DevicePointer dst, DevicePointer src,
                                                  size_t bytes, StreamHandle stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuMemcpyDtoDAsync(ToDevice(dst), ToDevice(src), bytes,
                                                       static_cast<CUstream>(stream)),
                        "cuMemcpyDtoDAsync");
}

absl::Status CudaRuntime::MemsetAsync(int device, DevicePointer dst, uint8_t value, size_t bytes,
                                      StreamHandle stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(
      loaded_->api.cuMemsetD8Async(ToDevice(dst), value, bytes, static_cast<CUstream>(stream)),
      "cuMemsetD8Async");
}

absl::StatusOr<StreamHandle> CudaRuntime::CreateStream(int device) {
  RETURN_IF_ERROR(MakeCurrent(device));
  CUstream stream = nullptr;
  RETURN_IF_ERROR(
      loaded_->Check(loaded_->api.cuStreamCreate(&stream, CU_STREAM_DEFAULT), "cuStreamCreate"));
  return static_cast<StreamHandle>(stream);
}

absl::Status CudaRuntime::DestroyStream(int device, StreamHandle stream) {
  if (stream == nullptr) return absl::OkStatus();  // the legacy default stream
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuStreamDestroy(static_cast<CUstream>(stream)),
                        "cuStreamDestroy");
}

absl::Status CudaRuntime::SynchronizeStream(int device, StreamHandle stream) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuStreamSynchronize(static_cast<CUstream>(stream)),
                        "cuStreamSynchronize");
}

absl::StatusOr<EventHandle> CudaRuntime::CreateEvent(int device) {
  RETURN_IF_ERROR(MakeCurrent(device));
  CUevent event = nullptr;
  RETURN_IF_ERROR(
      loaded_->Check(loaded_->api.cuEventCreate(&event, CU_EVENT_DEFAULT), "cuEventCreate"));
  return static_cast<EventHandle>(event);
}

absl::Status CudaRuntime::DestroyEvent(int device, EventHandle event) {
  if (event == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.cuEventDestroy(static_cast<CUevent>(event)),
                        "cuEventDestroy");
}

absl::Status CudaRuntime::RecordEvent(int device, EventHandle event, StreamHandle stream) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(
      loaded_->api.cuEventRecord(static_cast<CUevent>(event), static_cast<CUstream>(stream)),
      "cuEventRecord");
}

absl::StatusOr<float> CudaRuntime::ElapsedMs(int device, EventHandle start, EventHandle end) {
  RETURN_IF_ERROR(MakeCurrent(device));
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.cuEventSynchronize(static_cast<CUevent>(end)),
                                 "cuEventSynchronize"));
  float milliseconds = 0;
  RETURN_IF_ERROR(loaded_->Check(
      loaded_->api.cuEventElapsedTime(&milliseconds, static_cast<CUevent>(start),
                                      static_cast<CUevent>(end)),
      "cuEventElapsedTime"));
  return milliseconds;
}

}  // namespace rope_jit
