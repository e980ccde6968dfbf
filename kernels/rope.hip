// RoPE over one tensor [tokens, heads, head_dim] (rope_apply_*), and the machinery that
// position_embeddings.hip reuses for Q and K in one launch.
//
// Baked at compile time (-D): ROPE_DTYPE (0 f32, 1 f16, 2 bf16), ROPE_HEAD_DIM,
// ROPE_ROTARY_DIM, ROPE_STYLE (0 NeoX rotate-half, 1 interleaved), ROPE_SEGMENTS (1, or
// 2 for ChatGLM-v1 2D positions: each half of the rotary part has its own position),
// ROPE_VEC (elements per vector access; the host picks the widest that divides the
// pairing and fits 16 bytes).
//
// Thread mapping: thread g -> (token, head split, lane). A lane owns kPairs consecutive
// pairs of one segment, computes their cos/sin once and reuses them for every head it
// visits; the head_splits threads of one (token, lane) share the heads between them.
// The host picks head_splits so that decode fills the GPU (one thread per head) and
// prefill computes each cos/sin once per token.
//
// Accuracy: the phase pos * inv_freq is formed and reduced in float64 (a float32 phase
// loses ~1e-3 near position 32k and ~3e-2 near 1M); all other arithmetic is fp32
// whatever the storage dtype.
#include "kernels/rope_args.h"
#include "kernels/prelude.h"

#if !defined(ROPE_HEAD_DIM) || !defined(ROPE_ROTARY_DIM) || !defined(ROPE_STYLE) || \
    !defined(ROPE_SEGMENTS) || !defined(ROPE_VEC)
#error "ROPE_HEAD_DIM, ROPE_ROTARY_DIM, ROPE_STYLE, ROPE_SEGMENTS and ROPE_VEC must be defined"
#endif

#define ROPE_SEGMENT_DIM (ROPE_ROTARY_DIM / ROPE_SEGMENTS)
#define ROPE_SEGMENT_PAIRS (ROPE_SEGMENT_DIM / 2)
#define ROPE_THREADS_PER_BLOCK 256

// Elements per access in the path that makes no alignment promise.
#define ROPE_UNALIGNED_VEC (ROPE_STYLE == 0 ? 1 : 2)
// Heads whose loads are issued before the first rotation: keeps several independent
// memory requests in flight per thread.
#define ROPE_HEAD_UNROLL 4

template <int kVec>
struct RopeShape {
  static constexpr int kPairs = ROPE_STYLE == 0 ? kVec : kVec / 2;  // pairs per lane
  static constexpr int kLanesPerSegment = ROPE_SEGMENT_PAIRS / kPairs;
  static constexpr int kLanes = kLanesPerSegment * ROPE_SEGMENTS;
  static_assert(ROPE_SEGMENT_PAIRS % kPairs == 0, "vector width must divide the pairs");
  static_assert(ROPE_STYLE == 0 || kVec % 2 == 0, "interleaved pairs need an even width");
};

ROPE_DEVICE long long rope_position(const RopeLaunchArgs& a, long long token, int segment) {
  if (a.positions == nullptr) return a.position_offset + token;
  long long index = token * ROPE_SEGMENTS + segment;
  return a.positions_are_int64 ? static_cast<const long long*>(a.positions)[index]
                               : static_cast<const int*>(a.positions)[index];
}

// cos and sin of pos * inv_freq, scaled by the attention factor. The angle is reduced
// in float64 to r in [-pi/4, pi/4] and a quadrant; short Taylor polynomials (truncation
// < 3e-8 on that interval) finish in fp32. Unlike sincosf this has no slow path for huge
// arguments, so no stack frame and few registers.
ROPE_DEVICE void rope_cos_sin(long long pos, double inv_freq, float scale, float* c, float* s) {
  const double kTwoOverPi = 0.63661977236758134308;
  const double kPiOver2Hi = 1.5707963267948965580;     // pi/2 rounded to double
  const double kPiOver2Lo = 6.123233995736766036e-17;  // pi/2 - kPiOver2Hi
  const double angle = static_cast<double>(pos) * inv_freq;
  const double quarter_turns = rint(angle * kTwoOverPi);
  const float r = static_cast<float>(fma(-quarter_turns, kPiOver2Lo, fma(-quarter_turns, kPiOver2Hi, angle)));
  const float r2 = r * r;
  const float sin_r =
      r + r * r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880))));
  const float cos_r =
      1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320))));
  const int quadrant = static_cast<int>(static_cast<long long>(quarter_turns) & 3);
  const float sin_a = (quadrant & 1) ? cos_r : sin_r;
  const float cos_a = (quadrant & 1) ? sin_r : cos_r;
  *s = ((quadrant & 2) ? -sin_a : sin_a) * scale;
  *c = ((quadrant == 1 || quadrant == 2) ? -cos_a : cos_a) * scale;
}

template <int kTensors, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_apply_impl(const RopeLaunchArgs& a) {
  typedef RopeShape<kVec> Shape;
  constexpr int kPairs = Shape::kPairs;
  const long long g = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int lane = static_cast<int>(g % Shape::kLanes);
  const long long rest = g / Shape::kLanes;
  const int split = static_cast<int>(rest % a.head_splits);
  const long long token = rest / a.head_splits;
  if (token >= a.num_tokens) return;

  const int segment = lane / Shape::kLanesPerSegment;
  const int first_pair = (lane % Shape::kLanesPerSegment) * kPairs;
  const long long pos = rope_position(a, token, segment);
  if (a.error_flag != nullptr && (pos < 0 || pos >= a.max_position)) atomicOr(a.error_flag, 1);

  float c[kPairs], s[kPairs];
#pragma unroll
  for (int p = 0; p < kPairs; ++p) {
    rope_cos_sin(pos, a.inv_freq[first_pair + p], a.attention_factor, &c[p], &s[p]);
  }

  // NeoX: x[j] pairs with x[j + S/2]; this lane moves kVec elements from each half.
  // Interleaved: x[2j] pairs with x[2j+1]; this lane moves kVec elements = kPairs pairs.
  const int offset = segment * ROPE_SEGMENT_DIM + (ROPE_STYLE == 0 ? first_pair : 2 * first_pair);

  for (int h0 = split; h0 < a.total_heads; h0 += a.head_splits * ROPE_HEAD_UNROLL) {
    RopePacked<kVec> x[ROPE_HEAD_UNROLL];
    RopePacked<kVec> y[ROPE_HEAD_UNROLL];
    rope_elem* out[ROPE_HEAD_UNROLL];
#pragma unroll
    for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
      const int h = h0 + u * a.head_splits;
      out[u] = nullptr;
      if (h >= a.total_heads) continue;
      const int t = (kTensors == 2 && h >= a.tensors[0].num_heads) ? 1 : 0;
      const RopeTensorArgs& tensor = a.tensors[t];
      const int head = h - (t == 1 ? a.tensors[0].num_heads : 0);
      const rope_elem* in = static_cast<const rope_elem*>(tensor.in) +
                            token * tensor.in_token_stride + head * tensor.in_head_stride + offset;
      out[u] = static_cast<rope_elem*>(tensor.out) + token * tensor.out_token_stride +
               head * tensor.out_head_stride + offset;
      rope_load<kVec, kVectorAccess>(in, x[u]);
#if ROPE_STYLE == 0
      rope_load<kVec, kVectorAccess>(in + ROPE_SEGMENT_PAIRS, y[u]);
#endif
    }
#pragma unroll
    for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
      if (out[u] == nullptr) continue;
#if ROPE_STYLE == 0
      float rx[kVec], ry[kVec];
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        const float xp = rope_load_elem(x[u].e[p]), yp = rope_load_elem(y[u].e[p]);
        rx[p] = xp * c[p] - yp * s[p];
        ry[p] = yp * c[p] + xp * s[p];
      }
      rope_store<kVec, kVectorAccess>(out[u], rx);
      rope_store<kVec, kVectorAccess>(out[u] + ROPE_SEGMENT_PAIRS, ry);
#else
      float r[kVec];
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        const float xp = rope_load_elem(x[u].e[2 * p]), yp = rope_load_elem(x[u].e[2 * p + 1]);
        r[2 * p] = xp * c[p] - yp * s[p];
        r[2 * p + 1] = yp * c[p] + xp * s[p];
      }
      rope_store<kVec, kVectorAccess>(out[u], r);
#endif
    }
  }

#if ROPE_ROTARY_DIM < ROPE_HEAD_DIM
  // Out of place, the dims past rotary_dim are copied through; lanes share them.
  for (int h = split; h < a.total_heads; h += a.head_splits) {
    const int t = (kTensors == 2 && h >= a.tensors[0].num_heads) ? 1 : 0;
    const RopeTensorArgs& tensor = a.tensors[t];
    if (tensor.out == tensor.in) continue;
    const int head = h - (t == 1 ? a.tensors[0].num_heads : 0);
    const rope_elem* in =
        static_cast<const rope_elem*>(tensor.in) + token * tensor.in_token_stride + head * tensor.in_head_stride;
    rope_elem* out =
        static_cast<rope_elem*>(tensor.out) + token * tensor.out_token_stride + head * tensor.out_head_stride;
    for (int d = ROPE_ROTARY_DIM + lane; d < ROPE_HEAD_DIM; d += Shape::kLanes) out[d] = in[d];
  }
#endif
}

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_apply_aligned(RopeLaunchArgs args) {
  rope_apply_impl<1, ROPE_VEC, true>(args);
}

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_apply_unaligned(RopeLaunchArgs args) {
  rope_apply_impl<1, ROPE_UNALIGNED_VEC, false>(args);
}
