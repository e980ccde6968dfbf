#include "rope/rope.h"

#include <climits>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jit/status_macros.h"
#include "kernels/rope_args.h"
#include "rope/tensor_checks.h"

namespace rope_jit {
namespace {

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// Strides and the memory they span: no overlap, and every element offset the kernels
// form (rope_head_pointers in kernels/rope.hip) exact in 64 bits.
absl::Status ValidateTensorExtents(absl::string_view name, const DeviceTensor& t) {
  const std::string token_stride_name = absl::StrCat(name, ".token_stride");
  const std::string head_stride_name = absl::StrCat(name, ".head_stride");
  const StridedDim dims[] = {{token_stride_name, t.tokens, t.token_stride},
                             {head_stride_name, t.heads, t.head_stride}};
  ASSIGN_OR_RETURN(const int64_t last, LargestElementOffset(name, dims, t.head_dim));
  // Heads of a token and tokens must not overlap, or an in-place rotation would read
  // values another thread already rotated. With the whole view's offset in range, one
  // token's extent cannot overflow.
  if (t.heads > 1 && t.head_stride < t.head_dim) {
    return Invalid(absl::StrCat(head_stride_name, " = ", t.head_stride, " is less than head_dim ",
                                t.head_dim));
  }
  const int64_t token_extent = (t.heads - 1) * t.head_stride + t.head_dim;
  if (t.tokens > 1 && t.token_stride < token_extent) {
    return Invalid(absl::StrCat(token_stride_name, " = ", t.token_stride,
                                " is less than the extent of one token's heads, ", token_extent));
  }
  return CheckDeviceSpan(absl::StrCat(name, ".data"), t.data, last, DTypeSize(t.dtype));
}

absl::Status ValidateTensor(absl::string_view name, const DeviceTensor& t, const RopeConfig& config) {
  if (t.data == nullptr) return Invalid(absl::StrCat(name, ".data is null"));
  if (t.tokens < 0 || t.tokens > INT_MAX) {
    return Invalid(absl::StrCat(name, ".tokens = ", t.tokens, " is outside [0, 2^31)"));
  }
  if (t.heads < 1 || t.heads > (1 << 20)) {
    return Invalid(absl::StrCat(name, ".heads = ", t.heads, " is outside [1, 2^20]"));
  }
  if (t.head_dim != config.head_dim) {
    return Invalid(absl::StrCat(name, ".head_dim = ", t.head_dim, " but the Rope was created for ",
                                config.head_dim));
  }
  if (t.dtype != config.dtype) {
    return Invalid(absl::StrCat(name, ".dtype = ", DTypeName(t.dtype), " but the Rope was created for ",
                                DTypeName(config.dtype)));
  }
  return ValidateTensorExtents(name, t);
}

absl::Status ValidateOutput(absl::string_view name, const DeviceTensor& in, const DeviceTensor& out,
                            const RopeConfig& config) {
  RETURN_IF_ERROR(ValidateTensor(name, out, config));
  if (out.tokens != in.tokens || out.heads != in.heads) {
    return Invalid(absl::StrCat(name, " is [", out.tokens, ", ", out.heads, ", ", out.head_dim,
                                "] but its input is [", in.tokens, ", ", in.heads, ", ", in.head_dim,
                                "]"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePositions(const Positions& positions, int64_t tokens, const RopeConfig& config) {
  if (positions.data != nullptr) {
    const int element_size = positions.is_int64 ? sizeof(int64_t) : sizeof(int32_t);
    // The kernels read positions[token * position_columns + column]: tokens < 2^31 and
    // at most 2 columns keep that in range.
    return CheckDeviceSpan("positions.data", positions.data, -1, element_size);
  }
  if (config.position_columns != 1) {
    return Invalid("positions: an offset gives one position per token, but this Rope takes "
                   "2 position columns (ChatGLM 2D); pass a position array");
  }
  // max_position - tokens cannot overflow (both are non-negative); offset + tokens can.
  if (positions.offset < 0 || positions.offset > config.max_position - tokens) {
    return Invalid(absl::StrCat("positions: offset ", positions.offset, " + ", tokens,
                                " tokens is outside [0, max_position = ", config.max_position, "]"));
  }
  return absl::OkStatus();
}

bool IsAligned(const void* pointer, int64_t token_stride, int64_t head_stride, int64_t elements,
               int element_size) {
  const int64_t bytes = elements * element_size;
  return reinterpret_cast<uintptr_t>(pointer) % bytes == 0 && token_stride % elements == 0 &&
         head_stride % elements == 0;
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

  for (RopeKernel which : {RopeKernel::kRope, RopeKernel::kPositionEmbeddings}) {
    ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(config, which, /*target=*/""));
    Kernel& kernel = which == RopeKernel::kRope ? rope->rope_ : rope->position_embeddings_;
    ASSIGN_OR_RETURN(kernel.aligned, service.GetFunction(spec, runtime, device, AlignedFunctionName(which)));
    ASSIGN_OR_RETURN(kernel.unaligned,
                     service.GetFunction(spec, runtime, device, UnalignedFunctionName(which)));
  }

  const std::vector<double>& inv_freq = rope->frequencies_.inv_freq;
  const size_t bytes = inv_freq.size() * sizeof(double);
  ASSIGN_OR_RETURN(rope->inv_freq_, runtime.Allocate(device, bytes));
  RETURN_IF_ERROR(runtime.CopyToDevice(device, rope->inv_freq_, inv_freq.data(), bytes));
  return rope;
}

Rope::Rope(const RopeConfig& config, RopeFrequencies frequencies, DeviceRuntime& runtime, int device)
    : config_(config),
      frequencies_(std::move(frequencies)),
      runtime_(runtime),
      device_(device),
      vector_width_(VectorWidth(config)) {}

Rope::~Rope() {
  if (inv_freq_ != nullptr) runtime_.Free(device_, inv_freq_).IgnoreError();
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

absl::Status Rope::Launch(const Kernel& kernel, const DeviceTensor* tensors, const DeviceTensor** outs,
                          int count, const Positions& positions, StreamHandle stream,
                          const ApplyOptions& options) const {
  static constexpr const char* kNames[2][2] = {{"q", "q_out"}, {"k", "k_out"}};
  const bool single = count == 1;
  RopeLaunchArgs args;
  std::memset(&args, 0, sizeof(args));
  bool aligned = true;
  const int element_size = DTypeSize(config_.dtype);
  for (int i = 0; i < count; ++i) {
    const char* in_name = single ? "x" : kNames[i][0];
    const char* out_name = single ? "x_out" : kNames[i][1];
    const DeviceTensor& in = tensors[i];
    const DeviceTensor& out = outs[i] != nullptr ? *outs[i] : in;
    RETURN_IF_ERROR(ValidateTensor(in_name, in, config_));
    if (outs[i] != nullptr) {
      RETURN_IF_ERROR(ValidateOutput(out_name, in, out, config_));
    }
    aligned = aligned &&
              IsAligned(in.data, in.token_stride, in.head_stride, vector_width_, element_size) &&
              IsAligned(out.data, out.token_stride, out.head_stride, vector_width_, element_size);
    RopeTensorArgs& t = args.tensors[i];
    t.in = in.data;
    t.out = out.data;
    t.in_token_stride = in.token_stride;
    t.in_head_stride = in.head_stride;
    t.out_token_stride = out.token_stride;
    t.out_head_stride = out.head_stride;
    t.num_heads = static_cast<int>(in.heads);
    args.total_heads += t.num_heads;
  }
  const int64_t tokens = tensors[0].tokens;
  RETURN_IF_ERROR(ValidatePositions(positions, tokens, config_));
  if (tokens == 0) return absl::OkStatus();

  args.positions = positions.data;
  args.positions_are_int64 = positions.is_int64 ? 1 : 0;
  args.position_offset = positions.offset;
  args.inv_freq = static_cast<const double*>(inv_freq_);
  args.error_flag = position_error_;
  args.max_position = config_.max_position;
  args.attention_factor = static_cast<float>(frequencies_.attention_factor);
  args.num_tokens = static_cast<int>(tokens);

  const int width = aligned ? vector_width_ : UnalignedVectorWidth(config_);
  const RopeLaunchShape shape = ComputeLaunchShape(config_, tokens, args.total_heads, width);
  // The kernels index threads in 32 bits.
  if (shape.blocks * RopeLaunchShape::kThreadsPerBlock > UINT32_MAX) {
    return Invalid(absl::StrCat("too many tokens for one launch: ", tokens));
  }
  args.head_splits = shape.head_splits;

  void* params[] = {&args};
  LaunchOptions launch;
  launch.programmatic_dependent_launch = options.programmatic_dependent_launch;
  return runtime_.LaunchWithOptions(device_, aligned ? kernel.aligned : kernel.unaligned,
                                    Dim3{static_cast<uint32_t>(shape.blocks), 1, 1},
                                    Dim3{RopeLaunchShape::kThreadsPerBlock, 1, 1},
                                    /*shared_bytes=*/0, stream, params, launch);
}

}  // namespace rope_jit
