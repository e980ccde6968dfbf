// aot/offload_bundle.h on hand-made inputs, well-formed and not.
#include "aot/offload_bundle.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rope_jit {
namespace {

void PutU64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// A bundle as clang-offload-bundler lays it out: header, then payloads.
std::string Bundle(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string header = "__CLANG_OFFLOAD_BUNDLE__";
  PutU64(header, entries.size());
  size_t header_size = header.size();
  for (const auto& [triple, payload] : entries) header_size += 24 + triple.size();
  std::string payloads;
  for (const auto& [triple, payload] : entries) {
    PutU64(header, header_size + payloads.size());
    PutU64(header, payload.size());
    PutU64(header, triple.size());
    header += triple;
    payloads += payload;
  }
  return header + payloads;
}

TEST(OffloadBundleTest, FindsTheCodeObjectOfATarget) {
  const std::string bundle = Bundle({{"host-x86_64-unknown-linux", ""},
                                     {"hipv4-amdgcn-amd-amdhsa--gfx90a",
                                      "\x7f"
                                      "ELF90a"},
                                     {"hipv4-amdgcn-amd-amdhsa--gfx1030",
                                      "\x7f"
                                      "ELF1030"}});
  absl::StatusOr<std::vector<OffloadBundleEntry>> entries = ParseOffloadBundle(bundle);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(entries->size(), 3u);
  EXPECT_EQ(*AmdCodeObjectFromBundle(bundle, "gfx1030"),
            "\x7f"
            "ELF1030");
  EXPECT_EQ(*AmdCodeObjectFromBundle(bundle, "gfx90a"),
            "\x7f"
            "ELF90a");
  absl::StatusOr<absl::string_view> missing = AmdCodeObjectFromBundle(bundle, "gfx908");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("gfx1030"), absl::string_view::npos);
}

TEST(OffloadBundleTest, RejectsDamageInsteadOfReadingPastTheEnd) {
  const std::string good = Bundle({{"hipv4-amdgcn-amd-amdhsa--gfx90a", "payload"}});
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(AmdCodeObjectFromBundle(good.substr(0, cut), "gfx90a").ok()) << cut;
  }
  std::string huge_count = "__CLANG_OFFLOAD_BUNDLE__";
  PutU64(huge_count, ~uint64_t{0});
  EXPECT_EQ(ParseOffloadBundle(huge_count).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseOffloadBundle("CCOB....").status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ParseOffloadBundle("\x7f"
                               "ELF")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rope_jit
