// Every kernel compiles for the data-center targets CI can build for without a GPU, for
// each dtype x style x common head_dim, and the code object holds both entry points.
// position_embeddings.hip includes rope.hip whole, so its compile covers rope's code
// too; rope itself is compiled once per target and dtype. rope_kv_cache.hip (rope.hip
// plus the cache stores) is compiled for the shapes that exercise its distinct paths.
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "rope/kernel_specs.h"

namespace rope_jit {
namespace {

using Param = std::tuple<const char*, DType>;

class KernelCompileTest : public ::testing::TestWithParam<Param> {};

TEST_P(KernelCompileTest, EveryStyleAndHeadDimCompiles) {
  const auto [target, dtype] = GetParam();
  Compiler* compiler = *CompilerForTarget(target);
  if (!compiler->Identity().ok()) {
    GTEST_SKIP() << "no " << VendorName(compiler->vendor()) << " compiler here: "
                 << compiler->Identity().status();
  }
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    for (int head_dim : {64, 80, 96, 128, 256}) {
      RopeConfig config;
      config.head_dim = head_dim;
      config.dtype = dtype;
      config.style = style;
      for (RopeKernel kernel : {RopeKernel::kPositionEmbeddings, RopeKernel::kRope}) {
        if (kernel == RopeKernel::kRope && (head_dim != 128 || style != RopeStyle::kNeox)) continue;
        auto spec = RopeKernelSpec(config, kernel, target);
        ASSERT_TRUE(spec.ok()) << spec.status();
        auto code = compiler->Compile({spec->source, spec->kernel, spec->defines, target});
        ASSERT_TRUE(code.ok()) << target << " " << StyleName(style) << " " << head_dim << ": "
                               << code.status();
        EXPECT_TRUE(absl::StartsWith(*code, "\x7f" "ELF"));
        EXPECT_TRUE(absl::StrContains(*code, AlignedFunctionName(kernel)));
        EXPECT_TRUE(absl::StrContains(*code, UnalignedFunctionName(kernel)));
      }
    }
  }
}

// The fused RoPE + KV-cache kernel: both pairings, the narrowest and widest common
// head_dims, and partial rotary (K's and V's pass-through dims go to the cache).
TEST_P(KernelCompileTest, RopeKvCacheCompiles) {
  const auto [target, dtype] = GetParam();
  if (absl::string_view(target) == "gfx1030") GTEST_SKIP() << "covered by gfx90a";
  Compiler* compiler = *CompilerForTarget(target);
  if (!compiler->Identity().ok()) {
    GTEST_SKIP() << "no " << VendorName(compiler->vendor()) << " compiler here: "
                 << compiler->Identity().status();
  }
  struct Shape {
    RopeStyle style;
    int head_dim, rotary_dim;
  };
  for (const Shape& shape : {Shape{RopeStyle::kNeox, 128, 0}, Shape{RopeStyle::kInterleaved, 64, 0},
                             Shape{RopeStyle::kNeox, 256, 0}, Shape{RopeStyle::kNeox, 128, 64}}) {
    RopeConfig config;
    config.head_dim = shape.head_dim;
    config.rotary_dim = shape.rotary_dim;
    config.dtype = dtype;
    config.style = shape.style;
    auto spec = RopeKernelSpec(config, RopeKernel::kRopeKvCache, target);
    ASSERT_TRUE(spec.ok()) << spec.status();
    auto code = compiler->Compile({spec->source, spec->kernel, spec->defines, target});
    ASSERT_TRUE(code.ok()) << target << " " << StyleName(shape.style) << " " << shape.head_dim << ": "
                           << code.status();
    EXPECT_TRUE(absl::StartsWith(*code, "\x7f" "ELF"));
    EXPECT_TRUE(absl::StrContains(*code, AlignedFunctionName(RopeKernel::kRopeKvCache)));
    EXPECT_TRUE(absl::StrContains(*code, UnalignedFunctionName(RopeKernel::kRopeKvCache)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Targets, KernelCompileTest,
    ::testing::Combine(::testing::Values("sm_80", "sm_90", "gfx90a", "gfx1030"),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kBF16)),
    [](const ::testing::TestParamInfo<Param>& info) {
      return absl::StrCat(std::get<0>(info.param), "_", DTypeName(std::get<1>(info.param)));
    });

}  // namespace
}  // namespace rope_jit
