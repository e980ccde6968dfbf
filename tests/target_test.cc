#include "jit/target.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace rope_jit {
namespace {

TEST(TargetTest, RecognizesAmdTargetIds) {
  for (const char* target : {"gfx90a", "gfx90a:sramecc+:xnack-", "gfx1030", "gfx942"}) {
    auto vendor = VendorOfTarget(target);
    ASSERT_TRUE(vendor.ok()) << target << ": " << vendor.status();
    EXPECT_EQ(*vendor, Vendor::kAmd) << target;
  }
  EXPECT_EQ(AmdProcessor("gfx90a:sramecc+:xnack-"), "gfx90a");
}

TEST(TargetTest, RecognizesNvidiaArchs) {
  for (const char* target : {"sm_80", "sm_90", "sm_90a", "sm_100"}) {
    auto vendor = VendorOfTarget(target);
    ASSERT_TRUE(vendor.ok()) << target << ": " << vendor.status();
    EXPECT_EQ(*vendor, Vendor::kNvidia) << target;
  }
}

TEST(TargetTest, RecognizesHost) {
  auto vendor = VendorOfTarget("host");
  ASSERT_TRUE(vendor.ok()) << vendor.status();
  EXPECT_EQ(*vendor, Vendor::kHost);
  EXPECT_EQ(VendorName(Vendor::kHost), "host");
  for (const char* target : {"Host", "host:x", "hostx", " host"}) {
    EXPECT_EQ(VendorOfTarget(target).status().code(), absl::StatusCode::kInvalidArgument) << target;
  }
}

TEST(TargetTest, RejectsGarbage) {
  for (const char* target : {"", "gfx", "sm_", "sm_9", "garbage", "gfx90a:xnack", "compute_90",
                             "sm_9x", "gfx90a;rm -rf"}) {
    auto vendor = VendorOfTarget(target);
    EXPECT_EQ(vendor.status().code(), absl::StatusCode::kInvalidArgument) << target;
  }
}

TEST(TargetTest, AmdFeatureNamesInCanonicalOrder) {
  EXPECT_EQ(*AmdFeatureNames("gfx942"), std::vector<std::string>{});
  EXPECT_EQ(*AmdFeatureNames("gfx942:sramecc+:xnack-"),
            (std::vector<std::string>{"sramecc", "xnack"}));
  EXPECT_EQ(*AmdFeatureNames("gfx90a:xnack+"), std::vector<std::string>{"xnack"});
  for (const char* target : {"gfx942:xnack-:sramecc+", "gfx942:xnack-:xnack+", "sm_90", "gfx942:"}) {
    EXPECT_EQ(AmdFeatureNames(target).status().code(), absl::StatusCode::kInvalidArgument)
        << target;
  }
  EXPECT_TRUE(absl::StrContains(AmdFeatureNames("gfx942:xnack-:sramecc+").status().message(),
                                "gfx942:sramecc+:xnack-"));
}

}  // namespace
}  // namespace rope_jit
