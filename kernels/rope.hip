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
// The host picks head_splits (rope/kernel_specs.cc) so that decode spreads over the GPU
// (down to one thread per head) and a prefill thread moves 4 to 8 heads, in
// double-buffered batches of ROPE_HEAD_UNROLL (kernels/rope_args.h).
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
// arguments, so no stack frame and few registers. The nearest quarter turn comes from
// the 1.5 * 2^52 rounding trick (its low mantissa bits are the integer), which avoids a
// float64 round and a float64-to-integer conversion per pair.
ROPE_DEVICE void rope_cos_sin(double pos, double inv_freq, float scale, float* c, float* s) {
  const double kTwoOverPi = 0.63661977236758134308;
  const double kPiOver2Hi = 1.5707963267948965580;     // pi/2 rounded to double
  const double kPiOver2Lo = 6.123233995736766036e-17;  // pi/2 - kPiOver2Hi
  const double kRoundingShift = 6755399441055744.0;    // 1.5 * 2^52
  const double angle = pos * inv_freq;
  const double shifted = fma(angle, kTwoOverPi, kRoundingShift);
  const double quarter_turns = shifted - kRoundingShift;
  const int quadrant = __double2loint(shifted) & 3;
  const float r = static_cast<float>(fma(-quarter_turns, kPiOver2Lo, fma(-quarter_turns, kPiOver2Hi, angle)));
  const float r2 = r * r;
  const float sin_r =
      r + r * r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880))));
  const float cos_r =
      1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320))));
  const float sin_a = (quadrant & 1) ? cos_r : sin_r;
  const float cos_a = (quadrant & 1) ? sin_r : cos_r;
  *s = ((quadrant & 2) ? -sin_a : sin_a) * scale;
  *c = ((quadrant == 1 || quadrant == 2) ? -cos_a : cos_a) * scale;
}

// Where head h of `token` lives: its input and output, `offset` elements into the head.
template <int kTensors>
ROPE_DEVICE void rope_head_pointers(const RopeLaunchArgs& a, long long token, int h, int offset,
                                    const rope_elem** in, rope_elem** out) {
  const int t = (kTensors == 2 && h >= a.tensors[0].num_heads) ? 1 : 0;
  const RopeTensorArgs& tensor = a.tensors[t];
  const long long head = h - (t == 1 ? a.tensors[0].num_heads : 0);
  *in = static_cast<const rope_elem*>(tensor.in) + token * tensor.in_token_stride +
        head * tensor.in_head_stride + offset;
  *out = static_cast<rope_elem*>(tensor.out) + token * tensor.out_token_stride +
         head * tensor.out_head_stride + offset;
}

// The heads h0, h0 + splits, ... (ROPE_HEAD_UNROLL of them) that one thread moves at a
// time, held in storage format between load and store. Output pointers are recomputed
// at store time: holding them would cost two registers per head.
template <int kVec>
struct RopeBatch {
  RopePacked<kVec> x[ROPE_HEAD_UNROLL];
  RopePacked<kVec> y[ROPE_HEAD_UNROLL];  // NeoX: the partner half; unused when interleaved
};

template <int kTensors, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_load_batch(const RopeLaunchArgs& a, long long token, int h0, int offset,
                                 RopeBatch<kVec>& b) {
#pragma unroll
  for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
    const int h = h0 + u * a.head_splits;
    if (h >= a.total_heads) break;
    const rope_elem* in;
    rope_elem* out;
    rope_head_pointers<kTensors>(a, token, h, offset, &in, &out);
    rope_load<kVec, kVectorAccess>(in, b.x[u]);
#if ROPE_STYLE == 0
    rope_load<kVec, kVectorAccess>(in + ROPE_SEGMENT_PAIRS, b.y[u]);
#endif
  }
}

// Rotates and stores a loaded batch. Both elements of every pair were read (by this
// thread) before either is written, so in-place calls are race-free.
template <int kTensors, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_rotate_batch(const RopeLaunchArgs& a, long long token, int h0, int offset,
                                   const RopeBatch<kVec>& b, const float* c, const float* s) {
  constexpr int kPairs = RopeShape<kVec>::kPairs;
#pragma unroll
  for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
    const int h = h0 + u * a.head_splits;
    if (h >= a.total_heads) break;
    const rope_elem* in;
    rope_elem* out;
    rope_head_pointers<kTensors>(a, token, h, offset, &in, &out);
#if ROPE_STYLE == 0
    float rx[kVec], ry[kVec];
#pragma unroll
    for (int p = 0; p < kPairs; ++p) {
      const float xp = rope_load_elem(b.x[u].e[p]), yp = rope_load_elem(b.y[u].e[p]);
      rx[p] = xp * c[p] - yp * s[p];
      ry[p] = yp * c[p] + xp * s[p];
    }
    rope_store<kVec, kVectorAccess>(out, rx);
    rope_store<kVec, kVectorAccess>(out + ROPE_SEGMENT_PAIRS, ry);
#else
    float r[kVec];
#pragma unroll
    for (int p = 0; p < kPairs; ++p) {
      const float xp = rope_load_elem(b.x[u].e[2 * p]), yp = rope_load_elem(b.x[u].e[2 * p + 1]);
      r[2 * p] = xp * c[p] - yp * s[p];
      r[2 * p + 1] = yp * c[p] + xp * s[p];
    }
    rope_store<kVec, kVectorAccess>(out, r);
#endif
  }
}

template <int kTensors, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_apply_impl(const RopeLaunchArgs& a) {
  typedef RopeShape<kVec> Shape;
  constexpr int kPairs = Shape::kPairs;
  // 32-bit index math (the host keeps a launch under 2^32 threads): 64-bit division by
  // the run-time head_splits would sit on the decode latency path.
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = static_cast<int>(g % Shape::kLanes);
  const unsigned rest = g / Shape::kLanes;
  const int split = static_cast<int>(rest % static_cast<unsigned>(a.head_splits));
  const long long token = rest / static_cast<unsigned>(a.head_splits);
  if (token >= a.num_tokens) return;
  rope_wait_for_prior_grid();
  rope_release_dependent_grid();

  const int segment = lane / Shape::kLanesPerSegment;
  const int first_pair = (lane % Shape::kLanesPerSegment) * kPairs;
  // NeoX: x[j] pairs with x[j + S/2]; this lane moves kVec elements from each half.
  // Interleaved: x[2j] pairs with x[2j+1]; this lane moves kVec elements = kPairs pairs.
  const int offset = segment * ROPE_SEGMENT_DIM + (ROPE_STYLE == 0 ? first_pair : 2 * first_pair);

  // Every load that does not depend on the position goes out first: the first heads and
  // this lane's inv_freq. Their latency then overlaps the position load and the cos/sin
  // math. inv_freq is read here on purpose: left where it is used, the compiler keeps
  // the loads behind the checked-mode atomicOr (which might alias them), one more
  // dependent memory round trip on every thread's path.
  RopeBatch<kVec> current;
  rope_load_batch<kTensors, kVec, kVectorAccess>(a, token, split, offset, current);

  double inv_freq[kPairs];
#pragma unroll
  for (int p = 0; p < kPairs; ++p) inv_freq[p] = a.inv_freq[first_pair + p];

  const long long pos = rope_position(a, token, segment);
  if (a.error_flag != nullptr && (pos < 0 || pos >= a.max_position)) atomicOr(a.error_flag, 1);
  const double pos_d = static_cast<double>(pos);
  float c[kPairs], s[kPairs];
#pragma unroll
  for (int p = 0; p < kPairs; ++p) {
    rope_cos_sin(pos_d, inv_freq[p], a.attention_factor, &c[p], &s[p]);
  }

  // Double-buffered: the next batch's loads are in flight while this one is rotated and
  // stored, so each thread keeps reads and writes overlapping (one load phase then one
  // store phase per thread leaves the memory system idle half the time at mid sizes).
  const int step = a.head_splits * ROPE_HEAD_UNROLL;
  for (int h0 = split;; h0 += step) {
    RopeBatch<kVec> next;
    const bool more = h0 + step < a.total_heads;
    if (more) rope_load_batch<kTensors, kVec, kVectorAccess>(a, token, h0 + step, offset, next);
    rope_rotate_batch<kTensors, kVec, kVectorAccess>(a, token, h0, offset, current, c, s);
    if (!more) break;
    current = next;
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
ROPE_HOST_ENTRY(rope_apply_aligned, RopeLaunchArgs)

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_apply_unaligned(RopeLaunchArgs args) {
  rope_apply_impl<1, ROPE_UNALIGNED_VEC, false>(args);
}
ROPE_HOST_ENTRY(rope_apply_unaligned, RopeLaunchArgs)
