#include "rope/kernel_specs.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/embedded.h"
#include "kernels/rope_args.h"  // ROPE_HEAD_UNROLL

namespace rope_jit {

const char* RopeKernelName(RopeKernel kernel) {
  switch (kernel) {
    case RopeKernel::kRope: return "rope";
    case RopeKernel::kPositionEmbeddings: return "position_embeddings";
    case RopeKernel::kRopeKvCache: return "rope_kv_cache";
  }
  return "?";
}

absl::StatusOr<RopeKernel> ParseRopeKernel(absl::string_view name) {
  for (RopeKernel kernel : kAllRopeKernels) {
    if (name == RopeKernelName(kernel)) return kernel;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown kernel '", name, "'; expected rope, position_embeddings or rope_kv_cache"));
}

const char* AlignedFunctionName(RopeKernel kernel) {
  switch (kernel) {
    case RopeKernel::kRope: return "rope_apply_aligned";
    case RopeKernel::kPositionEmbeddings: return "rope_qk_apply_aligned";
    case RopeKernel::kRopeKvCache: return "rope_kv_cache_aligned";
  }
  return "?";
}

const char* AlignedEarlyFunctionName(RopeKernel kernel) {
  switch (kernel) {
    case RopeKernel::kRope: return "rope_apply_aligned_early";
    case RopeKernel::kPositionEmbeddings: return "rope_qk_apply_aligned_early";
    case RopeKernel::kRopeKvCache: return "rope_kv_cache_aligned_early";
  }
  return "?";
}

const char* UnalignedFunctionName(RopeKernel kernel) {
  switch (kernel) {
    case RopeKernel::kRope: return "rope_apply_unaligned";
    case RopeKernel::kPositionEmbeddings: return "rope_qk_apply_unaligned";
    case RopeKernel::kRopeKvCache: return "rope_kv_cache_unaligned";
  }
  return "?";
}

namespace {

// NeoX with 16-bit elements moves 8 bytes (4 pairs) per access, not 16: the vector kernel
// then needs 48 registers instead of 74 (5 blocks of 256 threads an SM instead of 3) for
// the same cos/sin work per pair. Measured on an H200 against 16 bytes in the same call
// (BENCHMARKS.md; benchmarks/h200-ab-e255fba, ab4: f16 and bf16, head_dim 64-256):
// 4096-token rows 1.06-1.63x -> 1.04-1.54x a copy; 32768-token rows 1.007-1.118x ->
// 1.012-1.107x, every row faster but 32q/8kv hd256 (1.007-1.012x -> 1.012-1.017x); 64
// tokens in a CUDA graph with PDL 2.07 -> 1.85 us (32q/8kv hd128). Interleaved 16-bit
// lost at 8 bytes (1.03x -> 1.22x at 32768 tokens, ab3; not profiled), so it keeps 16, as
// f32 does.
bool UsesHalfWidthVectors(const RopeConfig& config) {
  return config.style == RopeStyle::kNeox && DTypeSize(config.dtype) == 2;
}

// Prefill: bandwidth-bound; a thread moves a few heads so that its cos/sin (and its
// position and inv_freq loads) serve several heads. Measured on an H200 (BENCHMARKS.md),
// 32768 tokens: with 32q/8kv, 4 heads a thread gave 1.01-1.05x copy (8 heads: up to
// 1.08x); with 8q/1kv, 8 heads gave up to 1.11x (4 heads: up to 1.15x). The fused
// KV-cache kernel with 8-byte vectors does best with 8 (same call as VectorWidth's
// figures, 32q/8kv + V, bf16 cache, 32768 tokens: 1.062x copy against 1.146x with 4;
// 1.087x at 16 bytes and 4 heads before).
int PrefillHeadsPerThread(const RopeConfig& config, RopeKernel kernel, int total_heads) {
  if (kernel == RopeKernel::kRopeKvCache && UsesHalfWidthVectors(config)) return 8;
  return total_heads >= 16 ? 4 : 8;
}

}  // namespace

int VectorWidth(const RopeConfig& config) {
  const int segment_pairs = config.SegmentDim() / 2;
  const int access_bytes = UsesHalfWidthVectors(config) ? 8 : 16;
  for (int width = access_bytes / DTypeSize(config.dtype); width >= 2; width /= 2) {
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
  return config.Segments() * (config.SegmentDim() / 2 / pairs_per_lane);
}

RopeLaunchShape ComputeLaunchShape(const RopeConfig& config, RopeKernel kernel, int64_t tokens,
                                   int total_heads, int vector_width) {
  // Few (token, lane) pairs (decode, short prompts): the kernel is latency-bound, so heads
  // are split across threads until about this many threads run, down to one head per
  // thread, and no thread needs more than one batch of ROPE_HEAD_UNROLL heads (a second
  // batch is a second memory round trip on the critical path).
  constexpr int64_t kTargetThreads = 32 * 1024;
  const int heads_per_thread = PrefillHeadsPerThread(config, kernel, total_heads);
  RopeLaunchShape shape;
  const int64_t lanes = LanesPerHead(config, vector_width);
  if (tokens <= 0 || total_heads <= 0) return shape;
  const int64_t fill_splits = (kTargetThreads + tokens * lanes - 1) / (tokens * lanes);
  const int64_t batch_splits = (total_heads + heads_per_thread - 1) / heads_per_thread;
  const int64_t one_batch_splits = (total_heads + ROPE_HEAD_UNROLL - 1) / ROPE_HEAD_UNROLL;
  const int64_t splits =
      fill_splits > batch_splits ? std::max(fill_splits, one_batch_splits) : batch_splits;
  shape.head_splits = static_cast<int>(std::clamp<int64_t>(splits, 1, total_heads));
  const int64_t threads = tokens * lanes * shape.head_splits;
  shape.blocks = (threads + RopeLaunchShape::kThreadsPerBlock - 1) / RopeLaunchShape::kThreadsPerBlock;
  return shape;
}

bool PrefersNarrowKernel(const RopeConfig& config, int64_t tokens, int total_heads) {
  // A NeoX vector-kernel thread computes the cos/sin of 4 pairs one after another; in a
  // launch too small to fill the GPU that chain is the kernel's time, and spreading the
  // pairs over 4x the threads shortens it. The narrow kernel wins while its thread count
  // (one per token, head and pair) stays under a limit. Measured on an H200 (BENCHMARKS.md,
  // b45d58b; rope_bench's "narrow us" and "vector us" columns, timed in the same row; 1, 8
  // and 64 tokens):
  //  - NeoX, 16-bit: against the 16-byte vector kernel (8 pairs a thread) the narrow one
  //    won in every row up to 81920 threads, by 0.02-0.75 us (1 token 32q/8kv hd128: 2.44
  //    vs 2.86 us). Against the 8-byte one (VectorWidth) the limit is 48K (ab4 in
  //    benchmarks/h200-ab-e255fba, same call as 96K and 24K): 64 tokens 32q/8kv hd64
  //    (81920 threads) then takes the vector kernel, 1.77 -> 1.63 us a step in a CUDA
  //    graph with PDL, and 8q/1kv hd256 (73728) 1.69 -> 1.62 us; 24K lost at 8q/1kv hd128
  //    (36864 threads: 1.56 -> 1.61 us);
  //  - NeoX, f32: won by up to 0.21 us at 576-20480 threads (lost once, by 0.15 us at
  //    288: 1 token 8q/1kv hd64);
  //  - interleaved: never won by more than 0.02 us and lost by up to 0.35 us (its narrow
  //    kernel moves elements one at a time, and the vector kernel only has 2-4 pairs
  //    a thread), so interleaved launches always take the vector kernel.
  if (tokens <= 0 || total_heads <= 0 || config.style == RopeStyle::kInterleaved) return false;
  const int64_t limit = DTypeSize(config.dtype) == 2 ? 48 * 1024 : 32 * 1024;
  const int64_t lanes = LanesPerHead(config, UnalignedVectorWidth(config));
  // tokens < 2^31, total_heads <= 2^21, lanes <= 2^16: the product fits in 64 bits.
  return tokens * total_heads * lanes <= limit;
}

namespace {

// Only MRoPE specs carry these, so every other spec (and its cache key) is as before.
void AddMropeDefines(const RopeConfig& config, std::vector<std::string>* defines) {
  if (!config.IsMrope()) return;
  defines->push_back(absl::StrCat("ROPE_MROPE=", config.mrope_interleaved ? 2 : 1));
  for (int c = 0; c < 3; ++c) {
    defines->push_back(absl::StrCat("ROPE_MROPE_S", c, "=", config.mrope_section[c]));
  }
}

}  // namespace

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
      absl::StrCat("ROPE_SEGMENTS=", config.Segments()),
      absl::StrCat("ROPE_VEC=", VectorWidth(config)),
  };
  AddMropeDefines(config, &spec.defines);
  return spec;
}

}  // namespace rope_jit
