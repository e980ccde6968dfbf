#include "rope/kernel_specs.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "jit/status_macros.h"
#include "kernels/embedded.h"

namespace rope_jit {

const char* RopeKernelName(RopeKernel kernel) {
  return kernel == RopeKernel::kRope ? "rope" : "position_embeddings";
}

absl::StatusOr<RopeKernel> ParseRopeKernel(absl::string_view name) {
  if (name == "rope") return RopeKernel::kRope;
  if (name == "position_embeddings") return RopeKernel::kPositionEmbeddings;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown kernel '", name, "'; expected rope or position_embeddings"));
}

const char* AlignedFunctionName(RopeKernel kernel) {
  return kernel == RopeKernel::kRope ? "rope_apply_aligned" : "rope_qk_apply_aligned";
}

const char* UnalignedFunctionName(RopeKernel kernel) {
  return kernel == RopeKernel::kRope ? "rope_apply_unaligned" : "rope_qk_apply_unaligned";
}

int VectorWidth(const RopeConfig& config) {
  const int segment_pairs = config.SegmentDim() / 2;
  for (int width = 16 / DTypeSize(config.dtype); width >= 2; width /= 2) {
    const int pairs_per_lane = config.style == RopeStyle::kNeox ? width : width / 2;
    if (segment_pairs % pairs_per_lane == 0) return width;
  }
  return UnalignedVectorWidth(config);
}

int UnalignedVectorWidth(const RopeConfig& config) {
  return config.style == RopeStyle::kNeox ? 1 : 2;
}

int LanesPerHead(const RopeConfig& config, int vector_width) {
  const int pairs_per_lane = config.style == RopeStyle::kNeox ? vector_width : vector_width / 2;
  return config.position_columns * (config.SegmentDim() / 2 / pairs_per_lane);
}

RopeLaunchShape ComputeLaunchShape(const RopeConfig& config, int64_t tokens, int total_heads,
                                   int vector_width) {
  // Decode: too few (token, lane) pairs to keep a large GPU busy, so heads are split
  // across threads, down to one head per thread. Each split recomputes cos/sin; on an
  // H200, 32K threads did as well as 64K and 128K for decode and better for 4096-token
  // prefill with few heads (BENCHMARKS.md).
  constexpr int64_t kTargetThreads = 32 * 1024;
  // Prefill: a thread moves at most this many heads (a few of the kernel's double-
  // buffered batches of 4): enough to stream reads and writes within the thread, few
  // enough that blocks are short-lived and the partly filled last wave costs little.
  // cos/sin are recomputed once per split.
  constexpr int kHeadsPerThread = 16;
  RopeLaunchShape shape;
  const int64_t lanes = LanesPerHead(config, vector_width);
  if (tokens <= 0 || total_heads <= 0) return shape;
  const int64_t fill_splits = (kTargetThreads + tokens * lanes - 1) / (tokens * lanes);
  const int64_t batch_splits = (total_heads + kHeadsPerThread - 1) / kHeadsPerThread;
  shape.head_splits = static_cast<int>(std::clamp<int64_t>(std::max(fill_splits, batch_splits), 1, total_heads));
  const int64_t threads = tokens * lanes * shape.head_splits;
  shape.blocks = (threads + RopeLaunchShape::kThreadsPerBlock - 1) / RopeLaunchShape::kThreadsPerBlock;
  return shape;
}

absl::StatusOr<KernelSpec> RopeKernelSpec(const RopeConfig& config, RopeKernel kernel,
                                          absl::string_view target) {
  RETURN_IF_ERROR(ValidateConfig(config));
  ASSIGN_OR_RETURN(const EmbeddedKernelSource* source, FindKernelSource(RopeKernelName(kernel)));
  KernelSpec spec;
  spec.kernel = source->name;
  spec.source = source->text;
  spec.source_hash = source->hash;
  spec.target = std::string(target);
  // theta, scaling and max_position are not baked: they only change the uploaded
  // inv_freq table, so one code object serves every model with these shapes.
  spec.defines = {
      absl::StrCat("ROPE_DTYPE=", static_cast<int>(config.dtype)),
      absl::StrCat("ROPE_HEAD_DIM=", config.head_dim),
      absl::StrCat("ROPE_ROTARY_DIM=", config.EffectiveRotaryDim()),
      absl::StrCat("ROPE_STYLE=", static_cast<int>(config.style)),
      absl::StrCat("ROPE_SEGMENTS=", config.position_columns),
      absl::StrCat("ROPE_VEC=", VectorWidth(config)),
  };
  return spec;
}

}  // namespace rope_jit
