/* Launch arguments shared by the host (rope/) and the .hip kernels in kernels/.
 *
 * Plain C layout with fixed-size members so host and device agree on every ABI this
 * project targets (x86-64 host; NVIDIA and AMD devices). The kernels take one
 * RopeLaunchArgs by value. Strides and offsets count elements, not bytes. */
#ifndef ROPE_JIT_KERNELS_ROPE_ARGS_H_
#define ROPE_JIT_KERNELS_ROPE_ARGS_H_

/* Heads one thread loads together (one batch); a thread keeps two batches in flight.
 * The host's launch shape (rope/kernel_specs.cc) is tuned for this value. */
#define ROPE_HEAD_UNROLL 2

/* Threads per block of every launch: the kernels' __launch_bounds__ and the host's grid
 * (RopeLaunchShape::kThreadsPerBlock in rope/kernel_specs.h is this value). */
#define ROPE_THREADS_PER_BLOCK 256

typedef struct RopeTensorArgs {
  const void* in;
  void* out; /* == in for in-place */
  long long in_token_stride;
  long long in_head_stride;
  long long out_token_stride;
  long long out_head_stride;
  int num_heads; /* 0: this tensor is absent */
  int reserved;
} RopeTensorArgs;

typedef struct RopeLaunchArgs {
  RopeTensorArgs tensors[2]; /* Q, then K (position_embeddings); one tensor for rope */
  const void* positions;     /* null: offset + token (every column) */
  long long position_offset;
  /* Element (token t, column c) of `positions` is at t * position_token_stride +
   * c * position_column_stride (more than one column only; one column is [tokens]). */
  long long position_token_stride;
  long long position_column_stride;
  const double* inv_freq;    /* one per pair of a segment, float64, uploaded once */
  int* error_flag;           /* checked mode: set when a position is out of range */
  long long max_position;
  float attention_factor;    /* scales cos and sin */
  int positions_are_int64;
  int num_tokens;
  int head_splits;           /* threads sharing one (token, lane): they split the heads */
  int total_heads;           /* tensors[0].num_heads + tensors[1].num_heads */
  /* ROPE_ORDER_*: what a thread does before waiting for the prior kernel. Read by the
   * narrow kernel and by the vector kernels' decode entry points (*_aligned_early); the
   * default vector kernels always wait first. */
  int launch_order;
} RopeLaunchArgs;

/* RopeLaunchArgs::launch_order. Under programmatic dependent launch a kernel may start
 * before the kernel ahead of it has finished and waits for it before its first read of
 * anything that kernel may have written. */
#define ROPE_ORDER_WAIT_FIRST 0      /* the wait, then everything (plain launches, prefill) */
#define ROPE_ORDER_ADDRESSES_FIRST 1 /* the first heads' addresses (launch arguments alone),
                                        then the wait (decode-sized launches under PDL) */
#define ROPE_ORDER_POSITIONS_FIRST 2 /* those, positions, inv_freq, the slot mapping and the
                                        cos/sin, then the wait: only the head loads wait
                                        (ApplyOptions::positions_not_written_by_prior_kernel) */

/* Cache element formats of RopeKvCacheArgs::cache_dtype (rope/kv_cache.h, KvDType). */
#define ROPE_KV_SAME 0     /* the Rope's dtype (ROPE_DTYPE) */
#define ROPE_KV_FP8_E4M3 1 /* OCP E4M3 "fn" */
#define ROPE_KV_FP8_E5M2 2 /* OCP E5M2 */

/* rope_kv_cache.hip: Q rotated into rope.tensors[0].out; K (rope.tensors[1].in) rotated
 * and V copied into a paged cache at slot_mapping[token]; k and v are never written.
 * rope.total_heads = q heads + 2 * kv heads. A cache element of head h at slot s is at
 * (s / block_size) * cache_block_stride + (s % block_size) * cache_slot_stride
 * + h * cache_head_stride (elements of the cache's format), for 0 <= s < num_slots. */
typedef struct RopeKvCacheArgs {
  RopeLaunchArgs rope;
  const void* v;
  long long v_token_stride;
  long long v_head_stride;
  void* k_cache;
  void* v_cache;
  const long long* slot_mapping; /* one per token; < 0: padding, not written */
  long long num_slots;           /* num_blocks * block_size; slots at or past it: flagged */
  long long block_size;
  long long cache_block_stride;
  long long cache_slot_stride;
  long long cache_head_stride;
  const float* k_scale; /* FP8: stored = saturate(x / scale); device scalars */
  const float* v_scale;
  int cache_dtype;      /* ROPE_KV_* */
  int rotate;           /* 0: K and V stored as given and no Q (a cache write alone) */
} RopeKvCacheArgs;

#endif /* ROPE_JIT_KERNELS_ROPE_ARGS_H_ */
