// The few CUDA driver calls rope_bench needs beyond DeviceRuntime: stream capture into a
// graph and its replay, and device attributes (L2 size, SM count and clock, driver
// version). Resolved with dlsym from libcuda.so.1, the library the CUDA runtime backend
// already loaded, so the tool links no vendor library and builds without a CUDA header.
//
//   ASSIGN_OR_RETURN(CudaExtras * cuda, CudaExtras::Get());      // Unavailable: no driver
//   RETURN_IF_ERROR(cuda->BeginCapture(stream));
//   ... enqueue work on stream ...
//   ASSIGN_OR_RETURN(CudaGraph graph, cuda->EndCapture(stream));   // instantiated
//   RETURN_IF_ERROR(graph.Launch(stream));
//
// Errors name the driver call and its error name, like the runtime backend's.
#ifndef ROPE_JIT_TOOLS_ROPE_BENCH_CUDA_H_
#define ROPE_JIT_TOOLS_ROPE_BENCH_CUDA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jit/device_runtime.h"

namespace rope_jit {

class CudaExtras;

// An instantiated graph; destroys the graph and its executable instance when dropped.
class CudaGraph {
 public:
  CudaGraph() = default;
  CudaGraph(CudaGraph&& other) noexcept;
  CudaGraph& operator=(CudaGraph&& other) noexcept;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  ~CudaGraph();

  absl::Status Launch(StreamHandle stream) const;

 private:
  friend class CudaExtras;
  void Reset();

  const CudaExtras* cuda_ = nullptr;
  void* graph_ = nullptr;  // CUgraph
  void* exec_ = nullptr;   // CUgraphExec
};

struct CudaDeviceInfo {
  int64_t l2_bytes = 0;
  int sm_count = 0;
  int sm_clock_khz = 0;    // peak SM clock
  int driver_version = 0;  // e.g. 13000
};

class CudaExtras {
 public:
  // The process-wide instance; Unavailable (naming what is missing) when libcuda.so.1
  // or one of the calls cannot be found.
  static absl::StatusOr<CudaExtras*> Get();

  absl::StatusOr<CudaDeviceInfo> DeviceInfo(int ordinal) const;

  // Relaxed capture mode: the runtime backend's cuCtxGetCurrent between launches is
  // fine in any mode, but relaxed also tolerates whatever another thread does meanwhile.
  absl::Status BeginCapture(StreamHandle stream) const;
  // Ends the capture and instantiates the graph. Call it even after a failure inside
  // the capture, or the stream stays in capture mode.
  absl::StatusOr<CudaGraph> EndCapture(StreamHandle stream) const;

 private:
  friend class CudaGraph;
  struct Api;
  explicit CudaExtras(const Api* api) : api_(api) {}
  absl::Status Check(int result, const char* call) const;

  const Api* api_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_ROPE_BENCH_CUDA_H_
