// The kernels a RopeConfig needs, as KernelSpecs: the one place that turns a config into
// baked parameters, shared by Rope::Create, tools/jit_warm and the tests.
//
//   ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(config, RopeKernel::kPositionEmbeddings, "sm_90"));
#ifndef ROPE_JIT_ROPE_KERNEL_SPECS_H_
#define ROPE_JIT_ROPE_KERNEL_SPECS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/kernel_spec.h"
#include "kernels/rope_args.h"
#include "rope/config.h"

namespace rope_jit {

// kRopeKvCache: RoPE with the KV-cache write fused in (kernels/rope_kv_cache.hip).
enum class RopeKernel { kRope, kPositionEmbeddings, kRopeKvCache };
// "rope", "position_embeddings", "rope_kv_cache"
const char* RopeKernelName(RopeKernel kernel);
absl::StatusOr<RopeKernel> ParseRopeKernel(absl::string_view name);
// Every kernel, in the order above: what Rope::Create, jit_warm and AOT builds cover.
inline constexpr RopeKernel kAllRopeKernels[] = {RopeKernel::kRope, RopeKernel::kPositionEmbeddings,
                                                 RopeKernel::kRopeKvCache};

// Function names inside each module: the vector path needs pointers and strides aligned
// to VectorWidth() elements; the other path makes no alignment assumption.
const char* AlignedFunctionName(RopeKernel kernel);
const char* UnalignedFunctionName(RopeKernel kernel);
// The vector path for the orders that work before waiting for the kernel ahead
// (ROPE_ORDER_ADDRESSES_FIRST, ROPE_ORDER_POSITIONS_FIRST); the narrow path takes every
// order inside.
const char* AlignedEarlyFunctionName(RopeKernel kernel);

// Elements per vector access: the widest power of two that fits 16 bytes (8 for NeoX with
// 16-bit elements) and divides the pairing (NeoX: the pairs of a segment; interleaved:
// an even count).
int VectorWidth(const RopeConfig& config);
// Elements per access of the unaligned path.
int UnalignedVectorWidth(const RopeConfig& config);
// Threads per (token, head): one per vector-wide group of pairs.
int LanesPerHead(const RopeConfig& config, int vector_width);

// The grid of one launch: threads are (token, head split, lane); the kernels take
// kThreadsPerBlock threads per block (their __launch_bounds__).
struct RopeLaunchShape {
  static constexpr int kThreadsPerBlock = ROPE_THREADS_PER_BLOCK;  // kernels/rope_args.h
  int head_splits = 1;  // threads sharing one (token, lane); they split the heads
  int64_t blocks = 0;
};
RopeLaunchShape ComputeLaunchShape(const RopeConfig& config, RopeKernel kernel, int64_t tokens,
                                   int total_heads, int vector_width);

// Whether a launch this small (decode, a few tokens) runs faster on the narrow kernel (the
// unaligned one: one NeoX pair a thread) than on the vector kernel, even when the data is
// aligned for vector accesses. Never for interleaved configs.
bool PrefersNarrowKernel(const RopeConfig& config, int64_t tokens, int total_heads);

// Launches of at most this many tokens x heads under PDL do work before waiting for the
// kernel ahead (RopeLaunchArgs::launch_order): they form their first heads' addresses
// first, and with ApplyOptions::positions_not_written_by_prior_kernel also read their
// positions. Only a launch that overlaps the kernel ahead of it has anything to gain, and
// only a small one gains from the positions: measured on an H200 in CUDA graphs of
// dependent launches with PDL (BENCHMARKS.md), 1-8 tokens and 64 tokens with 8q/1kv (up to
// 576 token-heads) took 0.02-0.2 us less a step, 64 tokens with 32q/8kv (2560) 0.1-0.2 us
// more.
inline constexpr int64_t kMaxDecodeOrderTokenHeads = 1024;

// Validates `config` and returns the spec; `target` may be empty (filled per device).
absl::StatusOr<KernelSpec> RopeKernelSpec(const RopeConfig& config, RopeKernel kernel,
                                          absl::string_view target);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_KERNEL_SPECS_H_
