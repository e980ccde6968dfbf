// tools/warm_plan.h: jit_warm's flags, target choice, manifests and the items they make.

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "rope/kernel_specs.h"
#include "tests/test_files.h"
#include "tools/warm_plan.h"

namespace rope_jit {
namespace {

// ---------------------------------------------------------------------------------------
// Helpers

// A validator that accepts exactly `supported` (and says so when it refuses).
TargetValidator Accepting(std::vector<std::string> supported) {
  return [supported](absl::string_view target) -> absl::Status {
    for (const std::string& s : supported) {
      if (s == target) return absl::OkStatus();
    }
    return absl::UnimplementedError(absl::StrCat("cannot compile for ", target, "; it supports ",
                                                 absl::StrJoin(supported, ", ")));
  };
}

std::vector<std::string> Descriptions(const std::vector<WarmItem>& items) {
  std::vector<std::string> lines;
  for (const WarmItem& item : items) lines.push_back(DescribeItem(item));
  return lines;
}

// ---------------------------------------------------------------------------------------
// Flags

TEST(WarmFlagsTest, DefaultsMatchTheDocumentedScope) {
  absl::StatusOr<WarmFlags> flags = ParseWarmFlags({});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_TRUE(flags->arch.empty());
  EXPECT_EQ(flags->head_dims, (std::vector<int>{64, 128}));
  EXPECT_TRUE(flags->rotary_dims.empty());
  EXPECT_EQ(flags->dtypes, (std::vector<DType>{DType::kF16, DType::kBF16, DType::kF32}));
  EXPECT_EQ(flags->styles, (std::vector<RopeStyle>{RopeStyle::kNeox, RopeStyle::kInterleaved}));
  EXPECT_EQ(flags->kernels.size(), 3u);
  EXPECT_FALSE(flags->cache_dir.has_value());
  EXPECT_EQ(flags->jobs, 0);
  EXPECT_FALSE(flags->dry_run || flags->verify || flags->stats || flags->help);
}

TEST(WarmFlagsTest, AcceptsEveryValueSpelling) {
  absl::StatusOr<WarmFlags> flags = ParseWarmFlags(
      {"--arch=sm_90,gfx90a:sramecc+:xnack-", "--head_dim", "128", "-rotary_dim=64",
       "--dtype=bf16,fp16,bf16", "--style=interleaved", "--kernels=rope", "--cache_dir=/x",
       "--jobs=3", "--dry_run", "--verify=false", "--stats=1", "--manifest", "m.txt"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->arch, (std::vector<std::string>{"sm_90", "gfx90a:sramecc+:xnack-"}));
  EXPECT_EQ(flags->head_dims, (std::vector<int>{128}));
  EXPECT_EQ(flags->rotary_dims, (std::vector<int>{64}));
  EXPECT_EQ(flags->dtypes, (std::vector<DType>{DType::kBF16, DType::kF16}));  // deduplicated
  EXPECT_EQ(flags->styles, (std::vector<RopeStyle>{RopeStyle::kInterleaved}));
  EXPECT_EQ(flags->kernels, (std::vector<RopeKernel>{RopeKernel::kRope}));
  EXPECT_EQ(flags->cache_dir, "/x");
  EXPECT_EQ(flags->jobs, 3);
  EXPECT_EQ(flags->manifest, "m.txt");
  EXPECT_TRUE(flags->dry_run);
  EXPECT_FALSE(flags->verify);
  EXPECT_TRUE(flags->stats);
}

TEST(WarmFlagsTest, AllAndNegatedBooleans) {
  absl::StatusOr<WarmFlags> flags =
      ParseWarmFlags({"--dtype=all", "--kernels=all", "--style=all", "--dry_run", "--nodry_run", "-h"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->dtypes.size(), 3u);
  EXPECT_EQ(flags->kernels.size(), 3u);
  EXPECT_EQ(flags->styles.size(), 2u);
  EXPECT_FALSE(flags->dry_run);
  EXPECT_TRUE(flags->help);
}

TEST(WarmFlagsTest, RejectsBadUsageWithAClearMessage) {
  const std::map<std::vector<std::string>, std::string> cases = {
      {{"--bogus"}, "unknown flag '--bogus'"},
      {{"--dtype=f64"}, "unknown dtype 'f64'"},
      {{"--style=rotate"}, "unknown style 'rotate'"},
      {{"--kernels=attention"}, "unknown kernel 'attention'"},
      {{"--head_dim=abc"}, "'abc' is not an integer"},
      {{"--head_dim=64,"}, "empty list element"},
      {{"--arch=banana"}, "'banana' is not a target id"},
      {{"--jobs=0"}, "--jobs=0"},
      {{"--head_dim"}, "--head_dim needs a value"},
      {{"--head_dim", "--dtype=bf16"}, "--head_dim needs a value"},
      {{"--verify=maybe"}, "not a boolean"},
      {{"--nohead_dim"}, "unknown flag"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"--", "stray"}, "unexpected argument 'stray'"},
      {{"--cache_dir="}, "--cache_dir needs a directory"},
  };
  for (const auto& [args, message] : cases) {
    absl::StatusOr<WarmFlags> flags = ParseWarmFlags(args);
    ASSERT_FALSE(flags.ok()) << absl::StrJoin(args, " ");
    EXPECT_TRUE(absl::IsInvalidArgument(flags.status())) << flags.status();
    EXPECT_TRUE(absl::StrContains(flags.status().message(), message))
        << absl::StrJoin(args, " ") << " -> " << flags.status();
  }
}

TEST(WarmFlagsTest, UsageNamesEveryFlag) {
  const std::string usage = WarmUsage(7);
  for (const char* flag : {"--arch", "--head_dim", "--rotary_dim", "--position_columns", "--dtype",
                           "--style", "--kernels", "--cache_dir", "--jobs", "--manifest",
                           "--dry_run", "--verify", "--stats", "--help", "--hf_config"}) {
    EXPECT_TRUE(absl::StrContains(usage, flag)) << flag;
  }
  EXPECT_TRUE(absl::StrContains(usage, "default 7"));
}

TEST(WarmFlagsTest, HfConfigListAndItsConflicts) {
  absl::StatusOr<WarmFlags> flags = ParseWarmFlags({"--hf_config=a.json,b.json", "--arch=sm_90"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->hf_configs, (std::vector<std::string>{"a.json", "b.json"}));
  EXPECT_FALSE(flags->dtypes_given);
  EXPECT_TRUE(ParseWarmFlags({"--hf_config", "a.json", "--dtype=f16"})->dtypes_given);
  for (const char* shape : {"--head_dim=64", "--rotary_dim=32", "--position_columns=2",
                            "--style=neox", "--manifest=m.txt"}) {
    absl::StatusOr<WarmFlags> bad = ParseWarmFlags({"--hf_config=a.json", shape});
    EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << shape;
    EXPECT_TRUE(absl::StrContains(bad.status().message(), "--hf_config takes the shapes"))
        << bad.status();
  }
  EXPECT_FALSE(ParseWarmFlags({"--hf_config="}).ok());
}

// ---------------------------------------------------------------------------------------
// Targets

TEST(ChooseTargetsTest, NamedTargetsMustBeBuildable) {
  TargetValidator validate = Accepting({"sm_90", "gfx90a"});
  absl::StatusOr<TargetChoice> choice = ChooseTargets({"sm_90", "gfx90a", "sm_90"}, {"sm_80"}, validate);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->usable, (std::vector<std::string>{"sm_90", "gfx90a"}));
  EXPECT_TRUE(choice->unsupported.empty());

  choice = ChooseTargets({"gfx1100"}, {}, validate);
  EXPECT_TRUE(absl::IsInvalidArgument(choice.status()));
  EXPECT_TRUE(absl::StrContains(choice.status().message(), "--arch=gfx1100"));
  EXPECT_TRUE(absl::StrContains(choice.status().message(), "supports sm_90, gfx90a"));

  choice = ChooseTargets({"banana"}, {}, validate);
  EXPECT_TRUE(absl::IsInvalidArgument(choice.status()));
}

TEST(ChooseTargetsTest, GpusPresentComeBeforeTheDefaultList) {
  absl::StatusOr<TargetChoice> choice =
      ChooseTargets({}, {"sm_90", "sm_90"}, Accepting({"sm_90", "gfx90a"}));
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->usable, (std::vector<std::string>{"sm_90"}));
  EXPECT_EQ(choice->source, "the GPUs present");
}

TEST(ChooseTargetsTest, DefaultListIsFilteredToWhatCompilersSupport) {
  // A machine whose compilers cannot build gfx942 (as Debian's hipRTC alone).
  absl::StatusOr<TargetChoice> choice = ChooseTargets({}, {}, Accepting({"gfx90a", "sm_80", "sm_90"}));
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->usable, (std::vector<std::string>{"gfx90a", "sm_80", "sm_90"}));
  ASSERT_EQ(choice->unsupported.size(), 1u);
  EXPECT_EQ(choice->unsupported[0].first, "gfx942");
  EXPECT_TRUE(absl::StrContains(choice->unsupported[0].second, "cannot compile for gfx942"));

  choice = ChooseTargets({}, {}, Accepting({}));
  EXPECT_TRUE(absl::IsFailedPrecondition(choice.status())) << choice.status();
}

// ---------------------------------------------------------------------------------------
// Manifest

TEST(ManifestTest, ParsesCommentsBlankLinesAndCarriageReturns) {
  absl::StatusOr<std::vector<ManifestEntry>> entries = ParseManifest(
      "# models for the fleet\n"
      "\n"
      "arch=sm_90 kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=neox  # llama\r\n"
      "   \t\n"
      "head_dim=96\tdtype=f16 style=interleaved position_columns=2\n",
      "m.txt");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  const ManifestEntry& first = (*entries)[0];
  EXPECT_EQ(first.line, 3);
  EXPECT_EQ(first.arch, "sm_90");
  EXPECT_EQ(first.kernel, RopeKernel::kRope);
  EXPECT_EQ(first.head_dim, 128);
  EXPECT_EQ(first.rotary_dim, 64);
  EXPECT_EQ(first.dtype, DType::kBF16);
  EXPECT_EQ(first.style, RopeStyle::kNeox);
  EXPECT_FALSE(first.position_columns.has_value());
  const ManifestEntry& second = (*entries)[1];
  EXPECT_EQ(second.line, 5);
  EXPECT_FALSE(second.arch.has_value());
  EXPECT_FALSE(second.kernel.has_value());
  EXPECT_EQ(second.position_columns, 2);
}

TEST(ManifestTest, BadLineNamesFileAndLine) {
  const std::map<std::string, std::string> cases = {
      {"head_dim=64\nhead_dim=128 colour=blue\n", "m.txt:2: unknown key 'colour'"},
      {"\n\nhead_dim 64\n", "m.txt:3: 'head_dim' is not key=value"},
      {"head_dim=\n", "m.txt:1: 'head_dim=' is not key=value"},
      {"head_dim=64 head_dim=128\n", "m.txt:1: key 'head_dim' given twice"},
      {"head_dim=64,128\n", "m.txt:1: head_dim=64,128: one value per key"},
      {"dtype=f64\n", "m.txt:1: dtype=f64: unknown dtype 'f64'"},
      {"arch=banana\n", "m.txt:1: arch=banana: 'banana' is not a target id"},
      {"# ok\nkernel=rope\nhead_dim=6x\n", "m.txt:3: head_dim=6x: '6x' is not an integer"},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<std::vector<ManifestEntry>> entries = ParseManifest(text, "m.txt");
    ASSERT_FALSE(entries.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(entries.status()));
    EXPECT_TRUE(absl::StrContains(entries.status().message(), message)) << entries.status();
  }
}

TEST(ManifestTest, DescribeItemIsManifestSyntax) {
  WarmItem item;
  item.target = "gfx90a:sramecc+:xnack-";
  item.kernel = RopeKernel::kPositionEmbeddings;
  item.config.head_dim = 128;
  item.config.rotary_dim = 64;
  item.config.position_columns = 2;
  item.config.dtype = DType::kF16;
  item.config.style = RopeStyle::kInterleaved;
  const std::string line = DescribeItem(item);
  EXPECT_EQ(line,
            "arch=gfx90a:sramecc+:xnack- kernel=position_embeddings head_dim=128 rotary_dim=64 "
            "position_columns=2 dtype=f16 style=interleaved");

  absl::StatusOr<std::vector<ManifestEntry>> entries = ParseManifest(line, "m");
  ASSERT_TRUE(entries.ok()) << entries.status();
  TargetChoice none;
  absl::StatusOr<std::vector<WarmItem>> items =
      BuildItems(WarmFlags{}, none, &*entries, "m", Accepting({"gfx90a:sramecc+:xnack-"}));
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(Descriptions(*items), std::vector<std::string>{line});
}

// ---------------------------------------------------------------------------------------
// Items

TEST(BuildItemsTest, CrossProductOfFlagsAndTargets) {
  absl::StatusOr<WarmFlags> flags = ParseWarmFlags({"--head_dim=64,128", "--dtype=bf16", "--style=neox"});
  ASSERT_TRUE(flags.ok());
  TargetChoice targets;
  targets.usable = {"sm_90", "gfx90a"};
  targets.unsupported = {{"gfx942", "no gfx942 here"}};
  absl::StatusOr<std::vector<WarmItem>> items = BuildItems(*flags, targets, nullptr, "", Accepting({}));
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u * 3 * 2);  // targets x kernels x head_dims
  int unsupported = 0;
  for (const WarmItem& item : *items) {
    EXPECT_EQ(item.config.rotary_dim, item.config.head_dim);  // default: the whole head
    if (item.target == "gfx942") {
      EXPECT_EQ(item.unsupported, "no gfx942 here");
      ++unsupported;
    } else {
      EXPECT_TRUE(item.unsupported.empty());
    }
  }
  EXPECT_EQ(unsupported, 6);
  // Grouped by target, in the order the targets were chosen.
  EXPECT_EQ((*items)[0].target, "sm_90");
  EXPECT_EQ((*items)[6].target, "gfx90a");
  EXPECT_EQ((*items)[0].kernel, RopeKernel::kRope);
  EXPECT_EQ((*items)[0].config.head_dim, 64);
}

TEST(BuildItemsTest, InvalidConfigIsAUsageErrorEvenWithoutTargets) {
  const std::map<std::vector<std::string>, std::string> cases = {
      {{"--head_dim=7"}, "head_dim must be even and in [32, 512], got 7"},
      {{"--head_dim=64,128", "--rotary_dim=128"}, "head_dim=64 rotary_dim=128"},
      {{"--rotary_dim=30", "--position_columns=2"}, "divisible by 2 * position_columns"},
      {{"--position_columns=3"}, "position_columns must be 1 or 2"},
  };
  for (const auto& [args, message] : cases) {
    absl::StatusOr<WarmFlags> flags = ParseWarmFlags(args);
    ASSERT_TRUE(flags.ok()) << flags.status();
    absl::StatusOr<std::vector<WarmItem>> items = BuildItems(*flags, TargetChoice{}, nullptr, "", Accepting({}));
    ASSERT_FALSE(items.ok()) << absl::StrJoin(args, " ");
    EXPECT_TRUE(absl::IsInvalidArgument(items.status()));
    EXPECT_TRUE(absl::StrContains(items.status().message(), message)) << items.status();
  }
}

TEST(BuildItemsTest, ManifestKeysOverrideFlagsAndOmittedArchMeansTheChosenTargets) {
  absl::StatusOr<std::vector<ManifestEntry>> entries = ParseManifest(
      "arch=sm_90 kernel=rope head_dim=128 dtype=bf16 style=neox\n"
      "kernel=rope head_dim=128 dtype=bf16 style=neox\n"       // sm_90 again: deduplicated
      "arch=gfx942 kernel=rope head_dim=64 dtype=f16 style=neox\n"  // travels; unsupported here
      "head_dim=64 rotary_dim=32 dtype=f32 style=interleaved\n",    // every kernel (flags)
      "m.txt");
  ASSERT_TRUE(entries.ok()) << entries.status();
  TargetChoice targets;
  targets.usable = {"sm_90"};
  absl::StatusOr<std::vector<WarmItem>> items =
      BuildItems(WarmFlags{}, targets, &*entries, "m.txt", Accepting({"sm_90"}));
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(Descriptions(*items),
            (std::vector<std::string>{
                "arch=sm_90 kernel=rope head_dim=128 rotary_dim=128 dtype=bf16 style=neox",
                "arch=sm_90 kernel=rope head_dim=64 rotary_dim=32 dtype=f32 style=interleaved",
                "arch=sm_90 kernel=position_embeddings head_dim=64 rotary_dim=32 dtype=f32 style=interleaved",
                "arch=sm_90 kernel=rope_kv_cache head_dim=64 rotary_dim=32 dtype=f32 style=interleaved",
                "arch=gfx942 kernel=rope head_dim=64 rotary_dim=64 dtype=f16 style=neox",
            }));
  EXPECT_TRUE(absl::StrContains(items->back().unsupported, "cannot compile for gfx942"));
}

TEST(BuildItemsTest, InvalidManifestCombinationNamesTheLine) {
  absl::StatusOr<std::vector<ManifestEntry>> entries =
      ParseManifest("arch=sm_90 head_dim=128\n# x\narch=sm_90 head_dim=130 rotary_dim=200\n", "m.txt");
  ASSERT_TRUE(entries.ok()) << entries.status();
  absl::StatusOr<std::vector<WarmItem>> items =
      BuildItems(WarmFlags{}, TargetChoice{}, &*entries, "m.txt", Accepting({"sm_90"}));
  ASSERT_FALSE(items.ok());
  EXPECT_TRUE(absl::StrContains(items.status().message(), "m.txt:3:")) << items.status();
}

HfConfigFile HfFile(const std::string& name) {
  return HfConfigFile{name, ReadFile("tests/data/hf_configs/" + name)};
}

TEST(BuildItemsTest, HfConfigsGiveExactlyWhatTheModelsNeed) {
  TargetChoice targets;
  targets.usable = {"sm_90"};
  targets.unsupported = {{"gfx942", "not here"}};
  WarmFlags flags = *ParseWarmFlags({"--hf_config=x", "--kernels=rope"});
  absl::StatusOr<std::vector<WarmItem>> items = BuildItemsFromHfConfigs(
      flags, targets,
      {HfFile("qwen2.5-vl-7b-instruct.json"), HfFile("glm-4-9b-chat.json"),
       HfFile("embeddinggemma-gemma3-text.json"), HfFile("llama-3.1-8b.json"),
       HfFile("mistral-7b-instruct-v0.1.json")});  // shares Llama's shape: one item
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(Descriptions(*items),
            (std::vector<std::string>{
                "arch=sm_90 kernel=rope head_dim=128 rotary_dim=128 position_columns=3 dtype=bf16 "
                "style=neox mrope_section=16/24/24",
                "arch=sm_90 kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=interleaved",
                // Gemma-3's two layer types differ only in theta: one code object.
                "arch=sm_90 kernel=rope head_dim=256 rotary_dim=256 dtype=f32 style=neox",
                "arch=sm_90 kernel=rope head_dim=128 rotary_dim=128 dtype=bf16 style=neox",
                "arch=gfx942 kernel=rope head_dim=128 rotary_dim=128 position_columns=3 dtype=bf16 "
                "style=neox mrope_section=16/24/24",
                "arch=gfx942 kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=interleaved",
                "arch=gfx942 kernel=rope head_dim=256 rotary_dim=256 dtype=f32 style=neox",
                "arch=gfx942 kernel=rope head_dim=128 rotary_dim=128 dtype=bf16 style=neox"}));
  EXPECT_EQ((*items)[4].unsupported, "not here");

  // --dtype replaces the models' own; MRoPE interleaving is part of the item.
  flags = *ParseWarmFlags({"--hf_config=x", "--kernels=all", "--dtype=f16,f32"});
  targets.unsupported.clear();
  items = BuildItemsFromHfConfigs(flags, targets, {HfFile("qwen3-vl-8b-instruct.json")});
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 6u);  // 3 kernels x 2 dtypes
  EXPECT_EQ(DescribeItem((*items)[4]),
            "arch=sm_90 kernel=position_embeddings head_dim=128 rotary_dim=128 position_columns=3 "
            "dtype=f32 style=neox mrope_section=24/20/20 mrope_interleaved=true");
  EXPECT_TRUE(RopeKernelSpec((*items)[4].config, (*items)[4].kernel, "sm_90").ok());
}

TEST(BuildItemsTest, HfConfigErrorsNameTheFile) {
  TargetChoice targets;
  targets.usable = {"sm_90"};
  const WarmFlags flags = *ParseWarmFlags({"--hf_config=x"});
  auto error = [&](const std::string& name, const std::string& text) {
    return BuildItemsFromHfConfigs(flags, targets, {HfConfigFile{name, text}}).status();
  };
  absl::Status no_dtype = error("nodtype.json", R"({"head_dim": 128, "max_position_embeddings": 8})");
  EXPECT_TRUE(absl::IsInvalidArgument(no_dtype));
  EXPECT_TRUE(absl::StrContains(no_dtype.message(), "nodtype.json: names no torch_dtype")) << no_dtype;
  absl::Status broken = error("broken.json", "{");
  EXPECT_TRUE(absl::StrContains(broken.message(), "broken.json: config.json: not valid JSON")) << broken;
  absl::Status odd = error("odd.json", R"({"head_dim": 127, "max_position_embeddings": 8,
                                          "torch_dtype": "bfloat16"})");
  EXPECT_TRUE(absl::StrContains(odd.message(), "odd.json: ")) << odd;
  EXPECT_TRUE(absl::StrContains(odd.message(), "head_dim")) << odd;
}

TEST(ManifestTest, MropeItemsRoundTripThroughTheManifest) {
  TargetChoice targets;
  targets.usable = {"sm_90"};
  const WarmFlags flags = *ParseWarmFlags({"--hf_config=x", "--kernels=rope"});
  const std::vector<WarmItem> items =
      *BuildItemsFromHfConfigs(flags, targets, {HfFile("qwen3-vl-8b-instruct.json")});
  ASSERT_EQ(items.size(), 1u);
  const std::string line = DescribeItem(items[0]);
  absl::StatusOr<std::vector<ManifestEntry>> entries = ParseManifest(line, "listing");
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[0].mrope_section, (std::vector<int>{24, 20, 20}));
  EXPECT_EQ((*entries)[0].mrope_interleaved, true);
  absl::StatusOr<std::vector<WarmItem>> rebuilt =
      BuildItems(*ParseWarmFlags({}), targets, &*entries, "listing", Accepting({"sm_90"}));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(Descriptions(*rebuilt), std::vector<std::string>{line});
  EXPECT_FALSE(ParseManifest("mrope_section=16/x/24", "m").ok());
  EXPECT_FALSE(ParseManifest("mrope_interleaved=maybe", "m").ok());
}

TEST(BuildItemsTest, InterleaveByTargetAlternatesVendors) {
  std::vector<WarmItem> items(5);
  items[0].target = items[1].target = items[2].target = "gfx90a";
  items[3].target = items[4].target = "sm_90";
  EXPECT_EQ(InterleaveByTarget(items), (std::vector<size_t>{0, 3, 1, 4, 2}));
}

}  // namespace
}  // namespace rope_jit
