// One layer's paged KV cache as Rope::ApplyAndCacheKvDevice writes it (rope/rope.h): K and
// V each a contiguous device array of num_blocks blocks of block_size slots, in the Rope's
// dtype or in FP8.
//
//   KvCacheView cache;
//   cache.k = k_cache_ptr;  cache.v = v_cache_ptr;   // [blocks, block_size, heads, dim]
//   cache.num_blocks = 2048;  cache.block_size = 16;  cache.kv_heads = 8;  cache.head_dim = 128;
//   cache.dtype = KvDType::kFp8E4M3;
//   cache.k_scale = k_scale_ptr;  cache.v_scale = v_scale_ptr;   // device floats
//   RETURN_IF_ERROR(rope->ApplyAndCacheKvDevice(q, k, v, Positions::Int64(pos), slots, cache,
//                                               stream));
//
// Token t goes to slot s = slot_mapping[t]: block s / block_size, offset s % block_size. A
// negative slot is padding (nothing cached, Q still rotated); a slot at or past
// num_blocks * block_size is never written and raises the checked-mode flag
// (Rope::EnableCheckedPositions). block_size 1 with kNHD is a flat slot-indexed cache
// (SGLang's).
//
// FP8 formats are the OCP ones (rope/fp8.h): E4M3 "fn" (finite max 448, no infinities;
// not AMD MI300's "fnuz") and E5M2. stored = saturate(x / scale), rounded to nearest even;
// NaN stays NaN. The kernel multiplies by 1/scale in fp32, one fp32 rounding away from
// the division.
#ifndef ROPE_JIT_ROPE_KV_CACHE_H_
#define ROPE_JIT_ROPE_KV_CACHE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rope/config.h"

namespace rope_jit {

enum class KvLayout { kNHD, kHND };  // [blocks, block_size, heads, dim] / [blocks, heads, block_size, dim]
enum class KvDType { kSame, kFp8E4M3, kFp8E5M2 };  // kSame: the Rope's dtype

struct KvCacheView {
  void* k = nullptr;
  void* v = nullptr;  // contiguous in `layout`
  int64_t num_blocks = 0, block_size = 0, kv_heads = 0, head_dim = 0;
  KvLayout layout = KvLayout::kNHD;
  KvDType dtype = KvDType::kSame;
  const float* k_scale = nullptr;  // device scalars, FP8 only: stored = saturate(x / scale)
  const float* v_scale = nullptr;
};

const char* KvLayoutName(KvLayout layout);  // "NHD", "HND"
const char* KvDTypeName(KvDType dtype);     // "same", "fp8_e4m3", "fp8_e5m2"

// Bytes of one cache element: the Rope's dtype for kSame, else 1.
int KvElementSize(KvDType dtype, DType rope_dtype);

// Element strides of one cache (K or V) in its layout; the head_dim elements of one
// (block, slot, head) are contiguous.
struct KvCacheStrides {
  int64_t block = 0;
  int64_t slot = 0;
  int64_t head = 0;
};
KvCacheStrides CacheStrides(const KvCacheView& cache);

// Checks a view for a Rope created with `config`: InvalidArgument naming the field for
// null pointers, non-positive or mismatched extents, a size in bytes that overflows (or
// wraps the address space), an unknown layout or dtype, FP8 without both scales or
// scales without FP8, and K and V views that overlap. On success, the bytes of each of
// the K and V arrays.
absl::StatusOr<int64_t> ValidateKvCacheView(const KvCacheView& cache, const RopeConfig& config);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_KV_CACHE_H_
