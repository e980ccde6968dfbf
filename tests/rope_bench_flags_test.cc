// tools/rope_bench_flags.h: rope_bench's command line, parsed without a GPU.
#include "tools/rope_bench_flags.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace rope_jit {
namespace {

absl::Status Parse(std::vector<std::string> args, BenchOptions* options) {
  args.insert(args.begin(), "rope_bench");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return ParseBenchFlags(static_cast<int>(argv.size()), argv.data(), options);
}

TEST(RopeBenchFlagsTest, DefaultsAreTheFullMatrix) {
  BenchOptions options;
  ASSERT_TRUE(Parse({}, &options).ok());
  EXPECT_EQ(options.tokens, (std::vector<int64_t>{1, 8, 64, 4096, 32768}));
  ASSERT_EQ(options.heads.size(), 2u);
  EXPECT_EQ(options.heads[0].q, 32);
  EXPECT_EQ(options.heads[0].kv, 8);
  EXPECT_EQ(options.heads[1].q, 8);
  EXPECT_EQ(options.heads[1].kv, 1);
  EXPECT_EQ(options.head_dims, (std::vector<int>{64, 128, 256}));
  EXPECT_EQ(options.dtypes, (std::vector<DType>{DType::kF32, DType::kF16, DType::kBF16}));
  EXPECT_EQ(options.styles, (std::vector<RopeStyle>{RopeStyle::kNeox, RopeStyle::kInterleaved}));
  EXPECT_TRUE(options.graph);
  EXPECT_EQ(options.batches, 7);
}

TEST(RopeBenchFlagsTest, QuickShrinksWhatTheCommandLineLeftUnset) {
  BenchOptions options;
  ASSERT_TRUE(Parse({"--quick", "--head_dims=64", "--no-graph"}, &options).ok());
  EXPECT_EQ(options.tokens, (std::vector<int64_t>{1, 64, 32768}));
  EXPECT_EQ(options.head_dims, (std::vector<int>{64}));
  EXPECT_EQ(options.batches, 5);
  EXPECT_FALSE(options.graph);
}

// The dtype and style names are rope/config.h's ParseDType / ParseStyle, plus "all".
TEST(RopeBenchFlagsTest, ListsTakeTheSharedSpellingsWithoutRepeats) {
  BenchOptions options;
  ASSERT_TRUE(Parse({"--shapes=decode,1,4096", "--heads", "32/8,8q1kv,32/8",
                     "--dtypes=half,BF16,float16", "--styles=gptj,rotate_half"},
                    &options)
                  .ok());
  EXPECT_EQ(options.tokens, (std::vector<int64_t>{1, 8, 64, 4096}));
  ASSERT_EQ(options.heads.size(), 2u);
  EXPECT_EQ(options.heads[1].q, 8);
  EXPECT_EQ(options.dtypes, (std::vector<DType>{DType::kF16, DType::kBF16}));
  EXPECT_EQ(options.styles, (std::vector<RopeStyle>{RopeStyle::kInterleaved, RopeStyle::kNeox}));
  ASSERT_TRUE(Parse({"--dtypes=all", "--styles=both"}, &options).ok());
  EXPECT_EQ(options.dtypes.size(), 3u);
  EXPECT_EQ(options.styles.size(), 2u);
}

TEST(RopeBenchFlagsTest, BadUsageNamesTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--shapes=0"}, "--shapes=0"},
      {{"--heads=32"}, "--heads=32"},
      {{"--head_dims=33"}, "--head_dims=33"},
      {{"--dtypes=fp8"}, "--dtypes=fp8"},
      {{"--styles=glm"}, "--styles=glm"},
      {{"--batches=0"}, "batches"},
      {{"--quick=1"}, "takes no value"},
      {{"--frobnicate"}, "unknown flag --frobnicate"},
      {{"--json"}, "--json needs a value"},
      {{"positional"}, "unexpected argument 'positional'"},
      {{"--service_only", "--skip_service"}, "leave nothing to run"},
  };
  for (const auto& [args, says] : cases) {
    BenchOptions options;
    const absl::Status status = Parse(args, &options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << args[0];
    EXPECT_TRUE(absl::StrContains(status.message(), says)) << status;
  }
}

TEST(RopeBenchFlagsTest, UsageNamesEveryFlag) {
  const std::string usage = BenchUsage();
  for (const char* flag : {"--quick", "--service_only", "--shapes", "--heads", "--head_dims",
                           "--dtypes", "--styles", "--json", "--batches", "--no_graph"}) {
    EXPECT_TRUE(absl::StrContains(usage, flag)) << flag;
  }
}

}  // namespace
}  // namespace rope_jit
