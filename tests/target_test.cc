#include "jit/target.h"

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

}  // namespace
}  // namespace rope_jit
