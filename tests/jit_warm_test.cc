// tools/jit_warm: the flag and manifest rules (tools/warm_plan.h), the read-only cache
// probe (tools/cache_probe.h), and the real binary run as a subprocess with real NVRTC /
// hipRTC compiles over small scopes.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "rope/kernel_specs.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"
#include "tools/cache_probe.h"
#include "tests/redis_server.h"
#include "tools/warm_plan.h"

namespace rope_jit {
namespace {

// ---------------------------------------------------------------------------------------
// Helpers

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

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

// ---------------------------------------------------------------------------------------
// Cache probe

TEST(CacheProbeTest, ReportsEachStateAndChangesNothing) {
  const std::string dir = TempPath("probe");
  CacheKey key{"kernel=rope;target=sm_90", std::string(32, 'a')};
  EXPECT_EQ(ProbeEntry(dir, key, true).state, EntryState::kMissing);
  EXPECT_FALSE(Exists(dir));  // probing never creates the directory

  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string path = CacheEntryPath(dir, key);
  WriteFile(path, EncodeCacheEntry(key, "code object"));
  struct stat before;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kPresent);
  EntryProbe valid = ProbeEntry(dir, key, true);
  EXPECT_EQ(valid.state, EntryState::kValid);
  EXPECT_EQ(valid.payload, "code object");
  struct stat after;
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);  // no LRU touch
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);

  std::string bytes = ReadFile(path);
  bytes[bytes.size() - 3] ^= 0x40;
  WriteFile(path, bytes);
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kPresent);  // only a stat
  EntryProbe damaged = ProbeEntry(dir, key, true);
  EXPECT_EQ(damaged.state, EntryState::kDamaged);
  EXPECT_TRUE(absl::StrContains(damaged.detail, "checksum")) << damaged.detail;
  EXPECT_TRUE(Exists(path));  // reported, not removed

  WriteFile(path, "short");
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kDamaged);
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  EXPECT_EQ(ProbeEntry(dir, key, false).state, EntryState::kDamaged);
}

// ---------------------------------------------------------------------------------------
// The binary

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

// `environment` (NAME=value ...) and `shell_prefix` (e.g. "ulimit -f 8;") go before
// the command; `tag` keeps the output files of concurrent runs apart.
RunResult RunWarm(const std::string& args, const std::string& environment = "",
                  const std::string& shell_prefix = "", const std::string& tag = "") {
  const std::string out_path = TempPath("out" + tag);
  const std::string err_path = TempPath("err" + tag);
  const std::string command = absl::StrCat(
      "(", shell_prefix, environment, " ", RunfilePath("tools/jit_warm"), " ", args, ") >", out_path,
      " 2>", err_path, " </dev/null");
  RunResult result;
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system(command.c_str());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

// The counts of the "summary:" line: compiled, already cached, repaired, failed, unsupported.
std::map<std::string, int> Summary(const RunResult& run) {
  std::map<std::string, int> counts;
  std::smatch match;
  const std::regex line("summary: compiled (\\d+), already cached (\\d+), repaired (\\d+), "
                        "failed (\\d+), unsupported (\\d+);");
  if (std::regex_search(run.out, match, line)) {
    counts["compiled"] = std::stoi(match[1]);
    counts["cached"] = std::stoi(match[2]);
    counts["repaired"] = std::stoi(match[3]);
    counts["failed"] = std::stoi(match[4]);
    counts["unsupported"] = std::stoi(match[5]);
  }
  return counts;
}

std::map<std::string, int> Counts(int compiled, int cached, int repaired, int failed, int unsupported) {
  return {{"compiled", compiled},
          {"cached", cached},
          {"repaired", repaired},
          {"failed", failed},
          {"unsupported", unsupported}};
}

struct EntryFile {
  ino_t inode;
  std::string bytes;
  bool operator==(const EntryFile& other) const { return inode == other.inode && bytes == other.bytes; }
};

std::map<std::string, EntryFile> Entries(const std::string& dir) {
  std::map<std::string, EntryFile> entries;
  FILE* listing = popen(absl::StrCat("ls ", dir, " 2>/dev/null").c_str(), "r");
  char name[512];
  while (listing != nullptr && fgets(name, sizeof(name), listing) != nullptr) {
    std::string file(name);
    if (!file.empty() && file.back() == '\n') file.pop_back();
    if (!DiskCache::IsEntryFileName(file)) continue;
    const std::string path = absl::StrCat(dir, "/", file);
    struct stat st;
    if (stat(path.c_str(), &st) == 0) entries[file] = EntryFile{st.st_ino, ReadFile(path)};
  }
  if (listing != nullptr) pclose(listing);
  return entries;
}

// The small scope every binary test uses: rope and rope_kv_cache, head_dim 64, bf16, neox,
// for sm_90 and gfx90a as far as their compilers are installed.
class JitWarmBinaryTest : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* target : {"sm_90", "gfx90a"}) {
      absl::StatusOr<Compiler*> compiler = CompilerForTarget(target);
      if (compiler.ok() && (*compiler)->ValidateTarget(target).ok()) targets_.push_back(target);
    }
    if (targets_.empty()) GTEST_SKIP() << "neither NVRTC nor hipRTC is installed";
    scope_ = absl::StrCat("--arch=", absl::StrJoin(targets_, ","),
                          " --head_dim=64 --dtype=bf16 --style=neox --kernels=rope,rope_kv_cache");
    entries_ = static_cast<int>(targets_.size()) * 2;
  }

  std::vector<std::string> targets_;
  std::string scope_;
  int entries_ = 0;
};

// jit_warm fills the fleet's remote tier: what it compiles, and what its disk already
// held; a node with an empty disk then warms from Redis without compiling.
TEST_F(JitWarmBinaryTest, FillsTheRemoteTier) {
  RedisServer redis;
  if (!redis.installed()) GTEST_SKIP() << "redis-server is not installed";
  ASSERT_TRUE(redis.Start());
  const std::string key_file = TempPath("fleet_key");
  {
    std::ofstream out(key_file, std::ios::binary);
    out << std::string(40, 'k') << "warm test secret";
  }
  chmod(key_file.c_str(), 0600);
  const std::string env = absl::StrCat("ROPE_JIT_REMOTE_CACHE=", redis.url(),
                                       " ROPE_JIT_REMOTE_CACHE_KEY_FILE=", key_file);
  const std::string dir = TempPath("cache");
  RunResult cold = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --stats"), env);
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_TRUE(absl::StrContains(cold.out, absl::StrCat("holds ", entries_, " of ", entries_,
                                                       " entries (", entries_, " stored now)")))
      << cold.out;
  EXPECT_TRUE(absl::StrContains(cold.out, absl::StrCat("writes ", entries_, " (0 failed)")))
      << cold.out;

  RunResult fresh =
      RunWarm(absl::StrCat(scope_, " --cache_dir=", TempPath("cache"), " --stats"), env);
  ASSERT_EQ(fresh.exit_code, 0) << fresh.out << fresh.err;
  EXPECT_TRUE(absl::StrContains(fresh.out, "compiles 0 ")) << fresh.out;
  EXPECT_TRUE(absl::StrContains(fresh.out, absl::StrCat("remote: hits ", entries_, ",")))
      << fresh.out;

  // Redis lost everything (no persistence): a node whose disk holds the entries refills it.
  RedisClient(redis.port()).FlushAll();
  RunResult refill = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir), env);
  ASSERT_EQ(refill.exit_code, 0) << refill.out << refill.err;
  EXPECT_EQ(Summary(refill), Counts(0, entries_, 0, 0, 0)) << refill.out;
  EXPECT_TRUE(absl::StrContains(refill.out, absl::StrCat("(", entries_, " stored now)")))
      << refill.out;
}

TEST_F(JitWarmBinaryTest, ColdRunCompilesWarmRunRewritesNothing) {
  const std::string dir = TempPath("cache");
  RunResult cold = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_EQ(Summary(cold), Counts(entries_, 0, 0, 0, 0)) << cold.out;
  const std::map<std::string, EntryFile> before = Entries(dir);
  EXPECT_EQ(static_cast<int>(before.size()), entries_);
  // Not a terminal: one plain line per item.
  EXPECT_TRUE(absl::StrContains(cold.err, absl::StrCat("[", entries_, "/", entries_, "] ")));

  RunResult warm = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --stats"));
  ASSERT_EQ(warm.exit_code, 0) << warm.out << warm.err;
  EXPECT_EQ(Summary(warm), Counts(0, entries_, 0, 0, 0)) << warm.out;
  EXPECT_TRUE(absl::StrContains(warm.out, "stats: ")) << warm.out;
  EXPECT_TRUE(absl::StrContains(warm.out, "compiles 0 ")) << warm.out;
  EXPECT_EQ(Entries(dir), before);  // same inodes, same bytes
  EXPECT_LT(warm.seconds, cold.seconds / 2) << "cold " << cold.seconds << " s, warm " << warm.seconds << " s";
}

TEST_F(JitWarmBinaryTest, VerifyRepairsACorruptEntry) {
  const std::string dir = TempPath("cache");
  ASSERT_EQ(RunWarm(absl::StrCat(scope_, " --cache_dir=", dir)).exit_code, 0);
  std::map<std::string, EntryFile> entries = Entries(dir);
  ASSERT_FALSE(entries.empty());
  const std::string victim = absl::StrCat(dir, "/", entries.begin()->first);
  std::string bytes = ReadFile(victim);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFile(victim, bytes);

  // A plain run only checks that entries exist (cheap); --verify reads them.
  RunResult plain = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir));
  ASSERT_EQ(plain.exit_code, 0) << plain.out << plain.err;
  EXPECT_EQ(Summary(plain), Counts(0, entries_, 0, 0, 0)) << plain.out;

  RunResult verify = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --verify"));
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(Summary(verify), Counts(0, entries_ - 1, 1, 0, 0)) << verify.out << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.err, "checksum")) << verify.err;
  const std::map<std::string, EntryFile> after = Entries(dir);
  ASSERT_EQ(after.size(), entries.size());
  for (const auto& [name, file] : after) {
    if (absl::StrCat(dir, "/", name) == victim) {
      EXPECT_NE(file.bytes, bytes);  // replaced
    } else {
      EXPECT_EQ(file, entries[name]) << name;  // the good ones untouched
    }
  }

  RunResult again = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --verify"));
  EXPECT_EQ(Summary(again), Counts(0, entries_, 0, 0, 0)) << again.out;
}

// The host target (jit/host): compiled by the system C++ compiler; --verify loads each
// entry on the host backend.
TEST(JitWarmHostTest, HostTargetCompilesAndVerifyLoadsIt) {
  const std::string dir = TempPath("cache");
  const std::string scope = "--arch=host --head_dim=64 --dtype=f32 --style=neox";
  RunResult cold = RunWarm(absl::StrCat(scope, " --cache_dir=", dir));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  // One entry per kernel: rope, position_embeddings, rope_kv_cache.
  EXPECT_EQ(Summary(cold), Counts(3, 0, 0, 0, 0)) << cold.out;
  EXPECT_EQ(Entries(dir).size(), 3u);
  RunResult verify = RunWarm(absl::StrCat(scope, " --cache_dir=", dir, " --verify"));
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(Summary(verify), Counts(0, 3, 0, 0, 0)) << verify.out;
  EXPECT_TRUE(absl::StrContains(verify.out, "loaded on a device 3")) << verify.out;
}

TEST_F(JitWarmBinaryTest, DryRunWritesNothing) {
  const std::string dir = TempPath("cache");
  RunResult cold = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, "/nested --dry_run"));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_TRUE(absl::StrContains(cold.out, absl::StrCat("dry run: would compile ", entries_,
                                                       ", already cached 0, damaged 0")))
      << cold.out;
  EXPECT_TRUE(absl::StrContains(cold.out, "would compile  arch=")) << cold.out;
  EXPECT_FALSE(Exists(dir));

  ASSERT_EQ(RunWarm(absl::StrCat(scope_, " --cache_dir=", dir)).exit_code, 0);
  const std::string entry = absl::StrCat(dir, "/", Entries(dir).begin()->first);
  struct stat before;
  ASSERT_EQ(stat(entry.c_str(), &before), 0);
  RunResult warm = RunWarm(absl::StrCat(scope_, " --cache_dir=", dir, " --dry_run"));
  ASSERT_EQ(warm.exit_code, 0) << warm.out << warm.err;
  EXPECT_TRUE(absl::StrContains(warm.out, absl::StrCat("would compile 0, already cached ", entries_)))
      << warm.out;
  struct stat after;
  ASSERT_EQ(stat(entry.c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);  // not even the LRU clock moves
  EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(JitWarmBinaryTest, BadUsageExitsTwoWithAClearMessage) {
  const std::string dir = TempPath("cache");
  std::map<std::string, std::string> cases = {
      {"--no_such_flag", "unknown flag '--no_such_flag'"},
      {"--dtype=f64", "unknown dtype 'f64'"},
      {"--head_dim=7", "head_dim must be even and in [32, 512], got 7"},
      {"--arch=gfx9999", "--arch=gfx9999:"},  // well formed, built by no compiler
      {"--arch=sm_99", "--arch=sm_99:"},
      {"--arch=banana", "'banana' is not a target id"},
      {"--jobs=-1", "--jobs=-1"},
      {"--manifest=/nonexistent/m.txt", "cannot read /nonexistent/m.txt"},
  };
  // Debian's ROCm 5.2 hipRTC has no gfx1100 (newer ROCm on the GPU hosts has).
  absl::StatusOr<Compiler*> amd = CompilerForTarget("gfx1100");
  if (amd.ok() && !(*amd)->ValidateTarget("gfx1100").ok()) cases["--arch=gfx1100"] = "--arch=gfx1100:";
  for (const auto& [args, message] : cases) {
    RunResult run = RunWarm(absl::StrCat(args, " --cache_dir=", dir));
    EXPECT_EQ(run.exit_code, 2) << args << "\n" << run.out << run.err;
    EXPECT_TRUE(absl::StrContains(run.err, message)) << args << " -> " << run.err;
    EXPECT_TRUE(absl::StrContains(run.err, "--help")) << run.err;
  }
  EXPECT_FALSE(Exists(dir));  // usage is checked before anything is touched

  RunResult help = RunWarm("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(help.out, "Usage: jit_warm")) << help.out;
}

// MI300 is in the default list again: Debian's hipRTC has no gfx942, clang 19 builds it
// (ROPE_JIT_AMD_COMPILER=auto). Without clang, or with hipRTC forced, it is skipped with
// hipRTC's reason; a bad ROPE_JIT_AMD_COMPILER is a usage error naming the value.
TEST_F(JitWarmBinaryTest, Gfx942IsWarmedThroughClangUnlessHiprtcIsChosen) {
  absl::StatusOr<Compiler*> amd = CompilerForTarget("gfx942");
  if (!amd.ok() || !(*amd)->ValidateTarget("gfx942").ok()) {
    GTEST_SKIP() << "no local compiler builds gfx942";
  }
  const std::string dir = TempPath("cache");
  const std::string scope = " --dry_run --head_dim=128 --dtype=bf16 --style=neox --cache_dir=" + dir;
  RunResult run = RunWarm(scope);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  if (!absl::StrContains(run.err, "no GPU found")) GTEST_SKIP() << "a GPU decides the targets here";
  EXPECT_TRUE(absl::StrContains(run.out, "would compile  arch=gfx942 kernel=position_embeddings")) << run.out;

  if (CompilerForVendor(Vendor::kAmd).ValidateTarget("gfx942").ok()) return;  // a newer hipRTC
  for (const char* environment : {"ROPE_JIT_AMD_COMPILER=hiprtc", "ROPE_JIT_AMD_CLANG=/nonexistent/clang-19"}) {
    run = RunWarm(scope, environment);
    ASSERT_EQ(run.exit_code, 0) << environment << run.out << run.err;
    EXPECT_FALSE(absl::StrContains(run.out, "arch=gfx942")) << environment << run.out;
    EXPECT_TRUE(absl::StrContains(run.err, "skipping gfx942")) << environment << run.err;
    EXPECT_TRUE(absl::StrContains(run.err, "cannot compile for gfx942")) << environment << run.err;
    run = RunWarm("--dry_run --arch=gfx942 --cache_dir=" + dir, environment);
    EXPECT_EQ(run.exit_code, 2) << environment << run.out << run.err;
  }
  run = RunWarm("--dry_run --arch=gfx942 --cache_dir=" + dir, "ROPE_JIT_AMD_COMPILER=banana");
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "ROPE_JIT_AMD_COMPILER='banana'")) << run.err;
  EXPECT_FALSE(Exists(dir));
}

TEST_F(JitWarmBinaryTest, ManifestDrivesTheScope) {
  const std::string dir = TempPath("cache");
  const std::string manifest = TempPath("manifest.txt");
  const std::string& target = targets_[0];
  WriteFile(manifest, absl::StrCat("# two specializations\n\n",
                                   "arch=", target, " kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=neox\n",
                                   "arch=", target, " kernel=rope head_dim=64 dtype=f16 style=interleaved  # gpt-j\n",
                                   "arch=gfx9999 kernel=rope head_dim=64 dtype=f16 style=neox  # built nowhere\n"));
  RunResult run = RunWarm(absl::StrCat("--manifest=", manifest, " --cache_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(Summary(run), Counts(2, 0, 0, 0, 1)) << run.out << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "note: skipping gfx9999")) << run.err;
  EXPECT_EQ(Entries(dir).size(), 2u);

  WriteFile(manifest, absl::StrCat("arch=", target, " kernel=rope head_dim=128 dtype=bf16 style=neox\n",
                                   "\n",
                                   "arch=", target, " kernel=rope head_dim=128 dtype=bf16 sytle=neox\n"));
  RunResult bad = RunWarm(absl::StrCat("--manifest=", manifest, " --cache_dir=", dir));
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_TRUE(absl::StrContains(bad.err, absl::StrCat(manifest, ":3: unknown key 'sytle'"))) << bad.err;
}

TEST_F(JitWarmBinaryTest, HfConfigPrewarmsWhatTheModelNeeds) {
  const std::string dir = TempPath("cache");
  const std::string files =
      "tests/data/hf_configs/qwen3-vl-8b-instruct.json,tests/data/hf_configs/deepseek-v3.json";
  const std::string scope = absl::StrCat("--hf_config=", files, " --arch=", targets_[0], " --kernels=rope");
  RunResult dry = RunWarm(absl::StrCat(scope, " --cache_dir=", dir, " --dry_run"));
  ASSERT_EQ(dry.exit_code, 0) << dry.out << dry.err;
  EXPECT_TRUE(absl::StrContains(
      dry.out, absl::StrCat("would compile  arch=", targets_[0], " kernel=rope head_dim=128 rotary_dim=128 "
                            "position_columns=3 dtype=bf16 style=neox mrope_section=24/20/20 "
                            "mrope_interleaved=true")))
      << dry.out;
  EXPECT_TRUE(absl::StrContains(dry.out, "head_dim=64 rotary_dim=64 dtype=bf16 style=interleaved"))
      << dry.out;
  RunResult cold = RunWarm(absl::StrCat(scope, " --cache_dir=", dir));
  ASSERT_EQ(cold.exit_code, 0) << cold.out << cold.err;
  EXPECT_EQ(Summary(cold), Counts(2, 0, 0, 0, 0)) << cold.out;
  EXPECT_EQ(Entries(dir).size(), 2u);
  RunResult warm = RunWarm(absl::StrCat(scope, " --cache_dir=", dir));
  EXPECT_EQ(Summary(warm), Counts(0, 2, 0, 0, 0)) << warm.out;

  RunResult missing = RunWarm(absl::StrCat("--hf_config=", dir, "/none.json --cache_dir=", dir));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(missing.err, "--hf_config: cannot read")) << missing.err;
  const std::string broken = TempPath("broken.json");
  WriteFile(broken, R"({"head_dim": 128, "torch_dtype": "bfloat16"})");
  RunResult bad = RunWarm(absl::StrCat("--hf_config=", broken, " --cache_dir=", dir));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(bad.err, "max_position_embeddings is missing")) << bad.err;
}

TEST_F(JitWarmBinaryTest, UnusableCacheDirectoryWarnsOnceAndStillSucceeds) {
  const std::string file = TempPath("regular_file");
  WriteFile(file, "not a directory");
  RunResult run = RunWarm(absl::StrCat("--arch=", targets_[0],
                                       " --head_dim=64 --dtype=bf16 --style=neox --kernels=rope",
                                       " --cache_dir=", file, "/cache"));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(Summary(run), Counts(1, 0, 0, 0, 0)) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "cache: memory only")) << run.out;
  int warnings = 0;
  for (absl::string_view line : absl::StrSplit(run.err, '\n')) {
    if (absl::StrContains(line, "disabled") || absl::StrContains(line, "warning")) ++warnings;
  }
  EXPECT_EQ(warnings, 1) << run.err;
  EXPECT_EQ(ReadFile(file), "not a directory");
}

// Issue 14, item 4: a run that leaves any entry of its scope out of the cache (evicted
// by its own budget, or never written because the disk filled or RLIMIT_FSIZE hit)
// says what is missing and why, and exits 3.
TEST_F(JitWarmBinaryTest, IncompleteCacheAtTheEndExitsThree) {
  const std::string dir = TempPath("incomplete_budget");
  RunResult run = RunWarm(absl::StrCat("--jobs=1 --cache_dir=", dir, " ", scope_),
                          "ROPE_JIT_CACHE_MAX_BYTES=1");
  EXPECT_EQ(run.exit_code, 3) << run.out << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "missing from the cache")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "ROPE_JIT_CACHE_MAX_BYTES")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, absl::StrCat("incomplete: ", entries_ - 1, " of ", entries_)))
      << run.out;

  // Writes that fail: the cache is disabled part way, and the reason is the write's.
  // NVRTC only: under RLIMIT_FSIZE hipRTC compiles are refused before they start (comgr's
  // temp files; kernel_service_process_test HiprtcIsRefusedWhereComgrCannotWrite).
  // Not under ThreadSanitizer, whose runtime cannot start under the limit (test_files.h).
  if (!kUnderThreadSanitizer &&
      std::find(targets_.begin(), targets_.end(), "sm_90") != targets_.end()) {
    const std::string limited = TempPath("incomplete_fsize");
    RunResult fsize = RunWarm(absl::StrCat("--arch=sm_90 --head_dim=64 --dtype=bf16 --style=neox",
                                           " --cache_dir=", limited),
                              "", "ulimit -f 8;");
    EXPECT_EQ(fsize.exit_code, 3) << fsize.out << fsize.err;
    EXPECT_TRUE(absl::StrContains(fsize.err, "missing from the cache")) << fsize.err;
    EXPECT_TRUE(absl::StrContains(fsize.err, "RLIMIT_FSIZE")) << fsize.err;
  }

  // A complete cache still exits 0.
  RunResult again = RunWarm(absl::StrCat("--cache_dir=", dir, " ", scope_));
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
}

// Issue 14, item 8: processes racing on the same keys each count only what they compiled.
TEST_F(JitWarmBinaryTest, RacingProcessesCountOnlyTheirOwnCompiles) {
  const std::string dir = TempPath("race");
  const std::string args = absl::StrCat("--jobs=1 --cache_dir=", dir, " ", scope_);
  std::vector<std::thread> runners;
  std::vector<RunResult> runs(3);
  for (size_t i = 0; i < runs.size(); ++i) {
    runners.emplace_back([&, i] { runs[i] = RunWarm(args, "", "", absl::StrCat("race", i)); });
  }
  for (std::thread& runner : runners) runner.join();
  int compiled = 0;
  for (const RunResult& run : runs) {
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    std::map<std::string, int> counts = Summary(run);
    compiled += counts["compiled"];
    EXPECT_EQ(counts["compiled"] + counts["cached"], entries_) << run.out;
  }
  EXPECT_EQ(compiled, entries_);
}

// Issue 14, item 5: an entry-sized name on a huge (sparse) file is reported as damaged
// without reading it: under a 512 MiB address-space limit the probe must not allocate it.
TEST(CacheProbeTest, HugeFileIsDamagedWithoutBeingRead) {
  const std::string dir = TempPath("probe_huge");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  CacheKey key{"kernel=rope;target=sm_90", std::string(32, 'b')};
  const std::string path = absl::StrCat(dir, "/", DiskCache::EntryFileName(key));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t{3} << 30), 0);
  close(fd);
  fflush(stdout);
  fflush(stderr);
  const pid_t child = fork();
  if (child == 0) {
#ifndef __SANITIZE_ADDRESS__  // ASan reserves far more address space than this
    const struct rlimit limit = {512u << 20, 512u << 20};
    setrlimit(RLIMIT_AS, &limit);
#endif
    for (bool check_contents : {false, true}) {
      const EntryProbe probe = ProbeEntry(dir, key, check_contents);
      if (probe.state != EntryState::kDamaged) _exit(1);
      if (!absl::StrContains(probe.detail, "too large")) _exit(2);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

}  // namespace
}  // namespace rope_jit
