// Host conversions between float64/float and the OCP 8-bit floating-point formats the
// KV cache stores (rope/kv_cache.h):
//   E4M3 "fn": 1 sign, 4 exponent (bias 7), 3 mantissa bits; finite max 448, no
//              infinities, NaN = S.1111.111 (0x7f/0xff). Not AMD MI300's "fnuz" variant
//              (bias 8, a single NaN at 0x80).
//   E5M2:      1 sign, 5 exponent (bias 15), 2 mantissa bits; finite max 57344,
//              infinities S.11111.00, NaNs S.11111.{01,10,11}.
// Encoding rounds the exact value to nearest, ties to even, and saturates to the
// largest finite value (infinities included, as the cache stores saturate(x / scale));
// NaN encodes as NaN (0x7f for E4M3, 0x7e for E5M2, sign kept). Decoding is exact.
//
//   uint8_t b = EncodeFp8(Fp8Format::kE4M3Fn, 0.3);  // 0x2a: 0.3125
//   double back = DecodeFp8(Fp8Format::kE4M3Fn, b);  // 0.3125
//   EncodeFp8(Fp8Format::kE4M3Fn, 1e6);              // 0x7e: 448
//
// Header-only, no dependencies: tests and the float64 reference use it. The kernels
// have their own (integer) implementation in kernels/rope_kv_cache.hip.
#ifndef ROPE_JIT_ROPE_FP8_H_
#define ROPE_JIT_ROPE_FP8_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace rope_jit {

enum class Fp8Format { kE4M3Fn, kE5M2 };

struct Fp8Traits {
  int exponent_bits;
  int mantissa_bits;
  int bias;
  uint8_t max_code;  // largest finite magnitude
  uint8_t nan_code;  // the NaN the encoder writes
  double max_value;
};

inline Fp8Traits TraitsOf(Fp8Format format) {
  return format == Fp8Format::kE4M3Fn ? Fp8Traits{4, 3, 7, 0x7e, 0x7f, 448.0}
                                      : Fp8Traits{5, 2, 15, 0x7b, 0x7e, 57344.0};
}

inline bool Fp8IsNan(Fp8Format format, uint8_t code) {
  const uint8_t magnitude = code & 0x7f;
  return format == Fp8Format::kE4M3Fn ? magnitude == 0x7f : magnitude > 0x7c;
}

inline double DecodeFp8(Fp8Format format, uint8_t code) {
  const Fp8Traits t = TraitsOf(format);
  const bool negative = (code & 0x80) != 0;
  if (Fp8IsNan(format, code)) return std::numeric_limits<double>::quiet_NaN();
  const int exponent = (code & 0x7f) >> t.mantissa_bits;
  const int mantissa = code & ((1 << t.mantissa_bits) - 1);
  double magnitude;
  if (format == Fp8Format::kE5M2 && exponent == 0x1f) {
    magnitude = std::numeric_limits<double>::infinity();
  } else if (exponent == 0) {
    magnitude = std::ldexp(mantissa, 1 - t.bias - t.mantissa_bits);
  } else {
    magnitude = std::ldexp((1 << t.mantissa_bits) + mantissa, exponent - t.bias - t.mantissa_bits);
  }
  return negative ? -magnitude : magnitude;
}

// Correctly rounded from the exact double (a float converts to double exactly, so this is
// also the correct rounding of any float).
inline uint8_t EncodeFp8(Fp8Format format, double value) {
  const Fp8Traits t = TraitsOf(format);
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  if (std::isnan(value)) return sign | t.nan_code;
  const double magnitude = std::fabs(value);
  if (magnitude >= t.max_value) return sign | t.max_code;
  // The value in units of its binade's spacing (the subnormal spacing below the normals):
  // exact, as it only scales by a power of two.
  const int min_exponent = 1 - t.bias;
  const int exponent = magnitude == 0 ? min_exponent : std::max(std::ilogb(magnitude), min_exponent);
  const double units = std::ldexp(magnitude, t.mantissa_bits - exponent);
  double rounded = std::floor(units);
  const double fraction = units - rounded;  // exact
  if (fraction > 0.5 || (fraction == 0.5 && std::fmod(rounded, 2.0) != 0)) rounded += 1;
  // rounded is in [0, 2^(m+1)]: the significand including the implicit bit. The top
  // value carries into the next binade, which the encoding's arithmetic does by itself.
  const int significand = static_cast<int>(rounded);
  const int implicit = 1 << t.mantissa_bits;
  int code;
  if (significand < implicit) {
    code = significand;  // subnormal (only reachable at min_exponent) or zero
  } else {
    code = ((exponent + t.bias) << t.mantissa_bits) + (significand - implicit);
  }
  if (code > t.max_code) code = t.max_code;  // unreachable below max_value; kept for safety
  return static_cast<uint8_t>(sign | code);
}

// The value after a store in `format` and a load back.
inline double RoundToFp8(Fp8Format format, double value) {
  return DecodeFp8(format, EncodeFp8(format, value));
}

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_FP8_H_
