// Every kernel compiles for the data-center targets CI can build for without a GPU, for
// each dtype x style x common head_dim, and the code object holds both entry points: NVRTC
// and hipRTC through CompilerForTarget, and MI300 (gfx942), RDNA3 (gfx1100) and RDNA4
// (gfx1201) through clang (jit/rocm/clang_compiler.h), which Debian's hipRTC cannot build.
// position_embeddings.hip includes rope.hip whole, so its compile covers rope's code
// too; rope itself is compiled once per target and dtype.
#include <string>
#include <tuple>

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
      }
    }
  }
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return absl::StrCat(std::get<0>(info.param) == Through::kClang ? "clang_" : "",
                      std::get<1>(info.param), "_", DTypeName(std::get<2>(info.param)));
}

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
