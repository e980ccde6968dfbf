// Portable prelude for the RoPE kernels: compiles under NVRTC, nvcc, hipRTC and hipcc
// with no system header (NVRTC has no include path at run time).
#ifndef ROPE_JIT_KERNELS_PRELUDE_H_
#define ROPE_JIT_KERNELS_PRELUDE_H_

#if defined(__HIPCC_RTC__) || defined(__HIP__) || defined(__HIP_PLATFORM_AMD__)
#define ROPE_AMD 1
#else
#define ROPE_AMD 0
#endif

#define ROPE_DEVICE __device__ __forceinline__

typedef unsigned short rope_u16;

// bfloat16 <-> float: the top half of a float; round to nearest even on the way down.
ROPE_DEVICE float rope_bf16_to_f32(rope_u16 v) { return __uint_as_float(((unsigned)v) << 16); }
ROPE_DEVICE rope_u16 rope_f32_to_bf16(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (rope_u16)((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (rope_u16)(u >> 16);
}

// IEEE half <-> float through the hardware conversions (round to nearest even).
#if ROPE_AMD
ROPE_DEVICE float rope_f16_to_f32(rope_u16 v) { return (float)__builtin_bit_cast(_Float16, v); }
ROPE_DEVICE rope_u16 rope_f32_to_f16(float f) { return __builtin_bit_cast(rope_u16, (_Float16)f); }
#else
ROPE_DEVICE float rope_f16_to_f32(rope_u16 v) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
  return f;
}
ROPE_DEVICE rope_u16 rope_f32_to_f16(float f) {
  rope_u16 v;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(v) : "f"(f));
  return v;
}
#endif

// Storage type of one element and its conversions, by ROPE_DTYPE (0 f32, 1 f16, 2 bf16).
#if ROPE_DTYPE == 0
typedef float rope_elem;
ROPE_DEVICE float rope_load_elem(rope_elem v) { return v; }
ROPE_DEVICE rope_elem rope_store_elem(float f) { return f; }
#elif ROPE_DTYPE == 1
typedef rope_u16 rope_elem;
ROPE_DEVICE float rope_load_elem(rope_elem v) { return rope_f16_to_f32(v); }
ROPE_DEVICE rope_elem rope_store_elem(float f) { return rope_f32_to_f16(f); }
#elif ROPE_DTYPE == 2
typedef rope_u16 rope_elem;
ROPE_DEVICE float rope_load_elem(rope_elem v) { return rope_bf16_to_f32(v); }
ROPE_DEVICE rope_elem rope_store_elem(float f) { return rope_f32_to_bf16(f); }
#else
#error "ROPE_DTYPE must be 0 (f32), 1 (f16) or 2 (bf16)"
#endif

// N elements moved as one aligned access of N * sizeof(rope_elem) bytes (up to 16),
// or element by element when the caller cannot promise that alignment.
template <int kBytes>
struct RopeRaw;
template <>
struct alignas(16) RopeRaw<16> { unsigned w[4]; };
template <>
struct alignas(8) RopeRaw<8> { unsigned w[2]; };
template <>
struct alignas(4) RopeRaw<4> { unsigned w[1]; };
template <>
struct alignas(2) RopeRaw<2> { rope_u16 w[1]; };

// N elements held in their storage format; converted to fp32 only when used, so that
// several heads' loads can be in flight without holding them all as floats.
template <int N>
union RopePacked {
  RopeRaw<N * sizeof(rope_elem)> raw;
  rope_elem e[N];
};

template <int N, bool kVectorAccess>
ROPE_DEVICE void rope_load(const rope_elem* p, RopePacked<N>& out) {
  if (kVectorAccess) {
    out.raw = *reinterpret_cast<const RopeRaw<N * sizeof(rope_elem)>*>(p);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out.e[i] = p[i];
  }
}

// Two results packed into one 32-bit word of 16-bit elements, `lo` in the low half. On
// NVIDIA sm_80+ one cvt.rn.{bf16,f16}x2.f32 converts both: the software bf16 rounding
// otherwise costs several integer instructions per element, enough to make bf16 slower
// than f16 at full bandwidth.
ROPE_DEVICE unsigned rope_pack2(float lo, float hi) {
#if !ROPE_AMD && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && ROPE_DTYPE == 2
  unsigned packed;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(hi), "f"(lo));
  return packed;
#elif !ROPE_AMD && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && ROPE_DTYPE == 1
  unsigned packed;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(hi), "f"(lo));
  return packed;
#else
  return (unsigned)rope_store_elem(lo) | ((unsigned)rope_store_elem(hi) << 16);
#endif
}

template <int N, bool kVectorAccess>
ROPE_DEVICE void rope_store(rope_elem* p, const float (&in)[N]) {
  RopePacked<N> packed;
  if (sizeof(rope_elem) == 2 && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
      const unsigned word = rope_pack2(in[2 * i], in[2 * i + 1]);
      packed.e[2 * i] = (rope_elem)(word & 0xffffu);
      packed.e[2 * i + 1] = (rope_elem)(word >> 16);
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) packed.e[i] = rope_store_elem(in[i]);
  }
  if (kVectorAccess) {
    *reinterpret_cast<RopeRaw<N * sizeof(rope_elem)>*>(p) = packed.raw;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) p[i] = packed.e[i];
  }
}

// Programmatic dependent launch (NVIDIA sm_90+, LaunchOptions in jit/device_runtime.h). A
// kernel launched with it may start before the previous kernel on its stream has finished;
// rope_wait_for_prior_grid() returns once that kernel has completed and its writes are
// visible, so it must come before the first global memory access. It returns at once
// when the launch was a plain one, and compiles to nothing on other targets.
// rope_release_dependent_grid() lets the next such kernel begin launching (it still waits
// for this one to finish before it reads anything); issued early, the next launch's
// latency overlaps this kernel's work.
ROPE_DEVICE void rope_wait_for_prior_grid() {
#if !ROPE_AMD && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
ROPE_DEVICE void rope_release_dependent_grid() {
#if !ROPE_AMD && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#endif  // ROPE_JIT_KERNELS_PRELUDE_H_
