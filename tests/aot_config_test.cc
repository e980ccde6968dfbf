// aot/aot_config.h and aot/aot_options.h: the shapes a BUILD file may list, and the AOT
// command line derived from the JIT options.
#include "aot/aot_config.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "aot/aot_options.h"
#include "gtest/gtest.h"
#include "jit/backends.h"

namespace rope_jit {
namespace {

TEST(AotConfigTest, ParsesEveryBakedField) {
  absl::StatusOr<RopeConfig> config =
      ParseAotConfig("dtype=f16,style=interleaved,head_dim=128,rotary_dim=64,position_columns=2");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->dtype, DType::kF16);
  EXPECT_EQ(config->style, RopeStyle::kInterleaved);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->rotary_dim, 64);
  EXPECT_EQ(config->position_columns, 2);
  config = ParseAotConfig("head_dim=80,style=neox,dtype=bf16");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->EffectiveRotaryDim(), 80);
}

// The aliases every tool accepts (rope/config.h ParseDType, ParseStyle) name the same bake.
TEST(AotConfigTest, AcceptsTheSharedAliases) {
  absl::StatusOr<RopeConfig> alias = ParseAotConfig("dtype=half,style=gptj,head_dim=64");
  ASSERT_TRUE(alias.ok()) << alias.status();
  EXPECT_EQ(alias->dtype, DType::kF16);
  EXPECT_EQ(alias->style, RopeStyle::kInterleaved);
  alias = ParseAotConfig("dtype=BFloat16,style=rotate_half,head_dim=64");
  ASSERT_TRUE(alias.ok()) << alias.status();
  EXPECT_EQ(alias->dtype, DType::kBF16);
  EXPECT_EQ(alias->style, RopeStyle::kNeox);
}

TEST(AotConfigTest, RejectsWhatItCannotBake) {
  for (const char* text :
       {"", "dtype=bf16,style=neox", "dtype=bf16,head_dim=128", "style=neox,head_dim=128",
        "dtype=fp8,style=neox,head_dim=128", "dtype=bf16,style=glm,head_dim=128",
        "dtype=bf16,style=neox,head_dim=12x", "dtype=bf16,style=neox,head_dim=128,theta=10000",
        "dtype=bf16,style=neox,head_dim=128,head_dim=64", "dtype=bf16,style=neox,head_dim=7"}) {
    absl::StatusOr<RopeConfig> config = ParseAotConfig(text);
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << "'" << text << "'";
    EXPECT_TRUE(absl::StrContains(config.status().message(), text)) << config.status();
  }
}

bool Contains(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

TEST(AotOptionsTest, NvccGetsEveryNvrtcOptionButDefaultDevice) {
  const std::vector<std::string> jit = CompilerForVendor(Vendor::kNvidia).Options("sm_90");
  absl::StatusOr<std::vector<std::string>> args =
      AotCompilerArgs(Vendor::kNvidia, jit, {"ROPE_HEAD_DIM=128"});
  ASSERT_TRUE(args.ok()) << args.status();
  const std::string joined = absl::StrJoin(*args, " ");
  EXPECT_TRUE(absl::StartsWith(joined, "-cubin -x cu ")) << joined;
  for (const std::string& option : jit) {
    EXPECT_EQ(Contains(*args, option), option != "-default-device") << option << " in " << joined;
  }
  EXPECT_EQ(args->back(), "-DROPE_HEAD_DIM=128");
}

TEST(AotOptionsTest, HipccGetsEveryHiprtcOptionButThePrelinkSwitch) {
  const std::vector<std::string> jit = CompilerForVendor(Vendor::kAmd).Options("gfx1030");
  absl::StatusOr<std::vector<std::string>> args = AotCompilerArgs(Vendor::kAmd, jit, {});
  ASSERT_TRUE(args.ok()) << args.status();
  const std::string joined = absl::StrJoin(*args, " ");
  EXPECT_TRUE(absl::StartsWith(joined, "--genco --hipcc-func-supp -include hip/hip_runtime.h "))
      << joined;
  EXPECT_FALSE(absl::StrContains(joined, "disable-llvm-passes")) << joined;
  EXPECT_FALSE(Contains(*args, "-Xclang")) << joined;
  for (const std::string& option : jit) {
    if (option == "-Xclang" || option == "-disable-llvm-passes") continue;
    EXPECT_TRUE(Contains(*args, option)) << option << " missing from " << joined;
  }
  EXPECT_TRUE(Contains(*args, "--offload-arch=gfx1030"));
}

TEST(AotOptionsTest, ClangGetsTheClangJitOptionsUnchanged) {
  const std::vector<std::string> jit = AmdClangCompiler().Options("gfx942:sramecc+:xnack-");
  absl::StatusOr<std::vector<std::string>> args =
      AotCompilerArgs(AotCompiler::kClang, jit, {"ROPE_HEAD_DIM=128"});
  ASSERT_TRUE(args.ok()) << args.status();
  std::vector<std::string> expected = jit;
  expected.push_back("-DROPE_HEAD_DIM=128");
  EXPECT_EQ(*args, expected);
  EXPECT_EQ(*ParseAotCompiler("clang"), AotCompiler::kClang);
  EXPECT_EQ(*ParseAotCompiler("hipcc"), AotCompiler::kHipcc);
  EXPECT_EQ(*ParseAotCompiler("nvcc"), AotCompiler::kNvcc);
  EXPECT_FALSE(ParseAotCompiler("gcc").ok());
}

TEST(AotOptionsTest, RejectsMalformedDefines) {
  for (const char* define : {"", "=1", "-O0"}) {
    EXPECT_FALSE(AotCompilerArgs(Vendor::kNvidia, {}, {define}).ok()) << define;
  }
}

}  // namespace
}  // namespace rope_jit
