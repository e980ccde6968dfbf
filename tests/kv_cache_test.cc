// rope/kv_cache.h (the view's validation and strides) and the float64 cache reference in
// rope/reference.h, on the host.
#include "rope/kv_cache.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "rope/config.h"
#include "rope/reference.h"

namespace rope_jit {
namespace {

// Never dereferenced: validation only looks at addresses.
char* FakeAddress(uintptr_t address) { return reinterpret_cast<char*>(address); }

KvCacheView GoodView() {
  KvCacheView view;
  view.k = FakeAddress(0x100000);
  view.v = FakeAddress(0x200000);
  view.num_blocks = 4;
  view.block_size = 16;
  view.kv_heads = 8;
  view.head_dim = 128;
  return view;
}

RopeConfig Config() {
  RopeConfig config;
  config.head_dim = 128;
  config.dtype = DType::kBF16;
  return config;
}

TEST(KvCacheTest, GoodViewsReturnTheirSize) {
  KvCacheView view = GoodView();
  absl::StatusOr<int64_t> bytes = ValidateKvCacheView(view, Config());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 4 * 16 * 8 * 128 * 2);
  static const float scale = 1;
  view.dtype = KvDType::kFp8E5M2;
  view.layout = KvLayout::kHND;
  view.k_scale = view.v_scale = &scale;
  bytes = ValidateKvCacheView(view, Config());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 4 * 16 * 8 * 128);
  // Adjacent, not overlapping.
  view.v = static_cast<char*>(view.k) + *bytes;
  EXPECT_TRUE(ValidateKvCacheView(view, Config()).ok());
}

TEST(KvCacheTest, EveryBadViewIsInvalidArgumentNamingIt) {
  static const float scale = 1;
  struct BadCase {
    std::string expect_in_message;
    KvCacheView view;
  };
  std::vector<BadCase> cases;
  auto add = [&](std::string message, auto mutate) {
    KvCacheView view = GoodView();
    mutate(view);
    cases.push_back({std::move(message), view});
  };
  add("cache.k is null", [](KvCacheView& v) { v.k = nullptr; });
  add("cache.v is null", [](KvCacheView& v) { v.v = nullptr; });
  add("cache.num_blocks = 0", [](KvCacheView& v) { v.num_blocks = 0; });
  add("cache.block_size = -1", [](KvCacheView& v) { v.block_size = -1; });
  add("cache.kv_heads = 0", [](KvCacheView& v) { v.kv_heads = 0; });
  add("cache.head_dim = 64", [](KvCacheView& v) { v.head_dim = 64; });
  add("cache.layout = 7", [](KvCacheView& v) { v.layout = static_cast<KvLayout>(7); });
  add("cache.dtype = 9", [](KvCacheView& v) { v.dtype = static_cast<KvDType>(9); });
  add("cache.k_scale is null", [](KvCacheView& v) { v.dtype = KvDType::kFp8E4M3; v.v_scale = &scale; });
  add("cache.v_scale is null", [](KvCacheView& v) { v.dtype = KvDType::kFp8E4M3; v.k_scale = &scale; });
  add("scales are for FP8", [](KvCacheView& v) { v.k_scale = &scale; });
  add("scales are for FP8", [](KvCacheView& v) { v.v_scale = &scale; });
  add("cache extent overflows", [](KvCacheView& v) { v.num_blocks = int64_t{1} << 40; v.block_size = 1 << 20; });
  add("cache extent overflows", [](KvCacheView& v) {
    v.num_blocks = std::numeric_limits<int64_t>::max() / (16 * 8 * 128) + 1;
  });
  // Elements fit int64, bytes do not.
  add("cache extent overflows", [](KvCacheView& v) { v.num_blocks = (int64_t{1} << 62) / (16 * 8 * 128); });
  add("wraps the address space", [](KvCacheView& v) { v.k = FakeAddress(UINTPTR_MAX - 4096); });
  add("cache.k and cache.v overlap", [](KvCacheView& v) { v.v = static_cast<char*>(v.k) + 2; });
  add("cache.k and cache.v overlap", [](KvCacheView& v) { v.v = v.k; });
  add("cache.k and cache.v overlap", [](KvCacheView& v) { v.k = static_cast<char*>(v.v) + 4 * 16 * 8 * 128 * 2 - 1; });
  for (const BadCase& c : cases) {
    absl::StatusOr<int64_t> result = ValidateKvCacheView(c.view, Config());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.expect_in_message;
    EXPECT_TRUE(absl::StrContains(result.status().message(), c.expect_in_message))
        << "message '" << result.status().message() << "' does not name '" << c.expect_in_message << "'";
  }
}

TEST(KvCacheTest, StridesMatchTheLayoutsIndexFormula) {
  for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND}) {
    KvCacheView view = GoodView();
    view.num_blocks = 3;
    view.block_size = 5;
    view.kv_heads = 2;
    view.head_dim = 4;
    view.layout = layout;
    const KvCacheStrides s = CacheStrides(view);
    std::vector<bool> seen(3 * 5 * 2 * 4, false);
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t o = 0; o < 5; ++o)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t d = 0; d < 4; ++d) {
            const int64_t at = b * s.block + o * s.slot + h * s.head + d;
            ASSERT_EQ(at, ReferenceCacheIndex(layout, 5, 2, 4, b, o, h, d)) << KvLayoutName(layout);
            ASSERT_FALSE(seen[at]);
            seen[at] = true;
          }
  }
  // The layouts as their names say: NHD puts a slot's heads together, HND a head's slots.
  EXPECT_EQ(ReferenceCacheIndex(KvLayout::kNHD, 16, 8, 128, 0, 1, 0, 0), 8 * 128);
  EXPECT_EQ(ReferenceCacheIndex(KvLayout::kHND, 16, 8, 128, 0, 1, 0, 0), 128);
  EXPECT_EQ(ReferenceCacheIndex(KvLayout::kHND, 16, 8, 128, 0, 0, 1, 0), 16 * 128);
}

TEST(KvCacheReferenceTest, SlotsReceiveRotatedKAndVAsGiven) {
  RopeConfig config;
  config.head_dim = 8;
  config.rotary_dim = 4;  // K's pass-through dims are cached unchanged too
  // A head_dim too small for ValidateConfig, so the frequencies are given directly.
  const std::optional<RopeFrequencies> freqs = RopeFrequencies{{1.0, 0.01}, 1.0};
  const int tokens = 5, q_heads = 3, kv_heads = 2;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(-1, 1);
  std::vector<double> q(tokens * q_heads * 8), k(tokens * kv_heads * 8), v(k.size());
  for (double& x : q) x = uniform(rng);
  for (double& x : k) x = uniform(rng);
  for (double& x : v) x = uniform(rng);
  const std::vector<int64_t> positions = {3, 10, 0, 7, 2};
  // Padding, a shared block (slots 4 and 6 are block 1), past the end (12 slots), slot 0.
  const std::vector<int64_t> slots = {4, -1, 6, 12, 0};
  for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND}) {
    ReferenceKvCache result =
        ReferenceApplyAndCacheKv(config, *freqs, q, k, v, tokens, q_heads, kv_heads, positions, slots,
                                 /*num_blocks=*/3, /*block_size=*/4, layout);
    ASSERT_EQ(result.q, ReferenceApply(config, *freqs, q, tokens, q_heads, positions));
    const std::vector<double> k_rotated = ReferenceApply(config, *freqs, k, tokens, kv_heads, positions);
    ASSERT_EQ(result.k_cache.size(), 3u * 4 * 2 * 8);
    int written = 0;
    for (bool w : result.written) written += w;
    EXPECT_EQ(written, 3 * 2 * 8);  // tokens 0, 2 and 4
    for (int t : {0, 2, 4}) {
      for (int h = 0; h < kv_heads; ++h)
        for (int d = 0; d < 8; ++d) {
          const size_t at = ReferenceCacheIndex(layout, 4, 2, 8, slots[t] / 4, slots[t] % 4, h, d);
          const size_t from = (t * kv_heads + h) * 8 + d;
          EXPECT_TRUE(result.written[at]);
          EXPECT_EQ(result.k_cache[at], k_rotated[from]);
          EXPECT_EQ(result.v_cache[at], v[from]);
          if (d >= 4) {
            EXPECT_EQ(result.k_cache[at], k[from]);
          }
        }
    }
    // Rotation changed K (a rotated copy was cached, not the input).
    EXPECT_NE(k_rotated[(0 * kv_heads) * 8], k[0]);
  }
  EXPECT_TRUE(ReferenceApplyAndCacheKv(config, *freqs, q, k, v, tokens, q_heads, kv_heads, positions,
                                       {1, 2}, 3, 4, KvLayout::kNHD)
                  .k_cache.empty());
}

}  // namespace
}  // namespace rope_jit
