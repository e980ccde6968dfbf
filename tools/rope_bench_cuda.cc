#include "tools/rope_bench_cuda.h"

#include <dlfcn.h>

#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

// The slice of cuda.h used here (values from CUDA 12/13's cuda.h).
using CUresult = int;
using CUdevice = int;
using CUstream = void*;
using CUgraph = void*;
using CUgraphExec = void*;
constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_STREAM_CAPTURE_MODE_RELAXED = 2;
constexpr int CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13;
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;

}  // namespace

struct CudaExtras::Api {
  CUresult (*cuGetErrorName)(CUresult, const char**) = nullptr;
  CUresult (*cuDriverGetVersion)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*cuStreamBeginCapture)(CUstream, int) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph*) = nullptr;
  // One of the two instantiate entry points: WithFlags (CUDA >= 11.4), else the
  // CUDA 11 five-argument form exported as cuGraphInstantiate_v2.
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec*, CUgraph, unsigned long long) = nullptr;
  CUresult (*cuGraphInstantiateV2)(CUgraphExec*, CUgraph, void**, char*, size_t) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph) = nullptr;
};

absl::StatusOr<CudaExtras*> CudaExtras::Get() {
  static const absl::StatusOr<CudaExtras*>* const instance = [] {
    using Result = absl::StatusOr<CudaExtras*>;
    // Reuse the copy the runtime backend loaded; open it only if it is not there yet.
    void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (library == nullptr) library = dlopen("libcuda.so.1", RTLD_NOW);
    if (library == nullptr) {
      const char* why = dlerror();
      return new Result(absl::UnavailableError(
          absl::StrCat("cannot load libcuda.so.1: ", why != nullptr ? why : "unknown error")));
    }
    auto* api = new Api;
    std::string missing;
    auto bind = [&](const char* symbol, auto* slot, bool required) {
      void* address = dlsym(library, symbol);
      if (address == nullptr && required)
        absl::StrAppend(&missing, missing.empty() ? "" : ", ", symbol);
      *slot = reinterpret_cast<std::remove_pointer_t<decltype(slot)>>(address);
    };
    bind("cuGetErrorName", &api->cuGetErrorName, true);
    bind("cuDriverGetVersion", &api->cuDriverGetVersion, true);
    bind("cuDeviceGet", &api->cuDeviceGet, true);
    bind("cuDeviceGetAttribute", &api->cuDeviceGetAttribute, true);
    bind("cuStreamBeginCapture_v2", &api->cuStreamBeginCapture, true);
    bind("cuStreamEndCapture", &api->cuStreamEndCapture, true);
    bind("cuGraphInstantiateWithFlags", &api->cuGraphInstantiateWithFlags, false);
    bind("cuGraphInstantiate_v2", &api->cuGraphInstantiateV2, false);
    bind("cuGraphLaunch", &api->cuGraphLaunch, true);
    bind("cuGraphExecDestroy", &api->cuGraphExecDestroy, true);
    bind("cuGraphDestroy", &api->cuGraphDestroy, true);
    if (api->cuGraphInstantiateWithFlags == nullptr && api->cuGraphInstantiateV2 == nullptr) {
      absl::StrAppend(&missing, missing.empty() ? "" : ", ",
                      "cuGraphInstantiateWithFlags (or cuGraphInstantiate_v2)");
    }
    if (!missing.empty()) {
      delete api;
      return new Result(absl::UnavailableError(
          absl::StrCat("libcuda.so.1 lacks ", missing, " (driver too old?)")));
    }
    return new Result(new CudaExtras(api));
  }();
  return *instance;
}

absl::Status CudaExtras::Check(int result, const char* call) const {
  if (result == CUDA_SUCCESS) return absl::OkStatus();
  const char* name = nullptr;
  if (api_->cuGetErrorName(result, &name) != CUDA_SUCCESS || name == nullptr) name = "unknown";
  return absl::InternalError(absl::StrCat(call, " failed: ", name, " (", result, ")"));
}

absl::StatusOr<CudaDeviceInfo> CudaExtras::DeviceInfo(int ordinal) const {
  CudaDeviceInfo info;
  CUdevice device = 0;
  RETURN_IF_ERROR(Check(api_->cuDriverGetVersion(&info.driver_version), "cuDriverGetVersion"));
  RETURN_IF_ERROR(Check(api_->cuDeviceGet(&device, ordinal), "cuDeviceGet"));
  int l2 = 0;
  RETURN_IF_ERROR(Check(api_->cuDeviceGetAttribute(&l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, device),
                        "cuDeviceGetAttribute(L2_CACHE_SIZE)"));
  info.l2_bytes = l2;
  RETURN_IF_ERROR(Check(
      api_->cuDeviceGetAttribute(&info.sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device),
      "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)"));
  RETURN_IF_ERROR(
      Check(api_->cuDeviceGetAttribute(&info.sm_clock_khz, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, device),
            "cuDeviceGetAttribute(CLOCK_RATE)"));
  return info;
}

absl::Status CudaExtras::BeginCapture(StreamHandle stream) const {
  return Check(api_->cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED),
               "cuStreamBeginCapture_v2");
}

absl::StatusOr<CudaGraph> CudaExtras::EndCapture(StreamHandle stream) const {
  CudaGraph graph;
  graph.cuda_ = this;
  RETURN_IF_ERROR(Check(api_->cuStreamEndCapture(stream, &graph.graph_), "cuStreamEndCapture"));
  if (api_->cuGraphInstantiateWithFlags != nullptr) {
    RETURN_IF_ERROR(Check(api_->cuGraphInstantiateWithFlags(&graph.exec_, graph.graph_, 0),
                          "cuGraphInstantiateWithFlags"));
  } else {
    char log[512] = {0};
    RETURN_IF_ERROR(
        Check(api_->cuGraphInstantiateV2(&graph.exec_, graph.graph_, nullptr, log, sizeof(log)),
              "cuGraphInstantiate_v2"));
  }
  return graph;
}

CudaGraph::CudaGraph(CudaGraph&& other) noexcept { *this = std::move(other); }

CudaGraph& CudaGraph::operator=(CudaGraph&& other) noexcept {
  if (this != &other) {
    Reset();
    cuda_ = std::exchange(other.cuda_, nullptr);
    graph_ = std::exchange(other.graph_, nullptr);
    exec_ = std::exchange(other.exec_, nullptr);
  }
  return *this;
}

CudaGraph::~CudaGraph() { Reset(); }

void CudaGraph::Reset() {
  // Teardown errors are ignored: a failed destroy leaks a graph, which a benchmark can afford.
  if (cuda_ != nullptr && exec_ != nullptr) cuda_->api_->cuGraphExecDestroy(exec_);
  if (cuda_ != nullptr && graph_ != nullptr) cuda_->api_->cuGraphDestroy(graph_);
  exec_ = graph_ = nullptr;
}

absl::Status CudaGraph::Launch(StreamHandle stream) const {
  if (exec_ == nullptr) return absl::FailedPreconditionError("launch of an empty CudaGraph");
  return cuda_->Check(cuda_->api_->cuGraphLaunch(exec_, stream), "cuGraphLaunch");
}

}  // namespace rope_jit
