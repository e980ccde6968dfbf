#include "rope/rope.h"

#include <climits>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/rope_args.h"
#include "rope/tensor_checks.h"

namespace rope_jit {
namespace {

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// A view's name and its fields' names as literals: the checks below run on every apply,
// so no text is built unless one of them fails.
struct TensorName {
  const char* tensor;
  const char* token_stride;
  const char* head_stride;
  const char* data;
};
#define ROPE_TENSOR_NAME(n) TensorName{n, n ".token_stride", n ".head_stride", n ".data"}
constexpr TensorName kTensorNames[][2] = {{ROPE_TENSOR_NAME("x"), ROPE_TENSOR_NAME("x_out")},
                                          {ROPE_TENSOR_NAME("q"), ROPE_TENSOR_NAME("q_out")},
                                          {ROPE_TENSOR_NAME("k"), ROPE_TENSOR_NAME("k_out")}};
constexpr TensorName kVName = ROPE_TENSOR_NAME("v");
#undef ROPE_TENSOR_NAME
constexpr int kXNames = 0, kQNames = 1, kKNames = 2;

// Strides and the memory they span: no overlap, and every element offset the kernels
// form (rope_head_pointers in kernels/rope.hip) exact in 64 bits.
absl::Status ValidateTensorExtents(const TensorName& name, const DeviceTensor& t) {
  const StridedDim dims[] = {{name.token_stride, t.tokens, t.token_stride},
                             {name.head_stride, t.heads, t.head_stride}};
  ASSIGN_OR_RETURN(const int64_t last, LargestElementOffset(name.tensor, dims, t.head_dim));
  // Heads of a token and tokens must not overlap, or an in-place rotation would read
  // values another thread already rotated. With the whole view's offset in range, one
  // token's extent cannot overflow.
  if (t.heads > 1 && t.head_stride < t.head_dim) {
    return Invalid(absl::StrCat(name.head_stride, " = ", t.head_stride, " is less than head_dim ",
                                t.head_dim));
  }
  const int64_t token_extent = (t.heads - 1) * t.head_stride + t.head_dim;
  if (t.tokens > 1 && t.token_stride < token_extent) {
    return Invalid(absl::StrCat(name.token_stride, " = ", t.token_stride,
                                " is less than the extent of one token's heads, ", token_extent));
  }
  return CheckDeviceSpan(name.data, t.data, last, DTypeSize(t.dtype));
}

absl::Status ValidateTensor(const TensorName& name, const DeviceTensor& t,
                            const RopeConfig& config) {
  if (t.data == nullptr) return Invalid(absl::StrCat(name.data, " is null"));
  if (t.tokens < 0 || t.tokens > INT_MAX) {
    return Invalid(absl::StrCat(name.tensor, ".tokens = ", t.tokens, " is outside [0, 2^31)"));
  }
  if (t.heads < 1 || t.heads > (1 << 20)) {
    return Invalid(absl::StrCat(name.tensor, ".heads = ", t.heads, " is outside [1, 2^20]"));
  }
  if (t.head_dim != config.head_dim) {
    return Invalid(absl::StrCat(name.tensor, ".head_dim = ", t.head_dim,
                                " but the Rope was created for ", config.head_dim));
  }
  if (t.dtype != config.dtype) {
    return Invalid(absl::StrCat(name.tensor, ".dtype = ", DTypeName(t.dtype),
                                " but the Rope was created for ", DTypeName(config.dtype)));
  }
  return ValidateTensorExtents(name, t);
}

absl::Status ValidateOutput(const TensorName& name, const DeviceTensor& in,
                            const DeviceTensor& out, const RopeConfig& config) {
  RETURN_IF_ERROR(ValidateTensor(name, out, config));
  if (out.tokens != in.tokens || out.heads != in.heads) {
    return Invalid(absl::StrCat(name.tensor, " is [", out.tokens, ", ", out.heads, ", ",
                                out.head_dim, "] but its input is [", in.tokens, ", ", in.heads,
                                ", ", in.head_dim, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DevicePointer> UploadTable(DeviceRuntime& runtime, int device,
                                          const std::vector<double>& table) {
  const size_t bytes = table.size() * sizeof(double);
  ASSIGN_OR_RETURN(DevicePointer pointer, runtime.Allocate(device, bytes));
  absl::Status copied = runtime.CopyToDevice(device, pointer, table.data(), bytes);
  if (!copied.ok()) {
    runtime.Free(device, pointer).IgnoreError();
    return copied;
  }
  return pointer;
}

int PositionElementSize(const Positions& positions) {
  return positions.is_int64 ? sizeof(int64_t) : sizeof(int32_t);
}

// The kernel's view of one input tensor and its output.
RopeTensorArgs TensorArgs(const DeviceTensor& in, const DeviceTensor& out) {
  RopeTensorArgs t;
  std::memset(&t, 0, sizeof(t));
  t.in = in.data;
  t.out = out.data;
  t.in_token_stride = in.token_stride;
  t.in_head_stride = in.head_stride;
  t.out_token_stride = out.token_stride;
  t.out_head_stride = out.head_stride;
  t.num_heads = static_cast<int>(in.heads);
  return t;
}

// Checks `positions` against the config and the token count and fills the position
// fields of `args`. The largest element index must stay far from overflowing the
// kernel's 64-bit byte offsets.
absl::Status SetPositionArgs(const Positions& positions, const RopeConfig& config, int64_t tokens,
                             RopeLaunchArgs* args) {
  constexpr int64_t kMaxIndex = int64_t{1} << 56;
  const int columns = config.position_columns;
  if (positions.data == nullptr) {
    if (columns == 2) {
      return Invalid("positions: an offset gives one position per token, but this Rope takes "
                     "2 position columns (ChatGLM 2D); pass a position array");
    }
    // max_position - tokens cannot overflow (both are non-negative); offset + tokens can.
    if (positions.offset < 0 || positions.offset > config.max_position - tokens) {
      return Invalid(absl::StrCat("positions: offset ", positions.offset, " + ", tokens,
                                  " tokens is outside [0, max_position = ", config.max_position, "]"));
    }
  } else if (columns == 1) {
    if (positions.token_stride != 0 && positions.token_stride != 1) {
      return Invalid(absl::StrCat("positions.token_stride = ", positions.token_stride,
                                  ": one position column is a dense [tokens] array (0 or 1)"));
    }
    RETURN_IF_ERROR(CheckDeviceSpan("positions.data", positions.data, tokens - 1,
                                    PositionElementSize(positions)));
  } else {
    const int64_t token_stride = positions.token_stride == 0 ? columns : positions.token_stride;
    const int64_t column_stride = positions.column_stride == 0 ? 1 : positions.column_stride;
    if (token_stride < 1 || token_stride > kMaxIndex) {
      return Invalid(absl::StrCat("positions.token_stride = ", positions.token_stride,
                                  " is outside [0, 2^56]"));
    }
    if (column_stride < 1 || column_stride > kMaxIndex) {
      return Invalid(absl::StrCat("positions.column_stride = ", positions.column_stride,
                                  " is outside [0, 2^56]"));
    }
    // tokens < 2^31 and strides <= 2^56: the products below fit in 128 bits.
    const __int128 last = static_cast<__int128>(tokens > 0 ? tokens - 1 : 0) * token_stride +
                          static_cast<__int128>(columns - 1) * column_stride;
    if (last > kMaxIndex) {
      return Invalid(absl::StrCat("positions: the last element index, (tokens - 1) * ", token_stride,
                                  " + ", columns - 1, " * ", column_stride, ", exceeds 2^56"));
    }
    RETURN_IF_ERROR(CheckDeviceSpan("positions.data", positions.data,
                                    tokens == 0 ? -1 : static_cast<int64_t>(last),
                                    PositionElementSize(positions)));
    args->position_token_stride = token_stride;
    args->position_column_stride = column_stride;
  }
  args->positions = positions.data;
  args->positions_are_int64 = positions.is_int64 ? 1 : 0;
  args->position_offset = positions.offset;
  return absl::OkStatus();
}

absl::Status CheckKernelChoice(KernelChoice choice) {
  switch (choice) {
    case KernelChoice::kAuto:
    case KernelChoice::kVector:
    case KernelChoice::kNarrow:
      return absl::OkStatus();
  }
  return Invalid(absl::StrCat("options.kernel = ", static_cast<int>(choice),
                              " is not a KernelChoice value"));
}

// RopeLaunchArgs::launch_order (kernels/rope_args.h): decode-sized launches under PDL
// (kMaxDecodeOrderTokenHeads in kernel_specs.h) do work before the wait, and read their
// positions before it too when the caller promises that the kernel ahead did not write
// them. The narrow kernel takes the order inside; the vector kernels have the orders
// before the wait as entry points of their own (Kernel::aligned_early).
int LaunchOrder(const ApplyOptions& options, int64_t tokens, int total_heads) {
  if (!options.programmatic_dependent_launch ||
      tokens * total_heads > kMaxDecodeOrderTokenHeads) {
    return ROPE_ORDER_WAIT_FIRST;
  }
  return options.positions_not_written_by_prior_kernel ? ROPE_ORDER_POSITIONS_FIRST
                                                       : ROPE_ORDER_ADDRESSES_FIRST;
}

// The function one launch runs: the vector kernel (waiting first or not) or the narrow
// one, which reads RopeLaunchArgs::launch_order itself.
template <typename Kernel>
FunctionHandle LaunchedFunction(const Kernel& kernel, bool vector, int order) {
  if (!vector) return kernel.unaligned;
  return order == ROPE_ORDER_WAIT_FIRST ? kernel.aligned : kernel.aligned_early;
}

// The vector kernel for aligned views unless `choice` (or, for kAuto, the launch size)
// says the narrow one. `choice` has passed CheckKernelChoice.
bool UseVectorKernel(KernelChoice choice, bool aligned, const RopeConfig& config, int64_t tokens,
                     int total_heads) {
  if (choice == KernelChoice::kAuto) {
    return aligned && !PrefersNarrowKernel(config, tokens, total_heads);
  }
  return aligned && choice == KernelChoice::kVector;
}

bool IsAligned(const void* pointer, int64_t token_stride, int64_t head_stride, int64_t elements,
               int element_size) {
  const int64_t bytes = elements * element_size;
  return reinterpret_cast<uintptr_t>(pointer) % bytes == 0 && token_stride % elements == 0 &&
         head_stride % elements == 0;
}

absl::StatusOr<RopeLaunchShape> CheckedLaunchShape(const RopeConfig& config, RopeKernel kernel,
                                                   int64_t tokens, int total_heads, int width) {
  const RopeLaunchShape shape = ComputeLaunchShape(config, kernel, tokens, total_heads, width);
  // The kernels index threads in 32 bits.
  if (shape.blocks * RopeLaunchShape::kThreadsPerBlock > UINT32_MAX) {
    return Invalid(absl::StrCat("too many tokens for one launch: ", tokens));
  }
  return shape;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Rope>> Rope::Create(const RopeConfig& config, DeviceRuntime& runtime,
                                                   int device, KernelService& service) {
  RETURN_IF_ERROR(ValidateConfig(config));
  ASSIGN_OR_RETURN(int device_count, runtime.DeviceCount());
  if (device < 0 || device >= device_count) {
    return Invalid(absl::StrCat("device = ", device, " but ", device_count, " ",
                                VendorName(runtime.vendor()), " devices are present"));
  }
  ASSIGN_OR_RETURN(RopeFrequencies frequencies, ComputeFrequencies(config));
  std::unique_ptr<Rope> rope(new Rope(config, std::move(frequencies), runtime, device));

  // One thread per kernel: on a cold cache each is a compile, and the compilers run
  // side by side (hipRTC serializes itself), so Create costs about one compile, not three.
  constexpr size_t kKernels = sizeof(kAllRopeKernels) / sizeof(kAllRopeKernels[0]);
  Kernel* const kernels[kKernels] = {&rope->rope_, &rope->position_embeddings_, &rope->rope_kv_cache_};
  absl::Status statuses[kKernels];
  auto resolve = [&](size_t i) -> absl::Status {
    const RopeKernel which = kAllRopeKernels[i];
    ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(config, which, /*target=*/""));
    ASSIGN_OR_RETURN(kernels[i]->aligned,
                     service.GetFunction(spec, runtime, device, AlignedFunctionName(which)));
    ASSIGN_OR_RETURN(kernels[i]->unaligned,
                     service.GetFunction(spec, runtime, device, UnalignedFunctionName(which)));
    ASSIGN_OR_RETURN(kernels[i]->aligned_early,
                     service.GetFunction(spec, runtime, device, AlignedEarlyFunctionName(which)));
    return absl::OkStatus();
  };
  {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < kKernels; ++i) threads.emplace_back([&, i] { statuses[i] = resolve(i); });
    statuses[0] = resolve(0);
    for (std::thread& thread : threads) thread.join();
  }
  for (const absl::Status& status : statuses) RETURN_IF_ERROR(status);

  if (config.scaling.type != ScalingType::kLongrope) {
    ASSIGN_OR_RETURN(rope->inv_freq_, UploadTable(runtime, device, rope->frequencies_.inv_freq));
    return rope;
  }
  // Longrope: both lists' tables now, so that each apply can pick one for nothing.
  ASSIGN_OR_RETURN(RopeFrequencies short_freqs, ComputeFrequencies(config, LongropeFactors::kShort));
  ASSIGN_OR_RETURN(RopeFrequencies long_freqs, ComputeFrequencies(config, LongropeFactors::kLong));
  ASSIGN_OR_RETURN(rope->inv_freq_short_, UploadTable(runtime, device, short_freqs.inv_freq));
  ASSIGN_OR_RETURN(rope->inv_freq_long_, UploadTable(runtime, device, long_freqs.inv_freq));
  rope->inv_freq_ = rope->frequencies_.inv_freq == long_freqs.inv_freq ? rope->inv_freq_long_
                                                                      : rope->inv_freq_short_;
  return rope;
}

Rope::Rope(const RopeConfig& config, RopeFrequencies frequencies, DeviceRuntime& runtime, int device)
    : config_(config),
      frequencies_(std::move(frequencies)),
      runtime_(runtime),
      device_(device),
      vector_width_(VectorWidth(config)) {}

Rope::~Rope() {
  if (inv_freq_short_ != nullptr || inv_freq_long_ != nullptr) {
    // inv_freq_ is one of these two.
    if (inv_freq_short_ != nullptr) runtime_.Free(device_, inv_freq_short_).IgnoreError();
    if (inv_freq_long_ != nullptr) runtime_.Free(device_, inv_freq_long_).IgnoreError();
  } else if (inv_freq_ != nullptr) {
    runtime_.Free(device_, inv_freq_).IgnoreError();
  }
  if (position_error_ != nullptr) runtime_.Free(device_, position_error_).IgnoreError();
}

absl::Status Rope::EnableCheckedPositions() {
  if (position_error_ != nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(DevicePointer flag, runtime_.Allocate(device_, sizeof(int)));
  const int zero = 0;
  absl::Status copied = runtime_.CopyToDevice(device_, flag, &zero, sizeof(zero));
  if (!copied.ok()) {
    runtime_.Free(device_, flag).IgnoreError();
    return copied;
  }
  position_error_ = static_cast<int*>(flag);
  return absl::OkStatus();
}

absl::StatusOr<bool> Rope::TakePositionError(StreamHandle stream) {
  if (position_error_ == nullptr) {
    return absl::FailedPreconditionError("checked mode is off; call EnableCheckedPositions first");
  }
  RETURN_IF_ERROR(runtime_.SynchronizeStream(device_, stream));
  int flag = 0;
  RETURN_IF_ERROR(runtime_.CopyToHost(device_, &flag, position_error_, sizeof(flag)));
  const int zero = 0;
  RETURN_IF_ERROR(runtime_.CopyToDevice(device_, position_error_, &zero, sizeof(zero)));
  return flag != 0;
}

absl::Status Rope::ApplyQDevice(const DeviceTensor& q, const Positions& positions, StreamHandle stream,
                                const DeviceTensor* q_out, const ApplyOptions& options) const {
  const DeviceTensor* outs[1] = {q_out};
  return Launch(rope_, &q, outs, 1, positions, stream, options);
}

absl::Status Rope::ApplyKDevice(const DeviceTensor& k, const Positions& positions, StreamHandle stream,
                                const DeviceTensor* k_out, const ApplyOptions& options) const {
  const DeviceTensor* outs[1] = {k_out};
  return Launch(rope_, &k, outs, 1, positions, stream, options);
}

absl::Status Rope::ApplyPositionEmbeddingsDevice(const DeviceTensor& q, const DeviceTensor& k,
                                                 const Positions& positions, StreamHandle stream,
                                                 const DeviceTensor* q_out,
                                                 const DeviceTensor* k_out,
                                                 const ApplyOptions& options) const {
  if (q.tokens != k.tokens) {
    return Invalid(absl::StrCat("q.tokens = ", q.tokens, " but k.tokens = ", k.tokens));
  }
  const DeviceTensor tensors[2] = {q, k};
  const DeviceTensor* outs[2] = {q_out, k_out};
  return Launch(position_embeddings_, tensors, outs, 2, positions, stream, options);
}

absl::StatusOr<const double*> Rope::FrequencyTable(const ApplyOptions& options) const {
  switch (options.longrope) {
    case LongropeFactors::kForMaxPosition:
      return static_cast<const double*>(inv_freq_);
    case LongropeFactors::kShort:
    case LongropeFactors::kLong:
      if (config_.scaling.type != ScalingType::kLongrope) {
        return Invalid("options.longrope chooses a longrope factor list, but this Rope's "
                       "scaling is not longrope");
      }
      return static_cast<const double*>(
          options.longrope == LongropeFactors::kLong ? inv_freq_long_ : inv_freq_short_);
  }
  return Invalid(absl::StrCat("options.longrope = ", static_cast<int>(options.longrope),
                              " is not a LongropeFactors value"));
}

absl::Status Rope::Launch(const Kernel& kernel, const DeviceTensor* tensors, const DeviceTensor** outs,
                          int count, const Positions& positions, StreamHandle stream,
                          const ApplyOptions& options) const {
  RETURN_IF_ERROR(CheckKernelChoice(options.kernel));
  const bool single = count == 1;
  RopeLaunchArgs args;
  std::memset(&args, 0, sizeof(args));
  bool aligned = true;
  const int element_size = DTypeSize(config_.dtype);
  for (int i = 0; i < count; ++i) {
    const TensorName* names = kTensorNames[single ? kXNames : (i == 0 ? kQNames : kKNames)];
    const TensorName& in_name = names[0];
    const TensorName& out_name = names[1];
    const DeviceTensor& in = tensors[i];
    const DeviceTensor& out = outs[i] != nullptr ? *outs[i] : in;
    RETURN_IF_ERROR(ValidateTensor(in_name, in, config_));
    if (outs[i] != nullptr) {
      RETURN_IF_ERROR(ValidateOutput(out_name, in, out, config_));
    }
    aligned = aligned &&
              IsAligned(in.data, in.token_stride, in.head_stride, vector_width_, element_size) &&
              IsAligned(out.data, out.token_stride, out.head_stride, vector_width_, element_size);
    args.tensors[i] = TensorArgs(in, out);
    args.total_heads += args.tensors[i].num_heads;
  }
  const int64_t tokens = tensors[0].tokens;
  RETURN_IF_ERROR(SetPositionArgs(positions, config_, tokens, &args));
  ASSIGN_OR_RETURN(args.inv_freq, FrequencyTable(options));
  if (tokens == 0) return absl::OkStatus();

  args.error_flag = position_error_;
  args.max_position = config_.max_position;
  args.attention_factor = static_cast<float>(frequencies_.attention_factor);
  args.num_tokens = static_cast<int>(tokens);

  const bool vector = UseVectorKernel(options.kernel, aligned, config_, tokens, args.total_heads);
  const int width = vector ? vector_width_ : UnalignedVectorWidth(config_);
  const RopeKernel which = single ? RopeKernel::kRope : RopeKernel::kPositionEmbeddings;
  ASSIGN_OR_RETURN(const RopeLaunchShape shape,
                   CheckedLaunchShape(config_, which, tokens, args.total_heads, width));
  args.head_splits = shape.head_splits;
  args.launch_order = LaunchOrder(options, tokens, args.total_heads);

  void* params[] = {&args};
  LaunchOptions launch;
  launch.programmatic_dependent_launch = options.programmatic_dependent_launch;
  const FunctionHandle function = LaunchedFunction(kernel, vector, args.launch_order);
  return runtime_.LaunchWithOptions(device_, function,
                                    Dim3{static_cast<uint32_t>(shape.blocks), 1, 1},
                                    Dim3{RopeLaunchShape::kThreadsPerBlock, 1, 1},
                                    /*shared_bytes=*/0, stream, params, launch);
}

namespace {

// K, V, the slot mapping and the cache of a cache write, beyond what ValidateTensor checks.
absl::Status ValidateKvArguments(int64_t tokens, const DeviceTensor& k, const DeviceTensor& v,
                                 const int64_t* slot_mapping, const KvCacheView& cache) {
  if (k.tokens != tokens) return Invalid(absl::StrCat("k.tokens = ", k.tokens, " but q.tokens = ", tokens));
  if (v.tokens != k.tokens) {
    return Invalid(absl::StrCat("v.tokens = ", v.tokens, " but k.tokens = ", k.tokens));
  }
  if (k.heads != cache.kv_heads) {
    return Invalid(absl::StrCat("k.heads = ", k.heads, " but cache.kv_heads = ", cache.kv_heads));
  }
  if (v.heads != cache.kv_heads) {
    return Invalid(absl::StrCat("v.heads = ", v.heads, " but cache.kv_heads = ", cache.kv_heads));
  }
  if (slot_mapping == nullptr) return Invalid("slot_mapping is null (one int64 slot per token)");
  return absl::OkStatus();
}


}  // namespace

absl::Status Rope::ApplyAndCacheKvDevice(const DeviceTensor& q, const DeviceTensor& k,
                                         const DeviceTensor& v, const Positions& positions,
                                         const int64_t* slot_mapping, const KvCacheView& cache,
                                         StreamHandle stream, const DeviceTensor* q_out,
                                         const ApplyOptions& options) const {
  return LaunchKvCache(&q, q_out, k, v, positions, slot_mapping, cache, /*rotate=*/true, stream,
                       options);
}

absl::Status Rope::WriteKvCacheDevice(const DeviceTensor& k, const DeviceTensor& v,
                                      const int64_t* slot_mapping, const KvCacheView& cache,
                                      StreamHandle stream, const ApplyOptions& options) const {
  return LaunchKvCache(nullptr, nullptr, k, v, Positions::FromOffset(0), slot_mapping, cache,
                       /*rotate=*/false, stream, options);
}

absl::Status Rope::LaunchKvCache(const DeviceTensor* q, const DeviceTensor* q_out, const DeviceTensor& k,
                                 const DeviceTensor& v, const Positions& positions,
                                 const int64_t* slot_mapping, const KvCacheView& cache, bool rotate,
                                 StreamHandle stream, const ApplyOptions& options) const {
  RETURN_IF_ERROR(CheckKernelChoice(options.kernel));
  const int element_size = DTypeSize(config_.dtype);
  bool aligned = true;
  if (q != nullptr) {
    RETURN_IF_ERROR(ValidateTensor(kTensorNames[kQNames][0], *q, config_));
    if (q_out != nullptr) {
      RETURN_IF_ERROR(ValidateOutput(kTensorNames[kQNames][1], *q, *q_out, config_));
    }
    const DeviceTensor& out = q_out != nullptr ? *q_out : *q;
    aligned = IsAligned(q->data, q->token_stride, q->head_stride, vector_width_, element_size) &&
              IsAligned(out.data, out.token_stride, out.head_stride, vector_width_, element_size);
  }
  RETURN_IF_ERROR(ValidateTensor(kTensorNames[kKNames][0], k, config_));
  RETURN_IF_ERROR(ValidateTensor(kVName, v, config_));
  const int64_t tokens = q != nullptr ? q->tokens : k.tokens;
  RETURN_IF_ERROR(ValidateKvArguments(tokens, k, v, slot_mapping, cache));
  RETURN_IF_ERROR(ValidateKvCacheView(cache, config_).status());
  RopeKvCacheArgs args;
  std::memset(&args, 0, sizeof(args));
  if (rotate) {
    // Positions (MRoPE columns and strides included) and the frequency table exactly as
    // the other entry points take them.
    RETURN_IF_ERROR(SetPositionArgs(positions, config_, tokens, &args.rope));
    ASSIGN_OR_RETURN(args.rope.inv_freq, FrequencyTable(options));
  }
  if (tokens == 0) return absl::OkStatus();

  // Every cache offset is a multiple of head_dim plus a lane's offset into the head.
  const int cache_element_size = KvElementSize(cache.dtype, config_.dtype);
  aligned = aligned && config_.head_dim % vector_width_ == 0 &&
            IsAligned(k.data, k.token_stride, k.head_stride, vector_width_, element_size) &&
            IsAligned(v.data, v.token_stride, v.head_stride, vector_width_, element_size) &&
            IsAligned(cache.k, 0, 0, vector_width_, cache_element_size) &&
            IsAligned(cache.v, 0, 0, vector_width_, cache_element_size);

  if (q != nullptr) args.rope.tensors[0] = TensorArgs(*q, q_out != nullptr ? *q_out : *q);
  args.rope.tensors[1] = TensorArgs(k, k);  // K's output is the cache
  args.rope.total_heads = args.rope.tensors[0].num_heads + 2 * args.rope.tensors[1].num_heads;
  args.rope.error_flag = position_error_;
  args.rope.max_position = config_.max_position;
  args.rope.attention_factor = static_cast<float>(frequencies_.attention_factor);
  args.rope.num_tokens = static_cast<int>(tokens);
  args.v = v.data;
  args.v_token_stride = v.token_stride;
  args.v_head_stride = v.head_stride;
  args.k_cache = cache.k;
  args.v_cache = cache.v;
  args.slot_mapping = reinterpret_cast<const long long*>(slot_mapping);
  args.num_slots = cache.num_blocks * cache.block_size;  // no overflow: ValidateKvCacheView
  args.block_size = cache.block_size;
  const KvCacheStrides strides = CacheStrides(cache);
  args.cache_block_stride = strides.block;
  args.cache_slot_stride = strides.slot;
  args.cache_head_stride = strides.head;
  args.k_scale = cache.k_scale;
  args.v_scale = cache.v_scale;
  args.cache_dtype = cache.dtype == KvDType::kSame      ? ROPE_KV_SAME
                     : cache.dtype == KvDType::kFp8E4M3 ? ROPE_KV_FP8_E4M3
                                                        : ROPE_KV_FP8_E5M2;
  args.rotate = rotate ? 1 : 0;

  const bool vector =
      UseVectorKernel(options.kernel, aligned, config_, tokens, args.rope.total_heads);
  const int width = vector ? vector_width_ : UnalignedVectorWidth(config_);
  ASSIGN_OR_RETURN(const RopeLaunchShape shape,
                   CheckedLaunchShape(config_, RopeKernel::kRopeKvCache, tokens,
                                      args.rope.total_heads, width));
  args.rope.head_splits = shape.head_splits;
  args.rope.launch_order = LaunchOrder(options, tokens, args.rope.total_heads);

  void* params[] = {&args};
  LaunchOptions launch;
  launch.programmatic_dependent_launch = options.programmatic_dependent_launch;
  const FunctionHandle function = LaunchedFunction(rope_kv_cache_, vector, args.rope.launch_order);
  return runtime_.LaunchWithOptions(device_, function,
                                    Dim3{static_cast<uint32_t>(shape.blocks), 1, 1},
                                    Dim3{RopeLaunchShape::kThreadsPerBlock, 1, 1},
                                    /*shared_bytes=*/0, stream, params, launch);
}

}  // namespace rope_jit
