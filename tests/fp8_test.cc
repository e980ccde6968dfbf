// rope/fp8.h against the OCP 8-bit formats' definitions: every one of the 256 codes of
// each format, every tie between neighbouring codes, saturation and NaN, and an
// independent brute-force nearest-value oracle over random doubles.
#include "rope/fp8.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace rope_jit {
namespace {

constexpr Fp8Format kFormats[] = {Fp8Format::kE4M3Fn, Fp8Format::kE5M2};

const char* Name(Fp8Format format) { return format == Fp8Format::kE4M3Fn ? "e4m3fn" : "e5m2"; }

// The finite non-negative codes in increasing order of value (0x00 .. max_code).
std::vector<uint8_t> FiniteMagnitudes(Fp8Format format) {
  std::vector<uint8_t> codes;
  for (int code = 0; code <= TraitsOf(format).max_code; ++code) codes.push_back(static_cast<uint8_t>(code));
  return codes;
}

TEST(Fp8Test, DecodesTheFormatsDefiningValues) {
  EXPECT_EQ(DecodeFp8(Fp8Format::kE4M3Fn, 0x7e), 448.0);
  EXPECT_EQ(DecodeFp8(Fp8Format::kE4M3Fn, 0xfe), -448.0);
  EXPECT_EQ(DecodeFp8(Fp8Format::kE4M3Fn, 0x38), 1.0);
  EXPECT_EQ(DecodeFp8(Fp8Format::kE4M3Fn, 0x08), std::ldexp(1.0, -6));  // smallest normal
  EXPECT_EQ(DecodeFp8(Fp8Format::kE4M3Fn, 0x01), std::ldexp(1.0, -9));  // smallest subnormal
  EXPECT_EQ(DecodeFp8(Fp8Format::kE4M3Fn, 0x78), 256.0);  // exponent 15 is finite in "fn"
  EXPECT_TRUE(std::isnan(DecodeFp8(Fp8Format::kE4M3Fn, 0x7f)));
  EXPECT_TRUE(std::isnan(DecodeFp8(Fp8Format::kE4M3Fn, 0xff)));
  EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, 0x7b), 57344.0);
  EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, 0x3c), 1.0);
  EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, 0x04), std::ldexp(1.0, -14));
  EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, 0x01), std::ldexp(1.0, -16));
  EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, 0x7c), std::numeric_limits<double>::infinity());
  EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, 0xfc), -std::numeric_limits<double>::infinity());
  for (uint8_t nan : {0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff}) {
    EXPECT_TRUE(std::isnan(DecodeFp8(Fp8Format::kE5M2, nan))) << int{nan};
  }
  // E5M2 is the top byte of an IEEE half: a second, independent decoder.
  for (int code = 0; code < 256; ++code) {
    const int exponent = (code >> 2) & 0x1f, mantissa = code & 3;
    if (exponent == 0x1f) continue;
    const double magnitude = exponent == 0 ? std::ldexp(mantissa, -16)
                                           : std::ldexp(4 + mantissa, exponent - 17);
    EXPECT_EQ(DecodeFp8(Fp8Format::kE5M2, static_cast<uint8_t>(code)), code & 0x80 ? -magnitude : magnitude);
  }
}

TEST(Fp8Test, EveryCodeRoundTrips) {
  for (Fp8Format format : kFormats) {
    SCOPED_TRACE(Name(format));
    int finite = 0;
    for (int code = 0; code < 256; ++code) {
      const uint8_t c = static_cast<uint8_t>(code);
      const double value = DecodeFp8(format, c);
      if (std::isnan(value)) {
        EXPECT_TRUE(Fp8IsNan(format, EncodeFp8(format, value))) << code;
        continue;
      }
      if (std::isinf(value)) {  // E5M2 infinities saturate
        EXPECT_EQ(EncodeFp8(format, value), (c & 0x80) | TraitsOf(format).max_code) << code;
        continue;
      }
      EXPECT_EQ(EncodeFp8(format, value), c) << code << " = " << value;
      ++finite;
    }
    // E4M3fn: 256 - 2 NaNs; E5M2: 256 - 2 infinities - 6 NaNs. Both zeros included.
    EXPECT_EQ(finite, format == Fp8Format::kE4M3Fn ? 254 : 248);
  }
}

// Between neighbours a < b: the midpoint goes to the even code, anything off it to the
// nearer one. Covers subnormals, the subnormal/normal boundary and every binade.
TEST(Fp8Test, EveryTieRoundsToEvenAndEverythingElseToNearest) {
  for (Fp8Format format : kFormats) {
    SCOPED_TRACE(Name(format));
    const std::vector<uint8_t> codes = FiniteMagnitudes(format);
    for (size_t i = 0; i + 1 < codes.size(); ++i) {
      const uint8_t lo = codes[i], hi = codes[i + 1];
      const double a = DecodeFp8(format, lo), b = DecodeFp8(format, hi);
      ASSERT_LT(a, b);
      const double mid = (a + b) / 2;  // exact in double
      const uint8_t even = (lo & 1) == 0 ? lo : hi;
      for (double sign : {1.0, -1.0}) {
        const uint8_t s = sign < 0 ? 0x80 : 0;
        EXPECT_EQ(EncodeFp8(format, sign * mid), s | even) << "tie " << mid;
        EXPECT_EQ(EncodeFp8(format, sign * std::nextafter(mid, 0.0)), s | lo) << "below " << mid;
        EXPECT_EQ(EncodeFp8(format, sign * std::nextafter(mid, 1e9)), s | hi) << "above " << mid;
        // A float just off the tie (what the kernels' fp32 values look like).
        EXPECT_EQ(EncodeFp8(format, sign * std::nextafter(static_cast<float>(mid), 0.0f)), s | lo);
        EXPECT_EQ(EncodeFp8(format, sign * std::nextafter(static_cast<float>(mid), 1e9f)), s | hi);
      }
    }
  }
}

TEST(Fp8Test, SaturatesToTheLargestFiniteValueAndKeepsNan) {
  const double inf = std::numeric_limits<double>::infinity();
  for (Fp8Format format : kFormats) {
    SCOPED_TRACE(Name(format));
    const Fp8Traits t = TraitsOf(format);
    for (double big : {t.max_value, std::nextafter(t.max_value, inf), t.max_value * 1.0625,
                       t.max_value * 1.5, 1e30, inf}) {
      EXPECT_EQ(EncodeFp8(format, big), t.max_code) << big;
      EXPECT_EQ(EncodeFp8(format, -big), 0x80 | t.max_code) << -big;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    EXPECT_EQ(EncodeFp8(format, nan), t.nan_code);
    EXPECT_EQ(EncodeFp8(format, -nan), 0x80 | t.nan_code);
    EXPECT_TRUE(Fp8IsNan(format, EncodeFp8(format, std::numeric_limits<float>::signaling_NaN())));
    // Below half the smallest subnormal: zero, sign kept; the half itself ties to 0.
    const double smallest = DecodeFp8(format, 0x01);
    EXPECT_EQ(EncodeFp8(format, smallest / 2), 0x00);
    EXPECT_EQ(EncodeFp8(format, -smallest / 2), 0x80);
    EXPECT_EQ(EncodeFp8(format, std::nextafter(smallest / 2, 1.0)), 0x01);
    EXPECT_EQ(EncodeFp8(format, 1e-300), 0x00);
    EXPECT_EQ(EncodeFp8(format, -0.0), 0x80);
  }
  EXPECT_EQ(EncodeFp8(Fp8Format::kE4M3Fn, 464.0), 0x7e);  // the tie above 448: "even" 448
  EXPECT_EQ(EncodeFp8(Fp8Format::kE4M3Fn, 0.3), 0x2a);     // 0.3125
}

// An oracle that knows nothing of the bit layout: the nearest finite value by search,
// ties to the even code, values at or past the maximum saturated.
uint8_t NearestByScan(Fp8Format format, double value) {
  const Fp8Traits t = TraitsOf(format);
  const uint8_t sign = std::signbit(value) ? 0x80 : 0;
  const double magnitude = std::fabs(value);
  if (magnitude >= t.max_value) return sign | t.max_code;
  uint8_t best = 0;
  double best_distance = std::numeric_limits<double>::infinity();
  for (uint8_t code : FiniteMagnitudes(format)) {
    const double distance = std::fabs(DecodeFp8(format, code) - magnitude);
    if (distance < best_distance || (distance == best_distance && (code & 1) == 0)) {
      best = code;
      best_distance = distance;
    }
  }
  return sign | best;
}

TEST(Fp8Test, MatchesABruteForceNearestValueOracle) {
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> exponent(-20, 17);
  std::uniform_real_distribution<double> mantissa(1, 2);
  for (Fp8Format format : kFormats) {
    SCOPED_TRACE(Name(format));
    for (int i = 0; i < 20000; ++i) {
      double value = std::ldexp(mantissa(rng), static_cast<int>(std::floor(exponent(rng))));
      if (i % 2) value = -value;
      ASSERT_EQ(EncodeFp8(format, value), NearestByScan(format, value)) << value;
    }
  }
}

}  // namespace
}  // namespace rope_jit
