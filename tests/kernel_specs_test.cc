// rope/kernel_specs.h: the launch shape of each regime.
#include "rope/kernel_specs.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "rope/config.h"

namespace rope_jit {
namespace {

// The launch shape per regime (rope/kernel_specs.cc): prefill gives a thread 4 heads when
// there are many and 8 when there are few; latency-bound launches split heads until no
// thread needs more than one batch (ROPE_HEAD_UNROLL heads).
TEST(LaunchShapeTest, HeadsPerThreadByRegime) {
  RopeConfig bf16;
  bf16.dtype = DType::kBF16;  // head_dim 128, NeoX: 8 elements per access, 8 lanes a head
  const int bf16_width = VectorWidth(bf16);
  ASSERT_EQ(LanesPerHead(bf16, bf16_width), 8);
  EXPECT_EQ(ComputeLaunchShape(bf16, 32768, 40, bf16_width).head_splits, 10);  // 4 heads a thread
  EXPECT_EQ(ComputeLaunchShape(bf16, 32768, 9, bf16_width).head_splits, 2);    // 8q/1kv: 5 and 4
  EXPECT_EQ(ComputeLaunchShape(bf16, 1, 40, bf16_width).head_splits, 40);      // decode: 1 head each
  const RopeLaunchShape prefill = ComputeLaunchShape(bf16, 32768, 40, bf16_width);
  EXPECT_EQ(prefill.blocks, int64_t{32768} * 8 * 10 / RopeLaunchShape::kThreadsPerBlock);

  RopeConfig f32;
  f32.dtype = DType::kF32;
  f32.style = RopeStyle::kInterleaved;  // 4 elements = 2 pairs per access: 32 lanes a head
  const int f32_width = VectorWidth(f32);
  ASSERT_EQ(LanesPerHead(f32, f32_width), 32);
  // 64 tokens x 32 lanes = 2048 pairs: 16 splits would fill the GPU, but would leave 3
  // heads (two batches) to some threads; 20 splits leave 2.
  EXPECT_EQ(ComputeLaunchShape(f32, 64, 40, f32_width).head_splits, 20);
  EXPECT_EQ(ComputeLaunchShape(f32, 0, 40, f32_width).blocks, 0);
}

}  // namespace
}  // namespace rope_jit
