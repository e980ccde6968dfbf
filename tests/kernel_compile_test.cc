// Every kernel compiles for the data-center targets CI can build for without a GPU, for
// each dtype x style x common head_dim, and the code object holds both entry points: NVRTC
// and hipRTC through CompilerForTarget, and MI300 (gfx942), RDNA3 (gfx1100) and RDNA4
// (gfx1201) through clang (jit/rocm/clang_compiler.h), which Debian's hipRTC cannot build.
// position_embeddings.hip includes rope.hip whole, so its compile covers rope's code
// too; rope itself is compiled once per target and dtype. rope_kv_cache.hip (rope.hip
// plus the cache stores) is compiled for the shapes that exercise its distinct paths. rope_kv_cache.hip (rope.hip
// plus the cache stores) is compiled for the shapes that exercise its distinct paths.
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "rope/kernel_specs.h"

namespace rope_jit {
namespace {

enum class Through { kCompilerForTarget, kClang };
using Param = std::tuple<Through, const char*, DType>;

class KernelCompileTest : public ::testing::TestWithParam<Param> {};

TEST_P(KernelCompileTest, EveryStyleAndHeadDimCompiles) {
  const auto [through, target, dtype] = GetParam();
  Compiler* compiler =
      through == Through::kClang ? &AmdClangCompiler() : *CompilerForTarget(target);
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
      EXPECT_TRUE(absl::StrContains(*code, AlignedEarlyFunctionName(kernel)));
        EXPECT_TRUE(absl::StrContains(*code, AlignedEarlyFunctionName(kernel)));
      }
    }
  }
}

// The fused RoPE + KV-cache kernel: both pairings, the narrowest and widest common
// head_dims, and partial rotary (K's and V's pass-through dims go to the cache).
TEST_P(KernelCompileTest, RopeKvCacheCompiles) {
  const auto [through, target, dtype] = GetParam();
  const absl::string_view name = target;
  if (name == "gfx1030" || name == "gfx1100" || name == "gfx1201") {
    GTEST_SKIP() << "the data-center targets (sm_80, sm_90, gfx90a, gfx942) cover it";
  }
  Compiler* compiler =
      through == Through::kClang ? &AmdClangCompiler() : *CompilerForTarget(target);
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
    EXPECT_TRUE(absl::StrContains(*code, AlignedEarlyFunctionName(RopeKernel::kRopeKvCache)));
  }
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return absl::StrCat(std::get<0>(info.param) == Through::kClang ? "clang_" : "",
                      std::get<1>(info.param), "_", DTypeName(std::get<2>(info.param)));
}

// MRoPE variants (contiguous, interleaved, partial rotary, interleaved pairing): the
// position column per pair is the only code they add.
class MropeCompileTest : public ::testing::TestWithParam<Param> {};

TEST_P(MropeCompileTest, BothVariantsCompile) {
  const auto [through, target, dtype] = GetParam();
  Compiler* compiler =
      through == Through::kClang ? &AmdClangCompiler() : *CompilerForTarget(target);
  if (!compiler->Identity().ok()) {
    GTEST_SKIP() << "no " << VendorName(compiler->vendor()) << " compiler here: "
                 << compiler->Identity().status();
  }
  struct Variant {
    int head_dim, rotary_dim;
    std::vector<int> section;
    bool interleaved;
    RopeStyle style;
  };
  const Variant variants[] = {
      {128, 128, {16, 24, 24}, false, RopeStyle::kNeox},      // Qwen2-VL / 2.5-VL
      {128, 128, {24, 20, 20}, true, RopeStyle::kNeox},       // Qwen3-VL
      {256, 64, {11, 11, 10}, true, RopeStyle::kNeox},        // partial rotary
      {80, 64, {8, 12, 12}, false, RopeStyle::kInterleaved},  // interleaved pairs
  };
  for (const Variant& v : variants) {
    RopeConfig config;
    config.head_dim = v.head_dim;
    config.rotary_dim = v.rotary_dim;
    config.dtype = dtype;
    config.style = v.style;
    config.position_columns = 3;
    config.mrope_section = v.section;
    config.mrope_interleaved = v.interleaved;
    for (RopeKernel kernel : {RopeKernel::kPositionEmbeddings, RopeKernel::kRope}) {
      auto spec = RopeKernelSpec(config, kernel, target);
      ASSERT_TRUE(spec.ok()) << spec.status();
      auto code = compiler->Compile({spec->source, spec->kernel, spec->defines, target});
      ASSERT_TRUE(code.ok()) << target << " head_dim " << v.head_dim << " interleaved "
                             << v.interleaved << ": " << code.status();
      EXPECT_TRUE(absl::StartsWith(*code, "\x7f" "ELF"));
      EXPECT_TRUE(absl::StrContains(*code, AlignedFunctionName(kernel)));
      EXPECT_TRUE(absl::StrContains(*code, UnalignedFunctionName(kernel)));
      EXPECT_TRUE(absl::StrContains(*code, AlignedEarlyFunctionName(kernel)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Targets, MropeCompileTest,
    ::testing::Combine(::testing::Values(Through::kCompilerForTarget),
                       ::testing::Values("sm_90", "gfx90a"),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kBF16)),
    ParamName);

INSTANTIATE_TEST_SUITE_P(
    Targets, KernelCompileTest,
    ::testing::Combine(::testing::Values(Through::kCompilerForTarget),
                       ::testing::Values("sm_80", "sm_90", "gfx90a", "gfx1030"),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kBF16)),
    ParamName);

INSTANTIATE_TEST_SUITE_P(
    ClangTargets, KernelCompileTest,
    ::testing::Combine(::testing::Values(Through::kClang),
                       ::testing::Values("gfx942", "gfx1100", "gfx1201"),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kBF16)),
    ParamName);

}  // namespace
}  // namespace rope_jit
