// rope/kernel_specs.h: the launch shape of each regime.
#include "rope/kernel_specs.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "rope/config.h"

namespace rope_jit {
namespace {

// The launch shape per regime (rope/kernel_specs.cc): prefill gives a thread 4 heads when
// there are many and 8 when there are few (always 8 in the fused kernel with 8-byte
// vectors); latency-bound launches split heads until no thread needs more than one batch
// (ROPE_HEAD_UNROLL heads).
TEST(LaunchShapeTest, HeadsPerThreadByRegime) {
  constexpr RopeKernel kQk = RopeKernel::kPositionEmbeddings;
  constexpr RopeKernel kFused = RopeKernel::kRopeKvCache;
  RopeConfig bf16;
  bf16.dtype = DType::kBF16;  // head_dim 128, NeoX: 4 elements (8 bytes) an access, 16 lanes a head
  const int width = VectorWidth(bf16);
  ASSERT_EQ(width, 4);
  ASSERT_EQ(LanesPerHead(bf16, width), 16);
  EXPECT_EQ(ComputeLaunchShape(bf16, kQk, 32768, 40, width).head_splits, 10);  // 4 heads a thread
  EXPECT_EQ(ComputeLaunchShape(bf16, kQk, 32768, 9, width).head_splits, 2);    // 8q/1kv: 5 and 4
  EXPECT_EQ(ComputeLaunchShape(bf16, kQk, 1, 40, width).head_splits, 40);      // decode: 1 each
  const RopeLaunchShape prefill = ComputeLaunchShape(bf16, kQk, 32768, 40, width);
  EXPECT_EQ(prefill.blocks, int64_t{32768} * 16 * 10 / RopeLaunchShape::kThreadsPerBlock);
  // The fused kernel: 32q/8kv and V are 48 heads, 8 a thread.
  EXPECT_EQ(ComputeLaunchShape(bf16, kFused, 32768, 48, width).head_splits, 6);
  RopeConfig interleaved = bf16;  // 16 bytes: 8 elements = 4 pairs, 16 lanes a head
  interleaved.style = RopeStyle::kInterleaved;
  ASSERT_EQ(VectorWidth(interleaved), 8);
  EXPECT_EQ(ComputeLaunchShape(interleaved, kFused, 32768, 48, 8).head_splits, 12);  // 4 a thread

  RopeConfig f32;
  f32.dtype = DType::kF32;
  f32.style = RopeStyle::kInterleaved;  // 4 elements = 2 pairs per access: 32 lanes a head
  const int f32_width = VectorWidth(f32);
  ASSERT_EQ(LanesPerHead(f32, f32_width), 32);
  // 64 tokens x 32 lanes = 2048 pairs: 16 splits would fill the GPU, but would leave 3
  // heads (two batches) to some threads; 20 splits leave 2.
  EXPECT_EQ(ComputeLaunchShape(f32, kQk, 64, 40, f32_width).head_splits, 20);
  EXPECT_EQ(ComputeLaunchShape(f32, kQk, 0, 40, f32_width).blocks, 0);
}

// Small launches take the narrow kernel (rope/kernel_specs.cc has the H200 measurements
// behind each limit); the vector kernel from there on.
TEST(LaunchShapeTest, NarrowKernelForSmallLaunches) {
  RopeConfig bf16;
  bf16.dtype = DType::kBF16;  // head_dim 128, NeoX: 64 narrow lanes a head
  EXPECT_TRUE(PrefersNarrowKernel(bf16, 1, 40));
  EXPECT_TRUE(PrefersNarrowKernel(bf16, 64, 10));   // 40960 threads, under 48K
  EXPECT_FALSE(PrefersNarrowKernel(bf16, 64, 20));  // 81920
  EXPECT_FALSE(PrefersNarrowKernel(bf16, 64, 40));  // 163840 threads
  EXPECT_FALSE(PrefersNarrowKernel(bf16, 32768, 40));
  EXPECT_FALSE(PrefersNarrowKernel(bf16, 0, 40));

  RopeConfig f32 = bf16;
  f32.dtype = DType::kF32;
  EXPECT_TRUE(PrefersNarrowKernel(f32, 8, 40));     // 20480 threads
  EXPECT_FALSE(PrefersNarrowKernel(f32, 64, 10));   // 40960, over 32K

  RopeConfig interleaved = bf16;
  interleaved.style = RopeStyle::kInterleaved;  // the vector kernel measured as fast at decode
  EXPECT_FALSE(PrefersNarrowKernel(interleaved, 1, 40));
  // The largest arguments a launch can have do not overflow the product.
  EXPECT_FALSE(PrefersNarrowKernel(bf16, int64_t{1} << 31, 1 << 21));
}

}  // namespace
}  // namespace rope_jit
