#include "rope/reference.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "rope/config.h"

namespace rope_jit {
namespace {

std::vector<double> RandomValues(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-2.0, 2.0);
  std::vector<double> values(n);
  for (double& v : values) v = dist(rng);
  return values;
}

RopeFrequencies MustCompute(const RopeConfig& config) {
  absl::StatusOr<RopeFrequencies> freqs = ComputeFrequencies(config);
  EXPECT_TRUE(freqs.ok()) << freqs.status();
  return freqs.ok() ? *std::move(freqs) : RopeFrequencies{};
}

// A config the reference accepts even where ValidateConfig would not (tiny head_dim).
RopeConfig SmallConfig(int head_dim, RopeStyle style) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.style = style;
  return config;
}

TEST(ReferenceTest, PositionZeroIsIdentity) {
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    RopeConfig config;
    config.style = style;
    const RopeFrequencies freqs = MustCompute(config);
    const int tokens = 3, heads = 4;
    const std::vector<double> x = RandomValues(tokens * heads * config.head_dim, 1);
    const std::vector<int64_t> positions(tokens, 0);
    EXPECT_EQ(ReferenceApply(config, freqs, x, tokens, heads, positions), x)
        << StyleName(style);
  }
}

TEST(ReferenceTest, RotationScalesEachPairNormByAttentionFactorSquared) {
  RopeConfig config;
  config.head_dim = 128;
  config.max_position = 131072;
  config.scaling.type = ScalingType::kYarn;
  config.scaling.factor = 16;
  config.scaling.original_max_position_embeddings = 8192;
  const RopeFrequencies freqs = MustCompute(config);
  ASSERT_GT(freqs.attention_factor, 1.2);
  const double af2 = freqs.attention_factor * freqs.attention_factor;

  const int tokens = 5, heads = 3, half = 64;
  const std::vector<double> x = RandomValues(tokens * heads * 128, 2);
  const std::vector<int64_t> positions = {0, 1, 4097, 65535, 131071};
  const std::vector<double> out = ReferenceApply(config, freqs, x, tokens, heads, positions);
  ASSERT_EQ(out.size(), x.size());
  for (int row = 0; row < tokens * heads; ++row) {
    for (int j = 0; j < half; ++j) {
      const size_t a = row * 128 + j, b = a + half;
      const double before = x[a] * x[a] + x[b] * x[b];
      const double after = out[a] * out[a] + out[b] * out[b];
      EXPECT_NEAR(after, af2 * before, 1e-14 * af2 * before + 1e-300) << row << " " << j;
    }
  }
}

TEST(ReferenceTest, NeoxAndInterleavedPairDifferentDims) {
  // A unit vector along dim 1. NeoX: dim 1 is the first member of pair 1 = (1, 5), so it
  // becomes (cos, sin) of 7 * 0.5 in dims 1 and 5. Interleaved: dim 1 is the second member
  // of pair 0 = (0, 1), so it becomes (-sin, cos) of 7 * 1 in dims 0 and 1.
  RopeFrequencies freqs;
  freqs.inv_freq = {1.0, 0.5, 0.25, 0.125};
  const int64_t position = 7;
  const std::vector<double> e1 = {0, 1, 0, 0, 0, 0, 0, 0};

  const std::vector<double> neox =
      ReferenceApply(SmallConfig(8, RopeStyle::kNeox), freqs, e1, 1, 1, {&position, 1});
  const std::vector<double> neox_expected = {0, std::cos(3.5), 0, 0, 0, std::sin(3.5), 0, 0};
  ASSERT_EQ(neox.size(), 8u);
  for (int d = 0; d < 8; ++d) EXPECT_NEAR(neox[d], neox_expected[d], 1e-15) << d;

  const std::vector<double> interleaved =
      ReferenceApply(SmallConfig(8, RopeStyle::kInterleaved), freqs, e1, 1, 1, {&position, 1});
  const std::vector<double> interleaved_expected = {-std::sin(7.0), std::cos(7.0), 0, 0,
                                                    0, 0, 0, 0};
  ASSERT_EQ(interleaved.size(), 8u);
  for (int d = 0; d < 8; ++d) EXPECT_NEAR(interleaved[d], interleaved_expected[d], 1e-15) << d;
}

TEST(ReferenceTest, HandComputedHeadDim4) {
  // theta 10000, d 4: inv_freq = {1, 0.01}; x = [1, 2, 3, 4] at position 3. Expected values
  // from mpmath at 60 digits.
  RopeConfig config = SmallConfig(4, RopeStyle::kNeox);
  RopeFrequencies freqs;
  freqs.inv_freq = {1.0, 0.01};
  const std::vector<double> x = {1, 2, 3, 4};
  const int64_t position = 3;

  const std::vector<double> neox = ReferenceApply(config, freqs, x, 1, 1, {&position, 1});
  const double neox_expected[] = {-1.413352520780047, 1.8791180666879923, -2.828857481741469,
                                  4.058191135400941};
  ASSERT_EQ(neox.size(), 4u);
  for (int d = 0; d < 4; ++d) EXPECT_NEAR(neox[d], neox_expected[d], 4e-16 * 4) << d;

  config.style = RopeStyle::kInterleaved;
  const std::vector<double> interleaved = ReferenceApply(config, freqs, x, 1, 1, {&position, 1});
  const double interleaved_expected[] = {-1.27223251272018, -1.8388649851410237,
                                         2.87866810043698, 4.088186635603437};
  ASSERT_EQ(interleaved.size(), 4u);
  for (int d = 0; d < 4; ++d) EXPECT_NEAR(interleaved[d], interleaved_expected[d], 4e-16 * 4) << d;

  // Both cos and sin carry the attention factor.
  freqs.attention_factor = 0.5;
  const std::vector<double> scaled = ReferenceApply(config, freqs, x, 1, 1, {&position, 1});
  for (int d = 0; d < 4; ++d) EXPECT_NEAR(scaled[d], 0.5 * interleaved_expected[d], 8e-16) << d;
}

TEST(ReferenceTest, CosSinExactAtLargePositions) {
  // cos/sin of p * 0.7498942093324559 (the double, exactly), from mpmath at 60 digits. A
  // phase rounded to 64 bits would be off by ~1e-10 here; double math by ~1e-7.
  struct Case {
    int64_t position;
    double cos, sin;
  };
  const Case cases[] = {
      {1048577, 0.9995881375007191, 0.028697654396198178},
      {2000000000, -0.8837589436500942, 0.46794244252735784},
      {2147483647, 0.35879339351447087, -0.9334170026147853},
  };
  RopeFrequencies freqs;
  freqs.inv_freq = {1.0, 0.7498942093324559};
  for (const Case& c : cases) {
    double cos, sin;
    ReferenceCosSin(freqs, c.position, 1, &cos, &sin);
    EXPECT_NEAR(cos, c.cos, 2.3e-16) << c.position;
    EXPECT_NEAR(sin, c.sin, 2.3e-16) << c.position;
  }
  freqs.attention_factor = 1.5;
  double cos, sin;
  ReferenceCosSin(freqs, cases[1].position, 1, &cos, &sin);
  EXPECT_NEAR(cos, 1.5 * cases[1].cos, 4e-16);
  EXPECT_NEAR(sin, 1.5 * cases[1].sin, 4e-16);

  ReferenceCosSin(freqs, 5, 2, &cos, &sin);
  EXPECT_TRUE(std::isnan(cos) && std::isnan(sin));
  ReferenceCosSin(freqs, 5, -1, &cos, &sin);
  EXPECT_TRUE(std::isnan(cos) && std::isnan(sin));
}

TEST(ReferenceTest, AnglesAddAtLargePositions) {
  RopeConfig config;
  config.head_dim = 128;
  config.theta = 500000;
  config.max_position = 1 << 22;
  const RopeFrequencies freqs = MustCompute(config);
  const int tokens = 4, heads = 2;
  const std::vector<double> x = RandomValues(tokens * heads * 128, 3);
  const std::vector<int64_t> p = {(1 << 20) + 1, (1 << 20) + 12345, 3 << 19, (1 << 21) - 1};
  const std::vector<int64_t> q = {(1 << 20) - 7, 999983, (1 << 20) + 1, 1};
  std::vector<int64_t> sum(tokens);
  for (int t = 0; t < tokens; ++t) sum[t] = p[t] + q[t];

  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    config.style = style;
    const std::vector<double> twice = ReferenceApply(
        config, freqs, ReferenceApply(config, freqs, x, tokens, heads, p), tokens, heads, q);
    const std::vector<double> once = ReferenceApply(config, freqs, x, tokens, heads, sum);
    ASSERT_EQ(twice.size(), x.size());
    ASSERT_EQ(once.size(), x.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(twice[i], once[i], 2e-15) << i;
  }
}

TEST(ReferenceTest, PartialRotaryLeavesTailBitIdentical) {
  for (const RopeConfig& config :
       {RopeConfig::Glm(128, DType::kBF16, 4096), [] {
          RopeConfig c;
          c.head_dim = 80;
          c.rotary_dim = 20;
          return c;
        }()}) {
    const RopeFrequencies freqs = MustCompute(config);
    const int tokens = 3, heads = 2, rotary = config.EffectiveRotaryDim();
    std::vector<double> x = RandomValues(tokens * heads * config.head_dim, 4);
    x[rotary] = -0.0;  // signed zero and a subnormal must survive as bits
    x[rotary + 1] = 4.9e-324;
    const std::vector<int64_t> positions = {17, 4000, 1234};
    const std::vector<double> out = ReferenceApply(config, freqs, x, tokens, heads, positions);
    ASSERT_EQ(out.size(), x.size());
    bool rotated_something = false;
    for (int row = 0; row < tokens * heads; ++row) {
      for (int d = 0; d < config.head_dim; ++d) {
        const size_t i = row * config.head_dim + d;
        if (d >= rotary) {
          EXPECT_EQ(std::memcmp(&out[i], &x[i], sizeof(double)), 0) << row << " " << d;
        } else {
          rotated_something |= out[i] != x[i];
        }
      }
    }
    EXPECT_TRUE(rotated_something);
  }
}

TEST(ReferenceTest, ChatGlmColumnsRotateIndependentHalves) {
  const RopeConfig config = RopeConfig::ChatGlmV1(128, DType::kF16, 4096);
  const RopeFrequencies freqs = MustCompute(config);
  // Each half behaves like a 64-wide NeoX head rotated by its own column.
  RopeConfig half = SmallConfig(64, RopeStyle::kNeox);
  const int tokens = 2, heads = 3;
  const std::vector<double> x = RandomValues(tokens * heads * 128, 5);
  const std::vector<int64_t> positions = {100, 7, 2047, 0};  // token-major [tokens, 2]
  const std::vector<double> out = ReferenceApply(config, freqs, x, tokens, heads, positions);
  ASSERT_EQ(out.size(), x.size());

  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      const size_t row = (t * heads + h) * 128;
      for (int c = 0; c < 2; ++c) {
        const std::vector<double> segment(x.begin() + row + c * 64, x.begin() + row + c * 64 + 64);
        const int64_t position = positions[t * 2 + c];
        const std::vector<double> expected =
            ReferenceApply(half, freqs, segment, 1, 1, {&position, 1});
        ASSERT_EQ(expected.size(), 64u);
        for (int d = 0; d < 64; ++d) {
          EXPECT_EQ(out[row + c * 64 + d], expected[d]) << t << " " << h << " " << c << " " << d;
        }
      }
    }
  }
  // Token 1's block position is 0: its second half is untouched.
  for (int h = 0; h < heads; ++h) {
    const size_t row = (1 * heads + h) * 128;
    for (int d = 64; d < 128; ++d) EXPECT_EQ(out[row + d], x[row + d]);
  }
}

TEST(ReferenceTest, EveryHeadOfATokenGetsTheSameRotation) {
  RopeConfig config;
  const RopeFrequencies freqs = MustCompute(config);
  const std::vector<double> head = RandomValues(128, 6);
  std::vector<double> x;
  for (int h = 0; h < 8; ++h) x.insert(x.end(), head.begin(), head.end());
  const int64_t position = 5000;
  const std::vector<double> out = ReferenceApply(config, freqs, x, 1, 8, {&position, 1});
  ASSERT_EQ(out.size(), x.size());
  for (int h = 1; h < 8; ++h) {
    for (int d = 0; d < 128; ++d) EXPECT_EQ(out[h * 128 + d], out[d]);
  }
}

TEST(ReferenceTest, ShapeMismatchYieldsEmpty) {
  RopeConfig config;
  const RopeFrequencies freqs = MustCompute(config);
  const std::vector<double> x(2 * 128, 1.0);
  const std::vector<int64_t> positions = {1, 2};
  EXPECT_EQ(ReferenceApply(config, freqs, x, 2, 1, positions).size(), x.size());
  EXPECT_TRUE(ReferenceApply(config, freqs, x, 2, 2, positions).empty());
  EXPECT_TRUE(ReferenceApply(config, freqs, x, 2, 1, {positions.data(), 1}).empty());
  RopeFrequencies short_freqs = freqs;
  short_freqs.inv_freq.resize(10);
  EXPECT_TRUE(ReferenceApply(config, short_freqs, x, 2, 1, positions).empty());
  RopeConfig odd = config;
  odd.rotary_dim = 63;
  EXPECT_TRUE(ReferenceApply(odd, freqs, x, 2, 1, positions).empty());
  RopeConfig two_columns = config;
  two_columns.position_columns = 2;  // now needs 4 positions
  EXPECT_TRUE(ReferenceApply(two_columns, freqs, x, 2, 1, positions).empty());
  RopeConfig mrope = config;
  mrope.position_columns = 3;
  mrope.mrope_section = {16, 24, 24};  // needs 6 positions
  EXPECT_TRUE(ReferenceApply(mrope, freqs, x, 2, 1, positions).empty());
}

// ---- MRoPE ----

RopeConfig MropeReferenceConfig(bool interleaved, int head_dim, int rotary_dim,
                                std::vector<int> section) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dim = rotary_dim;
  config.max_position = 1 << 21;
  config.position_columns = 3;
  config.mrope_section = std::move(section);
  config.mrope_interleaved = interleaved;
  return config;
}

TEST(ReferenceTest, MropeTextOnlyTokensEqualOneDimensional) {
  for (bool interleaved : {false, true}) {
    const RopeConfig mrope = MropeReferenceConfig(interleaved, 128, 128,
                                                  interleaved ? std::vector<int>{24, 20, 20}
                                                              : std::vector<int>{16, 24, 24});
    RopeConfig plain = mrope;
    plain.position_columns = 1;
    plain.mrope_section.clear();
    const RopeFrequencies freqs = MustCompute(mrope);
    EXPECT_EQ(freqs.inv_freq, MustCompute(plain).inv_freq);
    const int tokens = 6, heads = 3;
    const std::vector<double> x = RandomValues(tokens * heads * 128, 7);
    std::vector<int64_t> one, three;
    for (int t = 0; t < tokens; ++t) {
      const int64_t p = 1000003 * (t + 1) % (1 << 20);
      one.push_back(p);
      three.insert(three.end(), {p, p, p});
    }
    EXPECT_EQ(ReferenceApply(mrope, freqs, x, tokens, heads, three),
              ReferenceApply(plain, freqs, x, tokens, heads, one));
  }
}

TEST(ReferenceTest, MropeRotatesEachFrequencyByItsColumn) {
  // Each frequency alone: rotating with positions (p0, p1, p2) must equal the 1D rotation
  // by the position of the column RopeConfig::MropeColumn names (the reference builds its
  // column map HF's way, so this also checks the closed form the kernels use).
  for (bool interleaved : {false, true}) {
    const RopeConfig mrope =
        MropeReferenceConfig(interleaved, 96, 64, interleaved ? std::vector<int>{12, 10, 10}
                                                              : std::vector<int>{8, 12, 12});
    RopeConfig plain = mrope;
    plain.position_columns = 1;
    plain.mrope_section.clear();
    const RopeFrequencies freqs = MustCompute(mrope);
    const std::vector<double> x = RandomValues(96, 11);
    const std::vector<int64_t> positions = {17, 90001, 1 << 20};
    const std::vector<double> out = ReferenceApply(mrope, freqs, x, 1, 1, positions);
    ASSERT_EQ(out.size(), 96u);
    std::vector<std::vector<double>> by_column;
    for (int64_t p : positions) by_column.push_back(ReferenceApply(plain, freqs, x, 1, 1, {&p, 1}));
    for (int j = 0; j < 32; ++j) {
      const int column = mrope.MropeColumn(j);
      // NeoX: pair j is (j, j + 32).
      EXPECT_EQ(out[j], by_column[column][j]) << "pair " << j;
      EXPECT_EQ(out[j + 32], by_column[column][j + 32]) << "pair " << j;
    }
    for (int d = 64; d < 96; ++d) EXPECT_EQ(out[d], x[d]);  // past rotary_dim: untouched
  }
}

}  // namespace
}  // namespace rope_jit
