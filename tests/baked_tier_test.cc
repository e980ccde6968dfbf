// The baked tier (jit/baked_tier.h) and the kernel service's use of it, without a GPU:
// its key, the generated //aot:rope_aot_baked library served with zero compiles, specs the
// local JIT cannot build at all, AMD feature fallback, and a refused baked object.
#include "jit/baked_tier.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "aot/aot_config.h"
#include "aot/rope_aot_baked.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "tests/fake_runtime.h"
#include "tests/require_compiler.h"

namespace rope_jit {
namespace {

// Memory only: nothing read from or written to a disk tier can blur which tier served.
ServiceOptions BakedOnly(const BakedTier* baked) {
  ServiceOptions options;
  options.disk.dir = "";
  options.baked = baked;
  return options;
}

KernelSpec Spec(absl::string_view config_text, RopeKernel kernel, absl::string_view target) {
  absl::StatusOr<RopeConfig> config = ParseAotConfig(config_text);
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<KernelSpec> spec = RopeKernelSpec(*config, kernel, target);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// One hand-made entry, owning the bytes its views point at.
struct OwnedEntry {
  CacheKey key;
  std::string kernel, config, target, producer, code;
  BakedEntry View() const { return {key.hex, key.text, kernel, config, target, producer, code}; }
};

OwnedEntry MakeEntry(const KernelSpec& spec, std::string code) {
  absl::StatusOr<CacheKey> key = BakedCacheKey(spec);
  EXPECT_TRUE(key.ok()) << key.status();
  return {*key, spec.kernel, "", spec.target, "test", std::move(code)};
}

TEST(BakedTierTest, KeyIsTheJitKeyWithTheCompilerLineSetToBaked) {
  const KernelSpec spec = Spec("dtype=bf16,style=neox,head_dim=128", RopeKernel::kRope, "sm_90");
  absl::StatusOr<CacheKey> baked = BakedCacheKey(spec);
  ASSERT_TRUE(baked.ok()) << baked.status();
  const std::vector<std::string> options = CompilerForVendor(Vendor::kNvidia).Options("sm_90");
  const CacheKey jit_like = MakeCacheKey(spec, "nvrtc 13.0; some build id", options);
  EXPECT_TRUE(absl::StrContains(baked->text, "\ncompiler baked\n")) << baked->text;
  EXPECT_NE(baked->hex, jit_like.hex);
  // Line for line the same but for the compiler.
  std::vector<std::string> baked_lines = absl::StrSplit(baked->text, '\n');
  std::vector<std::string> jit_lines = absl::StrSplit(jit_like.text, '\n');
  ASSERT_EQ(baked_lines.size(), jit_lines.size());
  for (size_t i = 0; i < baked_lines.size(); ++i) {
    if (absl::StartsWith(baked_lines[i], "compiler ")) continue;
    EXPECT_EQ(baked_lines[i], jit_lines[i]);
  }
  EXPECT_FALSE(
      BakedCacheKey(Spec("dtype=bf16,style=neox,head_dim=128", RopeKernel::kRope, "")).ok());
}

TEST(BakedTierTest, ServiceHasNoBakedTierUnlessGivenOne) {
  EXPECT_EQ(ServiceOptions().baked, nullptr);
  EXPECT_EQ(ServiceOptions::FromEnvironment().baked, nullptr);
}

TEST(BakedTierTest, GeneratedTierServesEveryEntryWithZeroCompiles) {
  const StaticBakedTier& tier = RopeAotBakedTier();
  if (tier.entries().empty())
    GTEST_SKIP() << "no SDK was installed when //aot:rope_aot_baked was built";
  KernelService service(BakedOnly(&tier));
  for (const BakedEntry& entry : tier.entries()) {
    const KernelSpec spec = Spec(entry.config, *ParseRopeKernel(entry.kernel), entry.target);
    absl::StatusOr<std::string> code = service.GetCodeObject(spec);
    ASSERT_TRUE(code.ok()) << entry.target << " " << entry.config << ": " << code.status();
    EXPECT_TRUE(*code == entry.code_object);
    EXPECT_TRUE(absl::StartsWith(*code,
                                 "\x7f"
                                 "ELF"));
    EXPECT_FALSE(entry.producer.empty());
  }
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.baked_hits, tier.entries().size());
  EXPECT_EQ(stats.compiles, 0u);
  EXPECT_EQ(stats.misses, 0u);
  EXPECT_EQ(stats.disk_hits, 0u);
}

// A deployment can ship a code object for a target its machine's compiler cannot build
// (hipRTC 5.2 has no gfx1100) and for a source no compiler could build: the service never
// asks the compiler.
TEST(BakedTierTest, SpecOnlyInTheBakedTierNeedsNoCompiler) {
  KernelSpec broken = Spec("dtype=bf16,style=neox,head_dim=128", RopeKernel::kRope, "gfx1100");
  broken.source = "this is not a kernel";
  broken.source_hash = "00000000000000000000000000000000";
  const std::string code = std::string(
      "\x7f"
      "ELF baked bytes with rope_apply_aligned",
      40);
  const OwnedEntry owned = MakeEntry(broken, code);
  const BakedEntry entries[] = {owned.View()};
  const StaticBakedTier tier(entries, {});

  KernelService with_tier(BakedOnly(&tier));
  absl::StatusOr<std::string> served = with_tier.GetCodeObject(broken);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, code);

  FakeRuntime runtime("gfx1100");
  KernelSpec any_target = broken;
  any_target.target = "";  // GetFunction uses the device's
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<FunctionHandle> function =
        with_tier.GetFunction(any_target, runtime, 0, "rope_apply_aligned");
    ASSERT_TRUE(function.ok()) << function.status();
  }
  const ServiceStats stats = with_tier.stats();
  EXPECT_EQ(stats.compiles, 0u);
  EXPECT_EQ(stats.baked_hits, 2u);  // GetCodeObject, then the one module load
  EXPECT_EQ(stats.loads, 1u);
  EXPECT_EQ(stats.memory_hits, 1u);

  // Without the tier the same spec cannot be served here.
  KernelService without_tier(BakedOnly(nullptr));
  EXPECT_FALSE(without_tier.GetCodeObject(broken).ok());
}

TEST(BakedTierTest, AmdDeviceWithFeaturesUsesTheBareProcessorEntry) {
  const StaticBakedTier& tier = RopeAotBakedTier();
  if (!tier.HasSdk(Vendor::kAmd)) GTEST_SKIP() << "no hipcc when //aot:rope_aot_baked was built";
  KernelService service(BakedOnly(&tier));
  FakeRuntime runtime("gfx90a:sramecc+:xnack-");
  const KernelSpec spec =
      Spec("dtype=bf16,style=neox,head_dim=128", RopeKernel::kPositionEmbeddings, "");
  for (const char* function : {"rope_qk_apply_aligned", "rope_qk_apply_unaligned"}) {
    absl::StatusOr<FunctionHandle> handle = service.GetFunction(spec, runtime, 0, function);
    ASSERT_TRUE(handle.ok()) << handle.status();
  }
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.compiles, 0u);
  EXPECT_EQ(stats.baked_hits, 1u);
  EXPECT_EQ(stats.loads, 1u);
  // A config that was not baked is compiled as before (or fails without hipRTC): the tier
  // only ever adds hits.
  KernelSpec unbaked = Spec("dtype=f16,style=neox,head_dim=128", RopeKernel::kRope, "gfx90a");
  EXPECT_EQ(FindBaked(tier, unbaked), nullptr);
}

// A baked object the driver refuses is not the end: the service compiles the spec instead.
TEST(BakedTierTest, RefusedBakedObjectFallsBackToTheJit) {
  REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
  const KernelSpec spec = Spec("dtype=f32,style=neox,head_dim=64", RopeKernel::kRope, "sm_90");
  const OwnedEntry owned = MakeEntry(spec, "not an ELF file: the fake driver refuses it");
  const BakedEntry entries[] = {owned.View()};
  const StaticBakedTier tier(entries, {});
  KernelService service(BakedOnly(&tier));
  FakeRuntime runtime("sm_90");
  KernelSpec device_spec = spec;
  device_spec.target = "";
  absl::StatusOr<FunctionHandle> function =
      service.GetFunction(device_spec, runtime, 0, "rope_apply_aligned");
  ASSERT_TRUE(function.ok()) << function.status();
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.baked_hits, 0u);
  EXPECT_EQ(stats.load_failures, 1u);
  EXPECT_EQ(stats.compiles, 1u);
  EXPECT_EQ(stats.loads, 2u);
}

TEST(BakedTierTest, FindNeedsTheFullKeyText) {
  const KernelSpec spec = Spec("dtype=bf16,style=neox,head_dim=128", RopeKernel::kRope, "sm_80");
  OwnedEntry owned = MakeEntry(spec,
                               "\x7f"
                               "ELF");
  owned.key.text += "tampered";  // same hex, other text: a collision must not be served
  const BakedEntry entries[] = {owned.View()};
  const StaticBakedTier tier(entries, {});
  EXPECT_EQ(FindBaked(tier, spec), nullptr);
}

}  // namespace
}  // namespace rope_jit
