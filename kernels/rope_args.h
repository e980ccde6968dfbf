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
  int reserved;
} RopeLaunchArgs;

#endif /* ROPE_JIT_KERNELS_ROPE_ARGS_H_ */
