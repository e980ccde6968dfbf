// RoPE over Q and K in one launch (ApplyPositionEmbeddingsDevice): Q [tokens, q_heads,
// head_dim] and K [tokens, kv_heads, head_dim] with their own strides (views into one
// packed QKV buffer work), sharing each token's cos/sin. GQA/MQA is just different head
// counts. Same baked parameters as rope.hip.
#define ROPE_MACHINERY_ONLY 1
#include "kernels/rope.hip"

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_qk_apply_aligned(RopeLaunchArgs args) {
  RopeTensorHeads<2, false> heads{args};
  rope_apply<RopeTensorHeads<2, false>, ROPE_VEC, true>(heads);
}
ROPE_HOST_ENTRY(rope_qk_apply_aligned, RopeLaunchArgs)

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_qk_apply_unaligned(RopeLaunchArgs args) {
  RopeTensorHeads<2, true> heads{args};
  rope_apply<RopeTensorHeads<2, true>, ROPE_UNALIGNED_VEC, false>(heads);
}
ROPE_HOST_ENTRY(rope_qk_apply_unaligned, RopeLaunchArgs)

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_qk_apply_aligned_early(RopeLaunchArgs args) {
  RopeTensorHeads<2, true> heads{args};
  rope_vector_apply_early(heads);
}
ROPE_HOST_ENTRY(rope_qk_apply_aligned_early, RopeLaunchArgs)
