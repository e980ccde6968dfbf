// The device apply API: rotary position embeddings on device tensors, asynchronously on
// the caller's stream.
//
//   RopeConfig config;                       // head_dim 128, bf16, NeoX, theta 1e4
//   ASSIGN_OR_RETURN(std::unique_ptr<Rope> rope, Rope::Create(config, runtime, /*device=*/0));
//   DeviceTensor q{q_ptr, tokens, 32, 128, /*token_stride=*/(32 + 2 * 8) * 128,
//                  /*head_stride=*/128, DType::kBF16};        // a view into packed QKV
//   DeviceTensor k{k_ptr, tokens, 8, 128, (32 + 2 * 8) * 128, 128, DType::kBF16};
//   RETURN_IF_ERROR(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::Int64(pos_ptr), stream));
//
// Create does the host math in float64 once, uploads the inv_freq table once and
// resolves its kernels through the kernel service (compiling at most once per machine).
// Per apply: validation, then one launch; no allocation, no host-device copy, no
// synchronization, no compile. Any invalid argument returns InvalidArgument naming the
// value and nothing is launched. One Rope per device; a Rope may be used from several
// threads at once.
//
// `runtime` may also be the host backend, RuntimeForVendor(Vendor::kHost) (jit/backends.h):
// the same kernels compiled by the system C++ compiler and run on CPU threads over host
// memory, for tests and CI without a GPU. There every apply has finished when it returns
// (launches are synchronous) and `stream` is ignored. AnyDeviceRuntime() never returns it.
#ifndef ROPE_JIT_ROPE_ROPE_H_
#define ROPE_JIT_ROPE_ROPE_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jit/device_runtime.h"
#include "jit/kernel_service.h"
#include "rope/config.h"
#include "rope/kernel_specs.h"
#include "rope/kv_cache.h"

namespace rope_jit {

// A [tokens, heads, head_dim] device tensor; the last dimension is contiguous. Strides
// count elements.
struct DeviceTensor {
  void* data = nullptr;
  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t token_stride = 0;
  int64_t head_stride = 0;
  DType dtype = DType::kBF16;

  // A dense [tokens, heads, head_dim] tensor.
  static DeviceTensor Contiguous(void* data, int64_t tokens, int64_t heads, int64_t head_dim,
                                 DType dtype) {
    return DeviceTensor{data, tokens, heads, head_dim, heads * head_dim, head_dim, dtype};
  }
};

// Positions of the tokens: a device array of int32 or int64 with RopeConfig::
// position_columns per token, or `offset + token index` (the same for every column: one
// position per token, or MRoPE text-only tokens; not ChatGLM-v1's 2D positions).
//
// With more than one column, element (token t, column c) is at t * token_stride +
// c * column_stride; 0 for both means token-major [tokens, columns]. The HF / vLLM MRoPE
// layout position_ids[3, tokens] is column-major: ColumnMajor(tokens) (or the row pitch of
// a larger buffer). One column is always a dense [tokens] array.
struct Positions {
  const void* data = nullptr;
  bool is_int64 = false;
  int64_t offset = 0;
  int64_t token_stride = 0;   // elements; 0: position_columns (token-major)
  int64_t column_stride = 0;  // elements; 0: 1 (token-major)

  static Positions Int32(const int32_t* device_data) { return {device_data, false, 0}; }
  static Positions Int64(const int64_t* device_data) { return {device_data, true, 0}; }
  static Positions FromOffset(int64_t offset) { return {nullptr, false, offset}; }
  // [columns, rows] with rows >= tokens: token stride 1, columns `row_pitch` apart.
  Positions ColumnMajor(int64_t row_pitch) const {
    Positions positions = *this;
    positions.token_stride = 1;
    positions.column_stride = row_pitch;
    return positions;
  }
};

// ApplyOptions::kernel.
enum class KernelChoice { kAuto, kVector, kNarrow };

// Per-call choices of an apply; the defaults are what a plain call does.
struct ApplyOptions {
  // Longrope (Phi-3) only: the factor list of this call. HF uses long_factor when the
  // sequence is longer than original_max_position_embeddings and short_factor otherwise
  // (LongropeFactorsForSequence in rope/config.h applies that rule to a length; vLLM
  // decides it per batch). Both tables are on the device from Create, so switching costs
  // nothing. kForMaxPosition: the list for max_position (frequencies()); kShort / kLong
  // on a Rope without longrope scaling is InvalidArgument.
  LongropeFactors longrope = LongropeFactors::kForMaxPosition;

  // Launch with programmatic dependent launch (NVIDIA Hopper and later; see LaunchOptions
  // in jit/device_runtime.h): the kernel may begin while the previous kernel on `stream`
  // finishes and waits for it on the device, which hides most of the launch gap between
  // dependent kernels, e.g. a decode step's layers captured in a CUDA graph. The result is
  // the same either way; elsewhere the launch is a plain one. The kernel also lets the
  // next kernel on the stream begin launching early: that kernel must itself wait for its
  // inputs (any kernel not launched with the attribute does). A decode-sized launch (at
  // most 1024 tokens x heads) forms its first addresses before its wait.
  bool programmatic_dependent_launch = false;

  // With programmatic_dependent_launch: the caller's promise that the positions (and the
  // slot mapping of a cache write) were not written by the kernel this launch overlaps,
  // e.g. one positions array written once per decode step, before the layers, as
  // engines do. The kernel then reads them and computes cos/sin while that kernel
  // finishes, and only Q/K (and V) wait for it (BENCHMARKS.md: 0.02-0.7 us less a decode
  // step on an H200). Wrong if the kernel ahead does write them (it would read stale
  // positions); off by default. Taken only by decode-sized launches (at most 1024
  // tokens x heads), where it measured faster; no effect without
  // programmatic_dependent_launch, nor on GPUs that do not take it.
  bool positions_not_written_by_prior_kernel = false;

  // Which kernel runs views aligned for vector accesses: kAuto picks by launch size (the
  // narrow kernel for small NeoX launches, PrefersNarrowKernel in rope/kernel_specs.h);
  // kVector and kNarrow force one, for an engine that tunes per shape on its own card and
  // for tests that check both kernels at any size. Views that are not aligned always
  // take the narrow kernel. Every choice computes the same result.
  KernelChoice kernel = KernelChoice::kAuto;
};

class Rope {
 public:
  static absl::StatusOr<std::unique_ptr<Rope>> Create(
      const RopeConfig& config, DeviceRuntime& runtime, int device,
      KernelService& service = KernelService::Default());
  ~Rope();
  Rope(const Rope&) = delete;
  Rope& operator=(const Rope&) = delete;

  // In place when the output is null, else into `*out` (same shape and dtype; its own
  // strides). Dims past rotary_dim are left alone in place and copied out of place.
  absl::Status ApplyQDevice(const DeviceTensor& q, const Positions& positions, StreamHandle stream,
                            const DeviceTensor* q_out = nullptr,
                            const ApplyOptions& options = {}) const;
  absl::Status ApplyKDevice(const DeviceTensor& k, const Positions& positions, StreamHandle stream,
                            const DeviceTensor* k_out = nullptr,
                            const ApplyOptions& options = {}) const;
  // Q and K in one launch; K may have fewer heads (GQA/MQA).
  absl::Status ApplyPositionEmbeddingsDevice(const DeviceTensor& q, const DeviceTensor& k,
                                             const Positions& positions, StreamHandle stream,
                                             const DeviceTensor* q_out = nullptr,
                                             const DeviceTensor* k_out = nullptr,
                                             const ApplyOptions& options = {}) const;

  // Q rotated (in place, or into `*q_out`), K rotated and V copied into `cache` at each
  // token's slot (rope/kv_cache.h), in one launch; `k` and `v` are not written. K and V
  // have cache.kv_heads heads; V has its own strides (a view into packed QKV works).
  // slot_mapping: device int64, one per token; a negative slot skips that token's cache
  // write, a slot past the cache's end is never written (checked mode flags it).
  absl::Status ApplyAndCacheKvDevice(const DeviceTensor& q, const DeviceTensor& k,
                                     const DeviceTensor& v, const Positions& positions,
                                     const int64_t* slot_mapping,  // device, one per token
                                     const KvCacheView& cache, StreamHandle stream,
                                     const DeviceTensor* q_out = nullptr,
                                     const ApplyOptions& options = {}) const;
  // K and V stored into `cache` as given, with no rotation: the cache write of an unfused
  // path (rotate with ApplyPositionEmbeddingsDevice first). Same slot semantics.
  absl::Status WriteKvCacheDevice(const DeviceTensor& k, const DeviceTensor& v,
                                  const int64_t* slot_mapping, const KvCacheView& cache,
                                  StreamHandle stream, const ApplyOptions& options = {}) const;

  // Checked mode: launches also flag any position outside [0, max_position) on the
  // device, and any KV-cache slot past the cache's end. TakePositionError synchronizes
  // `stream`, returns whether a flag was raised since the last call, and clears it. Off by
  // default (it costs a device allocation).
  absl::Status EnableCheckedPositions();
  absl::StatusOr<bool> TakePositionError(StreamHandle stream);

  const RopeConfig& config() const { return config_; }
  const RopeFrequencies& frequencies() const { return frequencies_; }
  int device() const { return device_; }

 private:
  struct Kernel {  // the functions of one module
    FunctionHandle aligned = nullptr;
    FunctionHandle unaligned = nullptr;
    FunctionHandle aligned_early = nullptr;  // the vector kernel working before the wait (decode, PDL)
  };

  Rope(const RopeConfig& config, RopeFrequencies frequencies, DeviceRuntime& runtime, int device);
  absl::Status Launch(const Kernel& kernel, const DeviceTensor* tensors, const DeviceTensor** outs,
                      int count, const Positions& positions, StreamHandle stream,
                      const ApplyOptions& options) const;
  // The frequency table an apply uses: inv_freq_, or for longrope the list it asks for.
  absl::StatusOr<const double*> FrequencyTable(const ApplyOptions& options) const;
  // q and q_out are null for a cache write alone (rotate = false).
  absl::Status LaunchKvCache(const DeviceTensor* q, const DeviceTensor* q_out, const DeviceTensor& k,
                             const DeviceTensor& v, const Positions& positions,
                             const int64_t* slot_mapping, const KvCacheView& cache, bool rotate,
                             StreamHandle stream, const ApplyOptions& options) const;

  const RopeConfig config_;
  const RopeFrequencies frequencies_;
  DeviceRuntime& runtime_;
  const int device_;
  const int vector_width_;
  DevicePointer inv_freq_ = nullptr;  // float64, uploaded once at Create
  // Longrope: both lists' tables (inv_freq_ is one of them); null otherwise.
  DevicePointer inv_freq_short_ = nullptr;
  DevicePointer inv_freq_long_ = nullptr;
  int* position_error_ = nullptr;     // checked mode flag
  Kernel rope_;
  Kernel position_embeddings_;
  Kernel rope_kv_cache_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_ROPE_H_
