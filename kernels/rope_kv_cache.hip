// RoPE with the KV-cache write fused in (ApplyAndCacheKvDevice): Q rotated in place or
// into q_out; K rotated and V copied into a paged cache at each token's slot, in the
// Rope's dtype or in FP8 (OCP E4M3 "fn" or E5M2, stored = saturate(x / scale)); the k and
// v inputs are left unchanged. One launch. Same baked parameters as rope.hip; the cache's
// format, layout and block size are run-time arguments (kernels/rope_args.h).
//
// The thread mapping is rope.hip's, with V's heads after K's: a thread moves heads of one
// token through one lane, with that lane's cos/sin computed once and reused for every Q
// and K head it visits (V needs none). A cache element's address comes from the token's
// slot, loaded once per thread alongside the position. With rotate = 0 the same kernel
// is a cache write alone (K and V stored as given, no Q), the second half of the unfused
// path rope_bench compares with.
#define ROPE_MACHINERY_ONLY 1
#include "kernels/rope.hip"

// FP8 stores move kVec bytes; rope.hip's accesses never need a single byte.
template <>
struct alignas(1) RopeRaw<1> { unsigned char w[1]; };

// float -> OCP FP8 with kExponentBits/kMantissaBits: round to nearest even, saturating
// to the largest finite value (Inf too); NaN -> NaN. E4M3 "fn" (bias 7, max 448, no
// Inf, NaN S.1111.111) and E5M2 (bias 15, max 57344, NaN S.11111.10 here). Not AMD
// MI300's "fnuz" formats.
template <int kExponentBits, int kMantissaBits>
ROPE_DEVICE unsigned rope_f32_to_fp8(float f) {
  constexpr unsigned kBias = (1u << (kExponentBits - 1)) - 1;
  constexpr int kShift = 23 - kMantissaBits;
  // E4M3: S.1111.110 = 448 = 0x43e00000; E5M2: S.11110.11 = 57344 = 0x47600000.
  constexpr unsigned kMaxCode = kExponentBits == 4 ? 0x7eu : 0x7bu;
  constexpr unsigned kMaxBits = kExponentBits == 4 ? 0x43e00000u : 0x47600000u;
  constexpr unsigned kNanCode = kExponentBits == 4 ? 0x7fu : 0x7eu;
  constexpr unsigned kMinNormalBits = (127u - kBias + 1u) << 23;
  const unsigned u = __float_as_uint(f);
  const unsigned sign = (u >> 24) & 0x80u;
  const unsigned magnitude = u & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | kNanCode;
  // Everything from the largest finite value up rounds (RNE) or saturates to it: the
  // tie above the maximum belongs to the maximum's even significand in both formats.
  if (magnitude >= kMaxBits) return sign | kMaxCode;
  unsigned bits, shift;
  if (magnitude >= kMinNormalBits) {
    // Rebias the exponent in place; a carry out of the rounded significand bumps it.
    bits = magnitude - ((127u - kBias) << 23);
    shift = kShift;
  } else {
    // Subnormal (or zero): the float's 24-bit significand in units of the smallest
    // FP8 subnormal 2^(1 - bias - m). Float subnormals are far below half of it.
    const unsigned exponent = magnitude >> 23;
    if (exponent == 0) return sign;
    bits = (magnitude & 0x7fffffu) | 0x800000u;
    shift = (150u + 1u - kBias - kMantissaBits) - exponent;  // >= kShift + 1
    if (shift > 24) return sign;  // below half the smallest subnormal
  }
  const unsigned kept = bits >> shift;
  const unsigned rest = bits & ((1u << shift) - 1u);
  const unsigned half = 1u << (shift - 1);
  return sign | (kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u));
}

ROPE_DEVICE unsigned rope_f32_to_cache_fp8(float f, int cache_dtype) {
  return cache_dtype == ROPE_KV_FP8_E4M3 ? rope_f32_to_fp8<4, 3>(f) : rope_f32_to_fp8<5, 2>(f);
}

// Two values to FP8 codes, `lo` in the low byte. NVIDIA sm_89+: one
// cvt.rn.satfinite.{e4m3,e5m2}x2.f32, which rounds and saturates as rope_f32_to_fp8 does
// (nearest even; Inf and overflow to the largest finite value) at a fraction of its
// integer work: the difference between a memory-bound and an ALU-bound FP8 cache write
// (BENCHMARKS.md). NaN stays NaN, though not necessarily with the software code.
ROPE_DEVICE unsigned rope_f32x2_to_cache_fp8x2(float lo, float hi, int cache_dtype) {
#if !ROPE_AMD && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  unsigned short codes;
  if (cache_dtype == ROPE_KV_FP8_E4M3) {
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(codes) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(codes) : "f"(hi), "f"(lo));
  }
  return codes;
#else
  return rope_f32_to_cache_fp8(lo, cache_dtype) | (rope_f32_to_cache_fp8(hi, cache_dtype) << 8);
#endif
}

// N values scaled by inv_scale and stored as FP8 bytes, in one access when allowed.
template <int N, bool kVectorAccess>
ROPE_DEVICE void rope_store_fp8(unsigned char* p, const float (&in)[N], float inv_scale,
                                int cache_dtype) {
  union {
    RopeRaw<N> raw;
    unsigned char b[N];
  } packed;
#pragma unroll
  for (int i = 0; i + 1 < N; i += 2) {
    const unsigned codes =
        rope_f32x2_to_cache_fp8x2(in[i] * inv_scale, in[i + 1] * inv_scale, cache_dtype);
    packed.b[i] = static_cast<unsigned char>(codes & 0xffu);
    packed.b[i + 1] = static_cast<unsigned char>(codes >> 8);
  }
  if (N % 2 != 0) {
    packed.b[N - 1] = static_cast<unsigned char>(
        rope_f32x2_to_cache_fp8x2(in[N - 1] * inv_scale, 0.0f, cache_dtype) & 0xffu);
  }
  if (kVectorAccess) {
    *reinterpret_cast<RopeRaw<N>*>(p) = packed.raw;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) p[i] = packed.b[i];
  }
}

template <int N>
ROPE_DEVICE void rope_unpack(const RopePacked<N>& x, float (&out)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = rope_load_elem(x.e[i]);
}

// Heads [0, q) are Q, [q, q + kv) K and [q + kv, q + 2 kv) V (the RopeTensorHeads
// interface, rope.hip).
struct RopeKvCacheHeads {
  ROPE_HELD_ARGS(RopeKvCacheArgs) kv;  // see the prelude
  bool cached = false;         // this token's slot is in the cache
  long long slot_offset = 0;   // elements from a cache base to this token's slot
  long long slot = -1;
  float k_inv_scale = 1.0f;
  float v_inv_scale = 1.0f;

  ROPE_DEVICE const RopeLaunchArgs& launch() const { return kv.rope; }
  ROPE_DEVICE bool rotates_any() const { return kv.rotate != 0; }
  ROPE_DEVICE int q_heads() const { return kv.rope.tensors[0].num_heads; }
  ROPE_DEVICE int kv_heads() const { return kv.rope.tensors[1].num_heads; }
  ROPE_DEVICE bool rotates(int h) const { return kv.rotate != 0 && h < q_heads() + kv_heads(); }

  ROPE_DEVICE void begin_token(long long token) {
    slot = kv.slot_mapping[token];
    cached = slot >= 0 && slot < kv.num_slots;
    if (cached) {
      // 32-bit division when the cache allows it: 64-bit division is a long sequence.
      long long block, within;
      if (kv.num_slots <= 0xffffffffll) {
        const unsigned s32 = static_cast<unsigned>(slot), bs32 = static_cast<unsigned>(kv.block_size);
        block = s32 / bs32;
        within = s32 - static_cast<unsigned>(block) * bs32;
      } else {
        block = slot / kv.block_size;
        within = slot - block * kv.block_size;
      }
      slot_offset = block * kv.cache_block_stride + within * kv.cache_slot_stride;
    }
    if (kv.cache_dtype != ROPE_KV_SAME) {
      k_inv_scale = 1.0f / *kv.k_scale;
      v_inv_scale = 1.0f / *kv.v_scale;
    }
  }
  ROPE_DEVICE bool token_out_of_range() const { return slot >= kv.num_slots; }

  ROPE_DEVICE const rope_elem* input(long long token, int h, int offset) const {
    const RopeTensorArgs& q = kv.rope.tensors[0];
    const RopeTensorArgs& k = kv.rope.tensors[1];
    if (h < q_heads()) {
      return static_cast<const rope_elem*>(q.in) + token * q.in_token_stride + h * q.in_head_stride + offset;
    }
    if (h < q_heads() + kv_heads()) {
      return static_cast<const rope_elem*>(k.in) + token * k.in_token_stride +
             (h - q_heads()) * k.in_head_stride + offset;
    }
    return static_cast<const rope_elem*>(kv.v) + token * kv.v_token_stride +
           (h - q_heads() - kv_heads()) * kv.v_head_stride + offset;
  }

  // Head h's cache head (K or V) and its FP8 scale.
  ROPE_DEVICE long long cache_element(int h, int offset, bool* is_k) const {
    *is_k = h < q_heads() + kv_heads();
    const int head = h - q_heads() - (*is_k ? 0 : kv_heads());
    return slot_offset + head * kv.cache_head_stride + offset;
  }

  // kVec values of head h (K or V) at `offset` into the cache, converted to its format.
  template <int kVec, bool kVectorAccess>
  ROPE_DEVICE void store_cache(int h, int offset, const float (&values)[kVec]) const {
    bool is_k;
    const long long at = cache_element(h, offset, &is_k);
    void* base = is_k ? kv.k_cache : kv.v_cache;
    if (kv.cache_dtype == ROPE_KV_SAME) {
      rope_store<kVec, kVectorAccess>(static_cast<rope_elem*>(base) + at, values);
    } else {
      rope_store_fp8<kVec, kVectorAccess>(static_cast<unsigned char*>(base) + at, values,
                                          is_k ? k_inv_scale : v_inv_scale, kv.cache_dtype);
    }
  }

  template <int kVec, bool kVectorAccess>
  ROPE_DEVICE void store_rotated(long long token, int h, int offset, const RopeRotated<kVec>& r) const {
    if (h < q_heads()) {
      const RopeTensorArgs& q = kv.rope.tensors[0];
      rope_elem* out = static_cast<rope_elem*>(q.out) + token * q.out_token_stride + h * q.out_head_stride + offset;
      rope_store<kVec, kVectorAccess>(out, r.x);
#if ROPE_STYLE == 0
      rope_store<kVec, kVectorAccess>(out + ROPE_SEGMENT_PAIRS, r.y);
#endif
      return;
    }
    if (!cached) return;
    store_cache<kVec, kVectorAccess>(h, offset, r.x);
#if ROPE_STYLE == 0
    store_cache<kVec, kVectorAccess>(h, offset + ROPE_SEGMENT_PAIRS, r.y);
#endif
  }

  // V, and K when rotate == 0: the values as loaded. In the cache's own dtype the bits
  // are moved unchanged (no round trip through fp32).
  template <int kVec, bool kVectorAccess>
  ROPE_DEVICE void store_unrotated(long long, int h, int offset, const RopePacked<kVec>& x,
                                   const RopePacked<kVec>& y) const {
    if (!cached) return;
    constexpr int kHalves = ROPE_STYLE == 0 ? 2 : 1;
#pragma unroll
    for (int part_index = 0; part_index < kHalves; ++part_index) {
      const RopePacked<kVec>& part = part_index == 0 ? x : y;
      const int at_offset = offset + part_index * ROPE_SEGMENT_PAIRS;
      if (kv.cache_dtype == ROPE_KV_SAME) {
        bool is_k;
        const long long at = cache_element(h, at_offset, &is_k);
        rope_elem* out = static_cast<rope_elem*>(is_k ? kv.k_cache : kv.v_cache) + at;
        if (kVectorAccess) {
          *reinterpret_cast<RopeRaw<kVec * sizeof(rope_elem)>*>(out) = part.raw;
        } else {
#pragma unroll
          for (int i = 0; i < kVec; ++i) out[i] = part.e[i];
        }
      } else {
        float values[kVec];
        rope_unpack<kVec>(part, values);
        store_cache<kVec, kVectorAccess>(h, at_offset, values);
      }
    }
  }

  // Dims past rotary_dim: Q's copied out of place; K's and V's always go to the cache.
  ROPE_DEVICE void copy_pass_through(long long token, int h, int lane, int lanes) const {
    if (h < q_heads()) {
      const RopeTensorArgs& q = kv.rope.tensors[0];
      if (q.out == q.in) return;
      const rope_elem* in = static_cast<const rope_elem*>(q.in) + token * q.in_token_stride + h * q.in_head_stride;
      rope_elem* out = static_cast<rope_elem*>(q.out) + token * q.out_token_stride + h * q.out_head_stride;
      for (int d = ROPE_ROTARY_DIM + lane; d < ROPE_HEAD_DIM; d += lanes) out[d] = in[d];
      return;
    }
    if (!cached) return;
    const rope_elem* in = input(token, h, 0);
    for (int d = ROPE_ROTARY_DIM + lane; d < ROPE_HEAD_DIM; d += lanes) {
      if (kv.cache_dtype == ROPE_KV_SAME) {
        bool is_k;
        const long long at = cache_element(h, d, &is_k);
        static_cast<rope_elem*>(is_k ? kv.k_cache : kv.v_cache)[at] = in[d];
      } else {
        const float value[1] = {rope_load_elem(in[d])};
        store_cache<1, false>(h, d, value);
      }
    }
  }
};

// NVIDIA: at most 80 registers a thread, so that 3 blocks of 256 threads fit an SM. ptxas
// gave the NeoX 16-bit vector kernel 93 when it moved 16 bytes an access (2 blocks, 16
// warps: too few loads in flight to reach full bandwidth). Unbounded it now gives 64
// (NeoX 16-bit, 8-byte accesses), 62 (interleaved 16-bit), 78 and 58 (f32) at hd128, so
// the limit only guards against such growth; the rope kernels take 48-74. AMD reads a
// second __launch_bounds__ argument differently (waves per execution unit) and the host
// and plain-clang stand-ins take one.
#if ROPE_AMD || defined(ROPE_HOST)
#define ROPE_KV_LAUNCH_BOUNDS __launch_bounds__(ROPE_THREADS_PER_BLOCK)
#else
#define ROPE_KV_LAUNCH_BOUNDS __launch_bounds__(ROPE_THREADS_PER_BLOCK, 3)
#endif

extern "C" __global__ void ROPE_KV_LAUNCH_BOUNDS rope_kv_cache_aligned(RopeKvCacheArgs args) {
  RopeKvCacheHeads heads{args};
  rope_apply<RopeKvCacheHeads, ROPE_VEC, true>(heads);
}
ROPE_HOST_ENTRY(rope_kv_cache_aligned, RopeKvCacheArgs)

extern "C" __global__ void __launch_bounds__(ROPE_THREADS_PER_BLOCK)
    rope_kv_cache_unaligned(RopeKvCacheArgs args) {
  RopeKvCacheHeads heads{args};
  rope_apply<RopeKvCacheHeads, ROPE_UNALIGNED_VEC, false>(heads);
}
ROPE_HOST_ENTRY(rope_kv_cache_unaligned, RopeKvCacheArgs)

extern "C" __global__ void ROPE_KV_LAUNCH_BOUNDS rope_kv_cache_aligned_early(RopeKvCacheArgs args) {
  RopeKvCacheHeads heads{args};
  rope_vector_apply_early(heads);
}
ROPE_HOST_ENTRY(rope_kv_cache_aligned_early, RopeKvCacheArgs)
