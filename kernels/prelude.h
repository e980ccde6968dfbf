// Portable prelude for the RoPE kernels: compiles under NVRTC, nvcc, hipRTC and hipcc
// with no system header (NVRTC has no include path at run time), and, with ROPE_HOST
// defined, as plain C++17 for the host backend (jit/host).
#ifndef ROPE_JIT_KERNELS_PRELUDE_H_
#define ROPE_JIT_KERNELS_PRELUDE_H_

#if defined(ROPE_HOST)
// The host backend: the GPU keywords and intrinsics the kernels use, defined for a CPU.
// The kernels are thread-independent (no shared memory, barriers or warp operations), so
// running a block's threads one after another on one CPU thread computes what the GPU
// computes. A kernel that needs a block- or warp-level construct must define it here.
#include "kernels/host_grid.h"
#include <math.h>
#include <string.h>

#define __global__
#define __device__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(threads)

struct RopeHostIndex {
  unsigned x, y, z;
};
// Per CPU thread: the worker running a block sets them before each kernel call.
static thread_local RopeHostIndex threadIdx, blockIdx, blockDim, gridDim;

static inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, sizeof(u));
  return u;
}
static inline int __double2loint(double d) {
  unsigned long long u;
  memcpy(&u, &d, sizeof(u));
  return static_cast<int>(static_cast<unsigned>(u));
}
static inline int atomicOr(int* address, int value) {
  return __atomic_fetch_or(address, value, __ATOMIC_RELAXED);
}

// Runs blocks [first_block, last_block) of `grid`, every thread of a block in turn.
template <typename Kernel>
static void rope_host_run_blocks(const RopeHostGrid* grid, Kernel kernel) {
  gridDim = {grid->grid[0], grid->grid[1], grid->grid[2]};
  blockDim = {grid->block[0], grid->block[1], grid->block[2]};
  const unsigned long long plane = static_cast<unsigned long long>(grid->grid[0]) * grid->grid[1];
  for (unsigned long long b = grid->first_block; b < grid->last_block; ++b) {
    blockIdx = {static_cast<unsigned>(b % grid->grid[0]),
                static_cast<unsigned>(b / grid->grid[0] % grid->grid[1]),
                static_cast<unsigned>(b / plane)};
    for (unsigned z = 0; z < blockDim.z; ++z)
      for (unsigned y = 0; y < blockDim.y; ++y)
        for (unsigned x = 0; x < blockDim.x; ++x) {
          threadIdx = {x, y, z};
          kernel();
        }
  }
}

// After each `extern "C" __global__` kernel taking one argument struct by value: the
// entry `<kernel>_host_grid` (a RopeHostGridEntry) that the host runtime calls. Empty on
// GPUs.
#define ROPE_HOST_ENTRY(kernel, ArgsType)                                        \
  extern "C" void kernel##_host_grid(const RopeHostGrid* grid, void** args) {   \
    const ArgsType& kernel_args = *static_cast<const ArgsType*>(args[0]);       \
    rope_host_run_blocks(grid, [&kernel_args] { kernel(kernel_args); });        \
  }
#else
#define ROPE_HOST_ENTRY(kernel, ArgsType)
#endif

#if defined(__HIPCC_RTC__) || defined(__HIP__) || defined(__HIP_PLATFORM_AMD__)
#define ROPE_AMD 1
#else
#define ROPE_AMD 0
#endif

#define ROPE_DEVICE __device__ __forceinline__

// How the kernels' helper structs (rope.hip's heads policies) hold the launch arguments.
// NVIDIA: a reference to the kernel parameter (a copy lands in local memory: a 192-byte
// stack frame). AMD: a copy (through a reference held in a struct, clang 19 loses that the
// tensor pointers are global memory and emits flat accesses; hipRTC's LLVM 15 copies the
// parameter to scratch).
#if ROPE_AMD
#define ROPE_HELD_ARGS(T) const T
#else
#define ROPE_HELD_ARGS(T) const T&
#endif

// Plain clang compiling HIP with -nogpuinc (jit/rocm/clang_compiler.h passes
// -DROPE_HIP_WITHOUT_RUNTIME=1): no HIP header is included, so this supplies the part of
// hipRTC's built-in header / hip_runtime.h the kernels use, with the same definitions
// (amd_hip_runtime.h, host_defines.h, amd_device_functions.h, amd_hip_atomic.h).
#if defined(ROPE_HIP_WITHOUT_RUNTIME)
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(max_threads) __attribute__((amdgpu_flat_work_group_size(1, max_threads)))
struct RopeDim3 {
  unsigned x, y, z;
};
// Unused components cost nothing: the builtins read registers set up at dispatch.
#define threadIdx                                                                    \
  (RopeDim3{__builtin_amdgcn_workitem_id_x(), __builtin_amdgcn_workitem_id_y(),      \
            __builtin_amdgcn_workitem_id_z()})
#define blockIdx                                                                     \
  (RopeDim3{__builtin_amdgcn_workgroup_id_x(), __builtin_amdgcn_workgroup_id_y(),    \
            __builtin_amdgcn_workgroup_id_z()})
#define blockDim                                                                     \
  (RopeDim3{__builtin_amdgcn_workgroup_size_x(), __builtin_amdgcn_workgroup_size_y(), \
            __builtin_amdgcn_workgroup_size_z()})
ROPE_DEVICE float __uint_as_float(unsigned x) { return __builtin_bit_cast(float, x); }
ROPE_DEVICE unsigned __float_as_uint(float x) { return __builtin_bit_cast(unsigned, x); }
ROPE_DEVICE float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
ROPE_DEVICE int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
ROPE_DEVICE int __double2loint(double x) {
  return static_cast<int>(__builtin_bit_cast(unsigned long long, x));
}
ROPE_DEVICE int __double2hiint(double x) {
  return static_cast<int>(__builtin_bit_cast(unsigned long long, x) >> 32);
}
ROPE_DEVICE double fma(double x, double y, double z) { return __builtin_fma(x, y, z); }
ROPE_DEVICE float fmaf(float x, float y, float z) { return __builtin_fmaf(x, y, z); }
ROPE_DEVICE int atomicOr(int* address, int value) {
  return __hip_atomic_fetch_or(address, value, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
}
#endif  // ROPE_HIP_WITHOUT_RUNTIME

typedef unsigned short rope_u16;

// bfloat16 <-> float: the top half of a float; round to nearest even on the way down.
ROPE_DEVICE float rope_bf16_to_f32(rope_u16 v) { return __uint_as_float(((unsigned)v) << 16); }
ROPE_DEVICE rope_u16 rope_f32_to_bf16(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (rope_u16)((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (rope_u16)(u >> 16);
}

// IEEE half <-> float through the hardware conversions (round to nearest even); on the
// host through the compiler's _Float16 (g++ 12 and clang on x86-64 and AArch64).
#if ROPE_AMD || defined(ROPE_HOST)
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
// visible, so it must come before the first read of anything that kernel may write. It
// returns at once when the launch was a plain one, and compiles to nothing on other
// targets.
// rope_release_dependent_grid() lets the next such kernel begin launching (it still waits
// for this one to finish before it reads anything); issued early, the next launch's
// latency overlaps this kernel's work.
// Whether work may be moved ahead of that wait (RopeLaunchArgs::launch_order): on GPUs
// without it the launch is a plain one, and the reordering would only lengthen a
// thread's chain (positions and cos/sin before the data loads instead of beside them).
// The host backend keeps the reordering so that CI runs those paths of the kernels.
#if defined(ROPE_HOST) || (!ROPE_AMD && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900)
#define ROPE_CAN_READ_POSITIONS_EARLY 1
#else
#define ROPE_CAN_READ_POSITIONS_EARLY 0
#endif

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
