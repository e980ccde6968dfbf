#include "jit/rocm/hip_runtime.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "jit/dynamic_library.h"
#include "jit/elf_sections.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

// The slice of hip_runtime_api.h we use, declared here so that no ROCm header is needed.
using hipError_t = int;  // enum hipError_t
using hipDevice_t = int;
using hipModule_t = struct ihipModule_t*;
using hipFunction_t = struct ihipModuleSymbol_t*;
using hipStream_t = struct ihipStream_t*;
using hipEvent_t = struct ihipEvent_t*;
using hipMemcpyKind = int;

constexpr hipError_t hipSuccess = 0;
constexpr hipError_t hipErrorNoDevice = 100;
constexpr hipError_t hipErrorInvalidDevice = 101;
constexpr hipMemcpyKind hipMemcpyHostToDevice = 1;
constexpr hipMemcpyKind hipMemcpyDeviceToHost = 2;

// hipDeviceProp_t up to gcnArchName, for the two layouts in the field. hipGetDeviceProperties
// writes the whole struct, so it is called on a buffer larger than either.
//
// ROCm 5.x (Debian's 5.2.3 /usr/include/hip/hip_runtime_api.h): offsetof(gcnArchName) is 396,
// measured with offsetof against that header on 2026-11 and asserted below.
struct DevicePropR0000Prefix {
  char name[256];
  size_t totalGlobalMem, sharedMemPerBlock;
  int regsPerBlock, warpSize, maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3], clockRate,
      memoryClockRate, memoryBusWidth;
  size_t totalConstMem;
  int major, minor, multiProcessorCount, l2CacheSize, maxThreadsPerMultiProcessor, computeMode,
      clockInstructionRate;
  uint32_t arch;  // hipDeviceArch_t: 4 bytes of bit fields
  int concurrentKernels, pciDomainID, pciBusID, pciDeviceID;
  size_t maxSharedMemoryPerMultiProcessor;
  int isMultiGpuBoard, canMapHostMemory, gcnArch;
  char gcnArchName[256];
};
static_assert(offsetof(DevicePropR0000Prefix, gcnArchName) == 396, "ROCm 5 hipDeviceProp_t");

// ROCm 6 (hipGetDevicePropertiesR0600 / hipDeviceProp_tR0600): transcribed from ROCm 6's
// hip_runtime_api.h; the offset (1160) was checked by hand against two published copies of
// that header but never against a running ROCm 6, hence the gfx check in DeviceTarget.
struct DevicePropR0600Prefix {
  char name[256];
  char uuid[16];
  char luid[8];
  unsigned luidDeviceNodeMask;
  size_t totalGlobalMem, sharedMemPerBlock;
  int regsPerBlock, warpSize;
  size_t memPitch;
  int maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3], clockRate;
  size_t totalConstMem;
  int major, minor;
  size_t textureAlignment, texturePitchAlignment;
  int deviceOverlap, multiProcessorCount, kernelExecTimeoutEnabled, integrated, canMapHostMemory,
      computeMode, maxTexture1D, maxTexture1DMipmap, maxTexture1DLinear, maxTexture2D[2],
      maxTexture2DMipmap[2], maxTexture2DLinear[3], maxTexture2DGather[2], maxTexture3D[3],
      maxTexture3DAlt[3], maxTextureCubemap, maxTexture1DLayered[2], maxTexture2DLayered[3],
      maxTextureCubemapLayered[2], maxSurface1D, maxSurface2D[2], maxSurface3D[3],
      maxSurface1DLayered[2], maxSurface2DLayered[3], maxSurfaceCubemap,
      maxSurfaceCubemapLayered[2];
  size_t surfaceAlignment;
  int concurrentKernels, ECCEnabled, pciBusID, pciDeviceID, pciDomainID, tccDriver,
      asyncEngineCount, unifiedAddressing, memoryClockRate, memoryBusWidth, l2CacheSize,
      persistingL2CacheMaxSize, maxThreadsPerMultiProcessor, streamPrioritiesSupported,
      globalL1CacheSupported, localL1CacheSupported;
  size_t sharedMemPerMultiprocessor;
  int regsPerMultiprocessor, managedMemory, isMultiGpuBoard, multiGpuBoardGroupID,
      hostNativeAtomicSupported, singleToDoublePrecisionPerfRatio, pageableMemoryAccess,
      concurrentManagedAccess, computePreemptionSupported, canUseHostPointerForRegisteredMem,
      cooperativeLaunch, cooperativeMultiDeviceLaunch;
  size_t sharedMemPerBlockOptin;
  int pageableMemoryAccessUsesHostPageTables, directManagedMemAccessFromHost,
      maxBlocksPerMultiProcessor, accessPolicyMaxWindowSize;
  size_t reservedSharedMemPerBlock;
  int hostRegisterSupported, sparseHipArraySupported, hostRegisterReadOnlySupported,
      timelineSemaphoreInteropSupported, memoryPoolsSupported, gpuDirectRDMASupported;
  unsigned gpuDirectRDMAFlushWritesOptions;
  int gpuDirectRDMAWritesOrdering;
  unsigned memoryPoolSupportedHandleTypes;
  int deferredMappingHipArraySupported, ipcEventSupported, clusterLaunch, unifiedFunctionPointers;
  int reserved[63];
  int hipReserved[32];
  char gcnArchName[256];
};
static_assert(offsetof(DevicePropR0600Prefix, gcnArchName) == 1160, "ROCm 6 hipDeviceProp_t");

// Larger than either struct (792 bytes; about 1.5 KiB); room for fields added later.
constexpr size_t kDevicePropBufferBytes = 8192;

using GetDeviceProperties = hipError_t (*)(void*, int);

#define ROPE_JIT_HIP_SYMBOLS(X)                                                           \
  X(hipInit, hipError_t, (unsigned))                                                      \
  X(hipGetErrorName, const char*, (hipError_t))                                           \
  X(hipGetDeviceCount, hipError_t, (int*))                                                \
  X(hipGetDevice, hipError_t, (int*))                                                     \
  X(hipSetDevice, hipError_t, (int))                                                      \
  X(hipDeviceGetName, hipError_t, (char*, int, hipDevice_t))                              \
  X(hipGetDeviceProperties, hipError_t, (void*, int))                                     \
  X(hipModuleLoadData, hipError_t, (hipModule_t*, const void*))                           \
  X(hipModuleUnload, hipError_t, (hipModule_t))                                           \
  X(hipModuleGetFunction, hipError_t, (hipFunction_t*, hipModule_t, const char*))         \
  X(hipModuleLaunchKernel, hipError_t,                                                    \
    (hipFunction_t, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, \
     hipStream_t, void**, void**))                                                        \
  X(hipMalloc, hipError_t, (void**, size_t))                                              \
  X(hipFree, hipError_t, (void*))                                                         \
  X(hipMemcpy, hipError_t, (void*, const void*, size_t, hipMemcpyKind))                   \
  X(hipMemcpyDtoDAsync, hipError_t, (void*, void*, size_t, hipStream_t))                  \
  X(hipMemsetAsync, hipError_t, (void*, int, size_t, hipStream_t))                        \
  X(hipStreamCreate, hipError_t, (hipStream_t*))                                          \
  X(hipStreamDestroy, hipError_t, (hipStream_t))                                          \
  X(hipStreamSynchronize, hipError_t, (hipStream_t))                                      \
  X(hipEventCreate, hipError_t, (hipEvent_t*))                                            \
  X(hipEventDestroy, hipError_t, (hipEvent_t))                                            \
  X(hipEventRecord, hipError_t, (hipEvent_t, hipStream_t))                                \
  X(hipEventSynchronize, hipError_t, (hipEvent_t))                                        \
  X(hipEventElapsedTime, hipError_t, (float*, hipEvent_t, hipEvent_t))

struct HipApi {
#define ROPE_JIT_HIP_POINTER(name, result, params) result(*name) params = nullptr;
  ROPE_JIT_HIP_SYMBOLS(ROPE_JIT_HIP_POINTER)
#undef ROPE_JIT_HIP_POINTER
  // ROCm 6's layout, when exported; hipGetDeviceProperties then keeps the ROCm 5 one.
  GetDeviceProperties hipGetDevicePropertiesR0600 = nullptr;
};

absl::Status BindHip(const DynamicLibrary& library, HipApi* api) {
#define ROPE_JIT_HIP_BIND(name, result, params) RETURN_IF_ERROR(library.Bind(#name, &api->name));
  ROPE_JIT_HIP_SYMBOLS(ROPE_JIT_HIP_BIND)
#undef ROPE_JIT_HIP_BIND
  api->hipGetDevicePropertiesR0600 = reinterpret_cast<GetDeviceProperties>(
      library.FindSymbol("hipGetDevicePropertiesR0600"));
  return absl::OkStatus();
}

absl::StatusCode CodeOf(hipError_t error) {
  switch (error) {
    case 1:    // hipErrorInvalidValue
    case 101:  // hipErrorInvalidDevice
    case 200:  // hipErrorInvalidImage
    case 209:  // hipErrorNoBinaryForGpu
    case 218:  // hipErrorInvalidKernelFile
    case 400:  // hipErrorInvalidHandle
      return absl::StatusCode::kInvalidArgument;
    case 2:    // hipErrorOutOfMemory
    case 701:  // hipErrorLaunchOutOfResources
      return absl::StatusCode::kResourceExhausted;
    case 3:    // hipErrorNotInitialized
    case 4:    // hipErrorDeinitialized
    case 35:   // hipErrorInsufficientDriver
    case 100:  // hipErrorNoDevice
      return absl::StatusCode::kUnavailable;
    case 500:  // hipErrorNotFound
      return absl::StatusCode::kNotFound;
    default:
      return absl::StatusCode::kInternal;
  }
}

// Accepts an AMDGPU ELF whose headers stay inside the image, or a clang offload bundle.
absl::Status CheckCodeObject(absl::string_view image) {
  if (absl::StartsWith(image, "__CLANG_OFFLOAD_BUNDLE__")) return absl::OkStatus();
  if (!absl::StartsWith(image, "\x7f" "ELF")) {
    return absl::InvalidArgumentError("not an AMDGPU code object (64-bit ELF or offload bundle)");
  }
  return CheckElfBounds(image);
}

}  // namespace

struct HipRuntime::Loaded {
  DynamicLibrary library;
  HipApi api;

  absl::Status Error(hipError_t error, const char* call) const {
    const char* name = api.hipGetErrorName != nullptr ? api.hipGetErrorName(error) : nullptr;
    return absl::Status(CodeOf(error),
                        absl::StrCat(call, " failed: ",
                                     name != nullptr ? std::string(name)
                                                     : absl::StrCat("hipError_t ", error)));
  }
  absl::Status Check(hipError_t error, const char* call) const {
    if (ABSL_PREDICT_TRUE(error == hipSuccess)) return absl::OkStatus();
    return Error(error, call);
  }
};

HipRuntime::HipRuntime() = default;
HipRuntime::~HipRuntime() = default;

absl::StatusOr<const HipRuntime::Loaded*> HipRuntime::Init() {
  std::call_once(init_once_, [this] {
    LibrarySearch search;
    search.names = {"libamdhip64.so.6", "libamdhip64.so.5"};
    if (const char* rocm = std::getenv("ROCM_PATH"); rocm != nullptr && *rocm) {
      search.directories.push_back(absl::StrCat(rocm, "/lib"));
    }
    search.directories.push_back("/opt/rocm/lib");
    search.required_symbol = "hipModuleLaunchKernel";
    auto library = DynamicLibrary::Open(search);
    if (!library.ok()) {
      init_status_ = library.status();
      return;
    }
    auto runtime = std::make_unique<Loaded>(Loaded{std::move(*library), {}});
    if (init_status_ = BindHip(runtime->library, &runtime->api); !init_status_.ok()) return;
    const HipApi& api = runtime->api;
    const hipError_t initialized = api.hipInit(0);
    if (initialized != hipSuccess) {
      no_device_ = initialized == hipErrorNoDevice || initialized == hipErrorInvalidDevice;
      init_status_ = absl::UnavailableError(runtime->Error(initialized, "hipInit").message());
      return;
    }
    int count = 0;
    const hipError_t counted = api.hipGetDeviceCount(&count);
    if (counted == hipErrorNoDevice) {
      no_device_ = true;
      init_status_ = absl::UnavailableError(runtime->Error(counted, "hipGetDeviceCount").message());
      return;
    }
    if (init_status_ = runtime->Check(counted, "hipGetDeviceCount"); !init_status_.ok()) return;
    device_count_ = count;
    loaded_ = std::move(runtime);
  });
  if (!init_status_.ok()) return init_status_;
  return loaded_.get();
}

absl::StatusOr<int> HipRuntime::DeviceCount() {
  auto runtime = Init();
  if (!runtime.ok()) {
    if (no_device_) return 0;
    return runtime.status();
  }
  return device_count_;
}

absl::Status HipRuntime::CheckDevice(int device) {
  RETURN_IF_ERROR(Init().status());
  if (device < 0 || device >= device_count_) {
    return absl::InvalidArgumentError(
        absl::StrCat("HIP device ", device, " does not exist; there are ", device_count_));
  }
  return absl::OkStatus();
}

absl::Status HipRuntime::MakeCurrent(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  int current = -1;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipGetDevice(&current), "hipGetDevice"));
  if (current == device) return absl::OkStatus();
  return loaded_->Check(loaded_->api.hipSetDevice(device), "hipSetDevice");
}

absl::StatusOr<std::string> HipRuntime::DeviceTarget(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  const HipApi& api = loaded_->api;
  std::vector<char> buffer(kDevicePropBufferBytes, '\0');  // operator new: aligned for the struct
  char* properties = buffer.data();
  size_t offset = 0;
  if (api.hipGetDevicePropertiesR0600 != nullptr) {
    RETURN_IF_ERROR(loaded_->Check(api.hipGetDevicePropertiesR0600(properties, device),
                                    "hipGetDevicePropertiesR0600"));
    offset = offsetof(DevicePropR0600Prefix, gcnArchName);
  } else {
    RETURN_IF_ERROR(
        loaded_->Check(api.hipGetDeviceProperties(properties, device), "hipGetDeviceProperties"));
    offset = offsetof(DevicePropR0000Prefix, gcnArchName);
  }
  const char* name = properties + offset;
  std::string arch(name, strnlen(name, sizeof(DevicePropR0000Prefix::gcnArchName)));
  auto vendor = VendorOfTarget(arch);
  if (!vendor.ok() || *vendor != Vendor::kAmd) {
    return absl::InternalError(absl::StrCat(
        "gcnArchName read as '", absl::CEscape(arch), "' at offset ", offset,
        " of hipDeviceProp_t: this runtime's struct layout is not one rope_jit knows"));
  }
  return arch;
}

absl::StatusOr<std::string> HipRuntime::DeviceName(int device) {
  RETURN_IF_ERROR(CheckDevice(device));
  char name[256] = {};
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipDeviceGetName(name, sizeof(name) - 1, device),
                                  "hipDeviceGetName"));
  return std::string(name);
}

absl::Status HipRuntime::SetDevice(int device) { return MakeCurrent(device); }

absl::StatusOr<ModuleHandle> HipRuntime::LoadModule(int device, absl::string_view code_object) {
  RETURN_IF_ERROR(CheckCodeObject(code_object));
  RETURN_IF_ERROR(MakeCurrent(device));
  hipModule_t module = nullptr;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipModuleLoadData(&module, code_object.data()),
                                  "hipModuleLoadData"));
  return static_cast<ModuleHandle>(module);
}

absl::Status HipRuntime::UnloadModule(int device, ModuleHandle module) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipModuleUnload(static_cast<hipModule_t>(module)),
                         "hipModuleUnload");
}

absl::StatusOr<FunctionHandle> HipRuntime::GetFunction(ModuleHandle module, const char* name) {
  ASSIGN_OR_RETURN(const Loaded* runtime, Init());
  hipFunction_t function = nullptr;
  const hipError_t error =
      runtime->api.hipModuleGetFunction(&function, static_cast<hipModule_t>(module), name);
  if (error != hipSuccess) {
    absl::Status status = runtime->Error(error, "hipModuleGetFunction");
    return absl::Status(status.code(), absl::StrCat(status.message(), " (", name, ")"));
  }
  return static_cast<FunctionHandle>(function);
}

absl::Status HipRuntime::Launch(int device, FunctionHandle function, Dim3 grid, Dim3 block,
                                uint32_t shared_bytes, StreamHandle stream, void** args) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(
      loaded_->api.hipModuleLaunchKernel(static_cast<hipFunction_t>(function), grid.x, grid.y,
                                          grid.z, block.x, block.y, block.z, shared_bytes,
                                          static_cast<hipStream_t>(stream), args, nullptr),
      "hipModuleLaunchKernel");
}

absl::StatusOr<DevicePointer> HipRuntime::Allocate(int device, size_t bytes) {
  RETURN_IF_ERROR(MakeCurrent(device));
  void* pointer = nullptr;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipMalloc(&pointer, bytes), "hipMalloc"));
  return pointer;
}

absl::Status HipRuntime::Free(int device, DevicePointer pointer) {
  if (pointer == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipFree(pointer), "hipFree");
}

absl::Status HipRuntime::CopyToDevice(int device, DevicePointer dst, const void* src,
                                      size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice),
                         "hipMemcpy(HostToDevice)");
}

absl::Status HipRuntime::CopyToHost(int device, void* dst, DevicePointer src, size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost),
                         "hipMemcpy(DeviceToHost)");
}

absl::Status HipRuntime::CopyDeviceToDeviceAsync(int device, DevicePointer dst, DevicePointer src,
                                                 size_t bytes, StreamHandle stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(
      loaded_->api.hipMemcpyDtoDAsync(dst, src, bytes, static_cast<hipStream_t>(stream)),
      "hipMemcpyDtoDAsync");
}

absl::Status HipRuntime::MemsetAsync(int device, DevicePointer dst, uint8_t value, size_t bytes,
                                     StreamHandle stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(
      loaded_->api.hipMemsetAsync(dst, value, bytes, static_cast<hipStream_t>(stream)),
      "hipMemsetAsync");
}

absl::StatusOr<StreamHandle> HipRuntime::CreateStream(int device) {
  RETURN_IF_ERROR(MakeCurrent(device));
  hipStream_t stream = nullptr;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipStreamCreate(&stream), "hipStreamCreate"));
  return static_cast<StreamHandle>(stream);
}

absl::Status HipRuntime::DestroyStream(int device, StreamHandle stream) {
  if (stream == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipStreamDestroy(static_cast<hipStream_t>(stream)),
                         "hipStreamDestroy");
}

absl::Status HipRuntime::SynchronizeStream(int device, StreamHandle stream) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipStreamSynchronize(static_cast<hipStream_t>(stream)),
                         "hipStreamSynchronize");
}

absl::StatusOr<EventHandle> HipRuntime::CreateEvent(int device) {
  RETURN_IF_ERROR(MakeCurrent(device));
  hipEvent_t event = nullptr;
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipEventCreate(&event), "hipEventCreate"));
  return static_cast<EventHandle>(event);
}

absl::Status HipRuntime::DestroyEvent(int device, EventHandle event) {
  if (event == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipEventDestroy(static_cast<hipEvent_t>(event)),
                         "hipEventDestroy");
}

absl::Status HipRuntime::RecordEvent(int device, EventHandle event, StreamHandle stream) {
  RETURN_IF_ERROR(MakeCurrent(device));
  return loaded_->Check(loaded_->api.hipEventRecord(static_cast<hipEvent_t>(event),
                                                      static_cast<hipStream_t>(stream)),
                         "hipEventRecord");
}

absl::StatusOr<float> HipRuntime::ElapsedMs(int device, EventHandle start, EventHandle end) {
  RETURN_IF_ERROR(MakeCurrent(device));
  RETURN_IF_ERROR(loaded_->Check(loaded_->api.hipEventSynchronize(static_cast<hipEvent_t>(end)),
                                  "hipEventSynchronize"));
  float milliseconds = 0;
  RETURN_IF_ERROR(loaded_->Check(
      loaded_->api.hipEventElapsedTime(&milliseconds, static_cast<hipEvent_t>(start),
                                        static_cast<hipEvent_t>(end)),
      "hipEventElapsedTime"));
  return milliseconds;
}

}  // namespace rope_jit
