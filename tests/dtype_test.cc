// rope/dtype.h: the host conversions to and from f16 and bf16 bits, every value of both.
#include "rope/dtype.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace rope_jit {
namespace {

uint16_t HalfOf(float value) { return FloatToHalfBits(value); }
uint16_t Bf16Of(float value) { return FloatToBf16Bits(value); }

TEST(DTypeTest, HalfRoundsToNearestEven) {
  EXPECT_EQ(HalfOf(1.0f), 0x3c00);
  EXPECT_EQ(HalfOf(1.0f + 0x1p-11f), 0x3c00);                 // tie, even stays
  EXPECT_EQ(HalfOf(1.0f + 3 * 0x1p-11f), 0x3c02);             // tie, odd rounds up
  EXPECT_EQ(HalfOf(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);      // just above the tie
  EXPECT_EQ(HalfOf(-(1.0f + 0x1p-11f)), 0xbc00);
  EXPECT_EQ(HalfOf(2047.0f + 0.5f), HalfOf(2048.0f));          // carry into the exponent
  EXPECT_EQ(HalfOf(65504.0f), 0x7bff);
  EXPECT_EQ(HalfOf(65519.99f), 0x7bff);
  EXPECT_EQ(HalfOf(65520.0f), 0x7c00);                        // tie to even overflows
  EXPECT_EQ(HalfOf(-65520.0f), 0xfc00);
  EXPECT_EQ(HalfOf(1e10f), 0x7c00);
  EXPECT_EQ(HalfOf(0x1p-14f), 0x0400);                        // smallest normal
  EXPECT_EQ(HalfOf(1023.5f * 0x1p-24f), 0x0400);              // subnormal tie into normal
  EXPECT_EQ(HalfOf(0x1p-24f), 0x0001);                        // smallest subnormal
  EXPECT_EQ(HalfOf(0x1p-25f), 0x0000);                        // tie to even zero
  EXPECT_EQ(HalfOf(1.5f * 0x1p-25f), 0x0001);
  EXPECT_EQ(HalfOf(3 * 0x1p-25f), 0x0002);                    // tie 1.5 units -> 2
  EXPECT_EQ(HalfOf(5 * 0x1p-25f), 0x0002);                    // tie 2.5 units -> 2
  EXPECT_EQ(HalfOf(1e-30f), 0x0000);
  EXPECT_EQ(HalfOf(-0.0f), 0x8000);
  EXPECT_EQ(HalfBitsToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(HalfBitsToFloat(0x83ff), -1023 * 0x1p-24f);
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfBitsToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::signbit(HalfBitsToFloat(0x8000)));
}

TEST(DTypeTest, HalfInfAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(HalfOf(inf), 0x7c00);
  EXPECT_EQ(HalfOf(-inf), 0xfc00);
  EXPECT_EQ(HalfBitsToFloat(0x7c00), inf);
  EXPECT_EQ(HalfBitsToFloat(0xfc00), -inf);
  const uint16_t nan = HalfOf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  // A signaling NaN whose payload lives only in the low float bits must stay NaN.
  uint32_t snan_bits = 0xff800001u;
  float snan;
  std::memcpy(&snan, &snan_bits, sizeof(snan));
  const uint16_t from_snan = HalfOf(snan);
  EXPECT_EQ(from_snan & 0xfc00, 0xfc00);
  EXPECT_NE(from_snan & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(0x7c01)));
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(0xfe00)));
}

TEST(DTypeTest, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const uint16_t half = static_cast<uint16_t>(bits);
    const float value = HalfBitsToFloat(half);
    if ((half & 0x7c00) == 0x7c00 && (half & 0x03ff) != 0) {
      EXPECT_TRUE(std::isnan(value)) << std::hex << bits;
      EXPECT_TRUE(std::isnan(HalfBitsToFloat(HalfOf(value)))) << std::hex << bits;
    } else {
      EXPECT_EQ(HalfOf(value), half) << std::hex << bits;
    }
  }
}

#if defined(__FLT16_MAX__) && !defined(__clang__)
// GCC's _Float16 (libgcc's correctly rounded conversion) as an independent oracle over a
// strided sweep of every float exponent.
TEST(DTypeTest, HalfMatchesCompilerFloat16) {
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 4093) {
    const uint32_t b = static_cast<uint32_t>(bits);
    float value;
    std::memcpy(&value, &b, sizeof(value));
    if (std::isnan(value)) continue;
    const _Float16 expected = static_cast<_Float16>(value);
    uint16_t expected_bits;
    std::memcpy(&expected_bits, &expected, sizeof(expected_bits));
    ASSERT_EQ(HalfOf(value), expected_bits) << std::hex << b;
  }
}
#endif

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(Bf16Of(1.0f), 0x3f80);
  EXPECT_EQ(Bf16Of(1.0f + 0x1p-8f), 0x3f80);                  // tie, even stays
  EXPECT_EQ(Bf16Of(1.0f + 3 * 0x1p-8f), 0x3f82);              // tie, odd rounds up
  EXPECT_EQ(Bf16Of(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);       // above the tie
  EXPECT_EQ(Bf16Of(-(1.0f + 3 * 0x1p-8f)), 0xbf82);
  EXPECT_EQ(Bf16Of(3.14159265f), 0x4049);
  EXPECT_EQ(Bf16Of(std::numeric_limits<float>::max()), 0x7f80);  // rounds past max: Inf
  EXPECT_EQ(Bf16Of(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(Bf16Of(-0.0f), 0x8000);
  EXPECT_EQ(Bf16BitsToFloat(0x7f7f), 0x1.fep127f);
  EXPECT_EQ(Bf16BitsToFloat(0x0001), 0x1p-133f);  // bf16 keeps float's subnormals
}

TEST(DTypeTest, Bf16InfAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Bf16Of(inf), 0x7f80);
  EXPECT_EQ(Bf16Of(-inf), 0xff80);
  // A NaN whose payload is only in the low 16 bits must not round to Inf.
  uint32_t nan_bits = 0x7f800001u;
  float nan;
  std::memcpy(&nan, &nan_bits, sizeof(nan));
  const uint16_t from_nan = Bf16Of(nan);
  EXPECT_EQ(from_nan & 0x7f80, 0x7f80);
  EXPECT_NE(from_nan & 0x007f, 0);
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(Bf16Of(-std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::signbit(Bf16BitsToFloat(Bf16Of(-std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DTypeTest, EveryBf16RoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const uint16_t bf16 = static_cast<uint16_t>(bits);
    const float value = Bf16BitsToFloat(bf16);
    if ((bf16 & 0x7f80) == 0x7f80 && (bf16 & 0x007f) != 0) {
      EXPECT_TRUE(std::isnan(value)) << std::hex << bits;
    } else {
      EXPECT_EQ(Bf16Of(value), bf16) << std::hex << bits;
      EXPECT_EQ(RoundToBf16(value), value) << std::hex << bits;
    }
  }
}

TEST(DTypeTest, RoundToHelpers) {
  EXPECT_EQ(RoundToHalf(0.1f), 0.0999755859375f);
  EXPECT_EQ(RoundToBf16(0.1f), 0.10009765625f);
}

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_STREQ(DTypeName(DType::kF32), "f32");
  EXPECT_STREQ(DTypeName(DType::kF16), "f16");
  EXPECT_STREQ(DTypeName(DType::kBF16), "bf16");
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kF16), 2);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
}

}  // namespace
}  // namespace rope_jit
