// RoPE over one tensor [tokens, heads, head_dim] (rope_apply_*), and the machinery that
// position_embeddings.hip reuses for Q and K in one launch.
//
// Baked at compile time (-D): ROPE_DTYPE (0 f32, 1 f16, 2 bf16), ROPE_HEAD_DIM,
// ROPE_ROTARY_DIM, ROPE_STYLE (0 NeoX rotate-half, 1 interleaved), ROPE_SEGMENTS (1, or
// 2 for ChatGLM-v1 2D positions: each half of the rotary part has its own position),
// ROPE_VEC (elements per vector access; the host picks the widest that divides the
// pairing and fits 16 bytes, or 8 for NeoX with 16-bit elements). MRoPE
// (RopeConfig::mrope_section) adds ROPE_MROPE (1 contiguous sections, 2 interleaved) and
// the section sizes ROPE_MROPE_S0/S1/S2; without them ROPE_MROPE is 0 and nothing below
// changes.
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

#ifndef ROPE_MROPE
#define ROPE_MROPE 0
#endif
#if ROPE_MROPE != 0 && (!defined(ROPE_MROPE_S0) || !defined(ROPE_MROPE_S1) || !defined(ROPE_MROPE_S2))
#error "ROPE_MROPE needs ROPE_MROPE_S0, ROPE_MROPE_S1 and ROPE_MROPE_S2"
#endif
#define ROPE_POSITION_COLUMNS (ROPE_MROPE != 0 ? 3 : ROPE_SEGMENTS)

#define ROPE_SEGMENT_DIM (ROPE_ROTARY_DIM / ROPE_SEGMENTS)
#define ROPE_SEGMENT_PAIRS (ROPE_SEGMENT_DIM / 2)

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

ROPE_DEVICE long long rope_position(const RopeLaunchArgs& a, long long token, int column) {
  if (a.positions == nullptr) return a.position_offset + token;
#if ROPE_POSITION_COLUMNS == 1
  const long long index = token;
#else
  const long long index = token * a.position_token_stride + column * a.position_column_stride;
#endif
  return a.positions_are_int64 ? static_cast<const long long*>(a.positions)[index]
                               : static_cast<const int*>(a.positions)[index];
}

// Checked mode: a position outside [0, max_position) raises the flag, at once, or with
// kDefer (rope_apply_impl's early order, where no write may come before the wait) by
// setting *deferred for the caller to raise after its wait.
template <bool kDefer>
ROPE_DEVICE void rope_check_position(const RopeLaunchArgs& a, long long pos, bool* deferred) {
  const bool out_of_range = a.error_flag != nullptr && (pos < 0 || pos >= a.max_position);
  if (kDefer) {
    *deferred = *deferred || out_of_range;
  } else if (out_of_range) {
    atomicOr(a.error_flag, 1);
  }
}

// The positions a lane's pairs are rotated by: at(pair) for pair index `pair` of the
// lane's segment. One position per lane, except for MRoPE, where each frequency takes the
// position column its section names (loaded once per lane, selected per pair).
#if ROPE_MROPE == 0
struct RopeLanePositions {
  double pos;
  ROPE_DEVICE double at(int /*pair*/) const { return pos; }
};

template <bool kDefer>
ROPE_DEVICE RopeLanePositions rope_lane_positions(const RopeLaunchArgs& a, long long token,
                                                  int segment, bool* deferred) {
  const long long pos = rope_position(a, token, segment);
  rope_check_position<kDefer>(a, pos, deferred);
  RopeLanePositions positions;
  positions.pos = static_cast<double>(pos);
  return positions;
}
#else
// The column of frequency `pair` (RopeConfig::MropeColumn): contiguous sections, or
// Qwen3-VL's interleaving (height on pairs 1, 4, ..., width on 2, 5, ..., each up to 3x
// its section).
ROPE_DEVICE int rope_mrope_column(int pair) {
#if ROPE_MROPE == 1
  return pair < ROPE_MROPE_S0 ? 0 : (pair < ROPE_MROPE_S0 + ROPE_MROPE_S1 ? 1 : 2);
#else
  const int phase = pair % 3;
  if (phase == 1 && pair < 3 * ROPE_MROPE_S1) return 1;
  if (phase == 2 && pair < 3 * ROPE_MROPE_S2) return 2;
  return 0;
#endif
}

struct RopeLanePositions {
  double column0, column1, column2;  // selects, not an indexed array: no stack frame
  ROPE_DEVICE double at(int pair) const {
    const int column = rope_mrope_column(pair);
    return column == 0 ? column0 : (column == 1 ? column1 : column2);
  }
};

template <bool kDefer>
ROPE_DEVICE RopeLanePositions rope_lane_positions(const RopeLaunchArgs& a, long long token,
                                                  int /*segment*/, bool* deferred) {
  const long long t = rope_position(a, token, 0);
  const long long h = rope_position(a, token, 1);
  const long long w = rope_position(a, token, 2);
  rope_check_position<kDefer>(a, t, deferred);
  rope_check_position<kDefer>(a, h, deferred);
  rope_check_position<kDefer>(a, w, deferred);
  RopeLanePositions positions;
  positions.column0 = static_cast<double>(t);
  positions.column1 = static_cast<double>(h);
  positions.column2 = static_cast<double>(w);
  return positions;
}
#endif

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
// kSelectFields: each field is read from both tensors at its fixed offset and one value
// selected. Indexing the parameter by tensor (a.tensors[t]) is a parameter load from a
// register address on NVIDIA (ld.param [reg]), a constant-cache round trip in front of a
// head's first load, on decode's critical path: selecting took a 1-token NeoX step in a
// CUDA graph from 1.78 to 1.72 us (H200, bf16 hd128 32q/8kv, narrow kernel). It holds both
// tensors' fields in registers, though (48 -> 56 in the QK vector kernel: 32768 tokens
// went 163 -> 168 us), so the default vector kernel keeps the index.
struct RopeHeadPointers {
  const rope_elem* in;
  rope_elem* out;
};

template <int kTensors, bool kSelectFields>
ROPE_DEVICE RopeHeadPointers rope_head_pointers(const RopeLaunchArgs& a, long long token, int h,
                                                int offset) {
  const RopeTensorArgs& first = a.tensors[0];
  const bool in_second = kTensors == 2 && h >= first.num_heads;
  RopeHeadPointers p;
  if (kSelectFields) {
    const long long head = in_second ? h - first.num_heads : h;
    const RopeTensorArgs& second = a.tensors[kTensors - 1];
    const void* in = in_second ? second.in : first.in;
    void* out = in_second ? second.out : first.out;
    const long long in_token_stride = in_second ? second.in_token_stride : first.in_token_stride;
    const long long in_head_stride = in_second ? second.in_head_stride : first.in_head_stride;
    const long long out_token_stride = in_second ? second.out_token_stride : first.out_token_stride;
    const long long out_head_stride = in_second ? second.out_head_stride : first.out_head_stride;
    p.in = static_cast<const rope_elem*>(in) + token * in_token_stride + head * in_head_stride + offset;
    p.out = static_cast<rope_elem*>(out) + token * out_token_stride + head * out_head_stride + offset;
  } else {
    const RopeTensorArgs& tensor = a.tensors[in_second ? 1 : 0];
    const long long head = h - (in_second ? first.num_heads : 0);
    p.in = static_cast<const rope_elem*>(tensor.in) + token * tensor.in_token_stride +
           head * tensor.in_head_stride + offset;
    p.out = static_cast<rope_elem*>(tensor.out) + token * tensor.out_token_stride +
            head * tensor.out_head_stride + offset;
  }
  return p;
}

// Which heads a launch moves and where each one lives: rope_apply_impl is written against
// this interface, so that a kernel with other destinations (rope_kv_cache.hip) reuses the
// thread mapping, the position and cos/sin math and the batching unchanged.
//   const RopeLaunchArgs& launch() const;
//   bool rotates_any() const;           false: no head is rotated, no cos/sin needed
//   void begin_token(long long token);  per-token loads, issued with the position load
//   bool token_out_of_range() const;    raises the checked-mode flag
//   const rope_elem* input(long long token, int h, int offset) const;
//   bool rotates(int h) const;
//   store_rotated<kVec, kVectorAccess>(token, h, offset, const RopeRotated<kVec>&) const;
//   store_unrotated<kVec, kVectorAccess>(token, h, offset, const RopePacked<kVec>& x,
//                                        const RopePacked<kVec>& y) const;
//   copy_pass_through(token, h, lane, lanes) const;   dims past rotary_dim
template <int kVec>
struct RopeRotated {
  float x[kVec];
  float y[kVec];  // NeoX: the partner half; unused when interleaved
};

// Q and/or K rotated from their input tensors into their output tensors (rope.hip,
// position_embeddings.hip); kSelectFields as in rope_head_pointers.
template <int kTensors, bool kSelectFields>
struct RopeTensorHeads {
  ROPE_HELD_ARGS(RopeLaunchArgs) a;  // see the prelude

  ROPE_DEVICE const RopeLaunchArgs& launch() const { return a; }
  ROPE_DEVICE bool rotates_any() const { return true; }
  ROPE_DEVICE void begin_token(long long) {}
  ROPE_DEVICE bool token_out_of_range() const { return false; }
  ROPE_DEVICE bool rotates(int) const { return true; }

  ROPE_DEVICE const rope_elem* input(long long token, int h, int offset) const {
    return rope_head_pointers<kTensors, kSelectFields>(a, token, h, offset).in;
  }

  template <int kVec, bool kVectorAccess>
  ROPE_DEVICE void store_rotated(long long token, int h, int offset, const RopeRotated<kVec>& r) const {
    rope_elem* out = rope_head_pointers<kTensors, kSelectFields>(a, token, h, offset).out;
    rope_store<kVec, kVectorAccess>(out, r.x);
#if ROPE_STYLE == 0
    rope_store<kVec, kVectorAccess>(out + ROPE_SEGMENT_PAIRS, r.y);
#endif
  }

  template <int kVec, bool kVectorAccess>
  ROPE_DEVICE void store_unrotated(long long, int, int, const RopePacked<kVec>&,
                                   const RopePacked<kVec>&) const {}

  // Out of place, the dims past rotary_dim are copied through; lanes share them.
  ROPE_DEVICE void copy_pass_through(long long token, int h, int lane, int lanes) const {
    const bool in_second = kTensors == 2 && h >= a.tensors[0].num_heads;
    const RopeTensorArgs& first = a.tensors[0];
    const RopeTensorArgs& second = a.tensors[kTensors - 1];
    if (in_second ? second.out == second.in : first.out == first.in) return;
    const RopeHeadPointers p = rope_head_pointers<kTensors, kSelectFields>(a, token, h, 0);
    for (int d = ROPE_ROTARY_DIM + lane; d < ROPE_HEAD_DIM; d += lanes) p.out[d] = p.in[d];
  }
};

// The heads h0, h0 + splits, ... (ROPE_HEAD_UNROLL of them) that one thread moves at a
// time, held in storage format between load and store. Output pointers are recomputed
// at store time: holding them would cost two registers per head.
template <int kVec>
struct RopeBatch {
  RopePacked<kVec> x[ROPE_HEAD_UNROLL];
  RopePacked<kVec> y[ROPE_HEAD_UNROLL];  // NeoX: the partner half; unused when interleaved
};

// One head's elements of this lane: kVec from x and, NeoX, kVec from the partner half.
template <int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_load_head(const rope_elem* in, RopeBatch<kVec>& b, int u) {
  rope_load<kVec, kVectorAccess>(in, b.x[u]);
#if ROPE_STYLE == 0
  rope_load<kVec, kVectorAccess>(in + ROPE_SEGMENT_PAIRS, b.y[u]);
#endif
}

template <class Heads, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_load_batch(const Heads& heads, long long token, int h0, int offset,
                                 RopeBatch<kVec>& b) {
  const RopeLaunchArgs& a = heads.launch();
#pragma unroll
  for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
    const int h = h0 + u * a.head_splits;
    if (h >= a.total_heads) break;
    rope_load_head<kVec, kVectorAccess>(heads.input(token, h, offset), b, u);
  }
}

// A batch's input addresses, formed ahead of its loads (null past the last head): the
// early order forms them before the wait, from launch arguments alone.
struct RopeBatchInputs {
  const rope_elem* in[ROPE_HEAD_UNROLL];
};

template <class Heads>
ROPE_DEVICE RopeBatchInputs rope_batch_inputs(const Heads& heads, long long token, int h0, int offset) {
  const RopeLaunchArgs& a = heads.launch();
  RopeBatchInputs inputs;
#pragma unroll
  for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
    const int h = h0 + u * a.head_splits;
    inputs.in[u] = h < a.total_heads ? heads.input(token, h, offset) : nullptr;
  }
  return inputs;
}

template <int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_load_inputs(const RopeBatchInputs& inputs, RopeBatch<kVec>& b) {
#pragma unroll
  for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
    if (inputs.in[u] == nullptr) break;
    rope_load_head<kVec, kVectorAccess>(inputs.in[u], b, u);
  }
}

// One head's lane elements rotated by this lane's cos/sin, in fp32.
template <int kVec>
ROPE_DEVICE RopeRotated<kVec> rope_rotate(const RopePacked<kVec>& x, const RopePacked<kVec>& y,
                                          const float* c, const float* s) {
  constexpr int kPairs = RopeShape<kVec>::kPairs;
  RopeRotated<kVec> r;
#if ROPE_STYLE == 0
#pragma unroll
  for (int p = 0; p < kPairs; ++p) {
    const float xp = rope_load_elem(x.e[p]), yp = rope_load_elem(y.e[p]);
    r.x[p] = xp * c[p] - yp * s[p];
    r.y[p] = yp * c[p] + xp * s[p];
  }
#else
#pragma unroll
  for (int p = 0; p < kPairs; ++p) {
    const float xp = rope_load_elem(x.e[2 * p]), yp = rope_load_elem(x.e[2 * p + 1]);
    r.x[2 * p] = xp * c[p] - yp * s[p];
    r.x[2 * p + 1] = yp * c[p] + xp * s[p];
  }
#endif
  return r;
}

// Rotates and stores a loaded batch. Both elements of every pair were read (by this
// thread) before either is written, so in-place calls are race-free.
template <class Heads, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_rotate_batch(const Heads& heads, long long token, int h0, int offset,
                                   const RopeBatch<kVec>& b, const float* c, const float* s) {
  const RopeLaunchArgs& a = heads.launch();
#pragma unroll
  for (int u = 0; u < ROPE_HEAD_UNROLL; ++u) {
    const int h = h0 + u * a.head_splits;
    if (h >= a.total_heads) break;
    if (heads.rotates(h)) {
      heads.template store_rotated<kVec, kVectorAccess>(token, h, offset,
                                                        rope_rotate<kVec>(b.x[u], b.y[u], c, s));
    } else {
      heads.template store_unrotated<kVec, kVectorAccess>(token, h, offset, b.x[u], b.y[u]);
    }
  }
}

template <class Heads, int kVec, bool kVectorAccess, int kOrder>
ROPE_DEVICE void rope_apply_impl(Heads& heads) {
  const RopeLaunchArgs& a = heads.launch();
  typedef RopeShape<kVec> Shape;
  constexpr int kPairs = Shape::kPairs;
  constexpr bool kEarly = kOrder == ROPE_ORDER_POSITIONS_FIRST;
  // 32-bit index math (the host keeps a launch under 2^32 threads): 64-bit division by
  // the run-time head_splits would sit on the decode latency path.
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = static_cast<int>(g % Shape::kLanes);
  const unsigned rest = g / Shape::kLanes;
  const int split = static_cast<int>(rest % static_cast<unsigned>(a.head_splits));
  const long long token = rest / static_cast<unsigned>(a.head_splits);
  if (token >= a.num_tokens) return;
  // Under programmatic dependent launch this kernel may start before the kernel ahead of
  // it has finished; it waits for it before the first read that kernel could have
  // written (kernels/rope_args.h, ROPE_ORDER_*). Work from launch arguments alone can
  // come first: the first heads' addresses cost a constant-cache round trip, which after
  // the wait sits on a decode step's critical path. kEarly also reads the positions,
  // inv_freq and the slot mapping and computes the cos/sin first, overlapping the prior
  // kernel's tail, and only the head loads wait: the step is then about a copy's.
  if (kOrder == ROPE_ORDER_WAIT_FIRST) rope_wait_for_prior_grid();
  const int segment = lane / Shape::kLanesPerSegment;
  const int first_pair = (lane % Shape::kLanesPerSegment) * kPairs;
  // NeoX: x[j] pairs with x[j + S/2]; this lane moves kVec elements from each half.
  // Interleaved: x[2j] pairs with x[2j+1]; this lane moves kVec elements = kPairs pairs.
  const int offset = segment * ROPE_SEGMENT_DIM + (ROPE_STYLE == 0 ? first_pair : 2 * first_pair);
  RopeBatchInputs first_inputs;
  if (kOrder == ROPE_ORDER_ADDRESSES_FIRST) {
    first_inputs = rope_batch_inputs(heads, token, split, offset);
    rope_wait_for_prior_grid();
  }
  rope_release_dependent_grid();

  // Every load that does not depend on the position goes out first: the first heads and
  // this lane's inv_freq. Their latency then overlaps the position load and the cos/sin
  // math. inv_freq is read here on purpose: left where it is used, the compiler keeps
  // the loads behind the checked-mode atomicOr (which might alias them), one more
  // dependent memory round trip on every thread's path.
  RopeBatch<kVec> current;
  if (kOrder == ROPE_ORDER_WAIT_FIRST) {
    rope_load_batch<Heads, kVec, kVectorAccess>(heads, token, split, offset, current);
  } else if (kOrder == ROPE_ORDER_ADDRESSES_FIRST) {
    rope_load_inputs<kVec, kVectorAccess>(first_inputs, current);
  }

  float c[kPairs], s[kPairs];
  bool position_out_of_range = false;  // kEarly: raised after the wait, like every write
  heads.begin_token(token);
  if (heads.rotates_any()) {
    double inv_freq[kPairs];
#pragma unroll
    for (int p = 0; p < kPairs; ++p) inv_freq[p] = a.inv_freq[first_pair + p];

    const RopeLanePositions positions =
        rope_lane_positions<kEarly>(a, token, segment, &position_out_of_range);
#pragma unroll
    for (int p = 0; p < kPairs; ++p) {
      rope_cos_sin(positions.at(first_pair + p), inv_freq[p], a.attention_factor, &c[p], &s[p]);
    }
  }
  if (kEarly) {
    // Formed here rather than first: held across the cos/sin math they cost registers.
    first_inputs = rope_batch_inputs(heads, token, split, offset);
    rope_wait_for_prior_grid();
    rope_load_inputs<kVec, kVectorAccess>(first_inputs, current);
    if (position_out_of_range) atomicOr(a.error_flag, 1);
  }
  // A cache slot past the cache's end (rope_kv_cache.hip) is skipped, and flagged here.
  if (a.error_flag != nullptr && heads.token_out_of_range()) atomicOr(a.error_flag, 1);

  // Double-buffered: the next batch's loads are in flight while this one is rotated and
  // stored, so each thread keeps reads and writes overlapping (one load phase then one
  // store phase per thread leaves the memory system idle half the time at mid sizes).
  const int step = a.head_splits * ROPE_HEAD_UNROLL;
  for (int h0 = split;; h0 += step) {
    RopeBatch<kVec> next;
    const bool more = h0 + step < a.total_heads;
    if (more) rope_load_batch<Heads, kVec, kVectorAccess>(heads, token, h0 + step, offset, next);
    rope_rotate_batch<Heads, kVec, kVectorAccess>(heads, token, h0, offset, current, c, s);
    if (!more) break;
    current = next;
  }

#if ROPE_ROTARY_DIM < ROPE_HEAD_DIM
  for (int h = split; h < a.total_heads; h += a.head_splits) {
    heads.copy_pass_through(token, h, lane, Shape::kLanes);
  }
#endif
}

// A launch's body in the order RopeLaunchArgs::launch_order names, where
// ROPE_CAN_READ_POSITIONS_EARLY (elsewhere every order is the default one). One
// instantiation per order rather than run-time tests inside one body: given one body, the
// compiler sinks the default order's first head loads below the cos/sin math (measured on
// an H200: up to +0.08 us a decode step, +2.7% at 4096 tokens). The narrow kernel
// (!kVectorAccess) carries all three and picks at run time. The default vector kernels
// keep the one body that waits first: a second one inside them cost it up to 2.5% at
// 4096-32768 tokens (interleaved 16-bit, same call). Their orders before the wait are
// entry points of their own (rope_vector_apply_early, the *_aligned_early kernels), which
// leaves their code as it was.
template <class Heads, int kVec, bool kVectorAccess>
ROPE_DEVICE void rope_apply(Heads& heads) {
#if ROPE_CAN_READ_POSITIONS_EARLY
  if (!kVectorAccess) {
    const int order = heads.launch().launch_order;
    if (order == ROPE_ORDER_POSITIONS_FIRST) {
      rope_apply_impl<Heads, kVec, kVectorAccess, ROPE_ORDER_POSITIONS_FIRST>(heads);
      return;
    }
    if (order == ROPE_ORDER_ADDRESSES_FIRST) {
      rope_apply_impl<Heads, kVec, kVectorAccess, ROPE_ORDER_ADDRESSES_FIRST>(heads);
      return;
    }
  }
#endif
  rope_apply_impl<Heads, kVec, kVectorAccess, ROPE_ORDER_WAIT_FIRST>(heads);
}

// The *_aligned_early kernels' body: the vector kernel in an order that works before the
// wait, for the decode-sized launches under PDL that the host sends here (LaunchOrder in
// rope/rope.cc). Where those orders do not exist (no griddepcontrol) it is the default one.
template <class Heads>
ROPE_DEVICE void rope_vector_apply_early(Heads& heads) {
#if ROPE_CAN_READ_POSITIONS_EARLY
  if (heads.launch().launch_order == ROPE_ORDER_POSITIONS_FIRST) {
    rope_apply_impl<Heads, ROPE_VEC, true, ROPE_ORDER_POSITIONS_FIRST>(heads);
    return;
  }
  rope_apply_impl<Heads, ROPE_VEC, true, ROPE_ORDER_ADDRESSES_FIRST>(heads);
#else
  rope_apply_impl<Heads, ROPE_VEC, true, ROPE_ORDER_WAIT_FIRST>(heads);
#endif
}

// The single-tensor kernels, this module's entry points. position_embeddings.hip and
// rope_kv_cache.hip include this file for the machinery above and define
// ROPE_MACHINERY_ONLY: each entry point is a full compile of the body, and their modules
// need only their own.
#ifndef ROPE_MACHINERY_ONLY
extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_apply_aligned(RopeLaunchArgs args) {
  RopeTensorHeads<1, false> heads{args};
  rope_apply<RopeTensorHeads<1, false>, ROPE_VEC, true>(heads);
}
ROPE_HOST_ENTRY(rope_apply_aligned, RopeLaunchArgs)

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_apply_unaligned(RopeLaunchArgs args) {
  RopeTensorHeads<1, true> heads{args};
  rope_apply<RopeTensorHeads<1, true>, ROPE_UNALIGNED_VEC, false>(heads);
}
ROPE_HOST_ENTRY(rope_apply_unaligned, RopeLaunchArgs)

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_apply_aligned_early(RopeLaunchArgs args) {
  RopeTensorHeads<1, true> heads{args};
  rope_vector_apply_early(heads);
}
ROPE_HOST_ENTRY(rope_apply_aligned_early, RopeLaunchArgs)
#endif  // ROPE_MACHINERY_ONLY
