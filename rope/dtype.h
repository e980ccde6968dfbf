// The element types (DType) and host conversions between float and the 16-bit storage
// formats the kernels read and write: IEEE 754 binary16 ("half", f16) and bfloat16
// (bf16), held as uint16_t bits.
// Rounding is round-to-nearest-even, as the GPUs' conversion instructions do; Inf maps to
// Inf, NaN to a quiet NaN of the same sign, and values past the largest finite half
// round to Inf. Half subnormals are produced and read exactly.
//
//   uint16_t h = FloatToHalfBits(1.0f + 0x1p-11f);  // a tie: rounds to even, 1.0
//   float back = HalfBitsToFloat(h);                  // 1.0f
//   uint16_t b = FloatToBf16Bits(3.14159f);          // 0x4049 (3.140625)
//
// Header-only, no dependencies: tests, the reference and tools all use it.
#ifndef ROPE_JIT_ROPE_DTYPE_H_
#define ROPE_JIT_ROPE_DTYPE_H_

#include <cstdint>
#include <cstring>

namespace rope_jit {

// The element types the kernels read and write (the value is the kernels' ROPE_DTYPE).
enum class DType { kF32 = 0, kF16 = 1, kBF16 = 2 };

constexpr int DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// "f32", "f16", "bf16" (ParseDType in rope/config.h reads these and common aliases).
constexpr const char* DTypeName(DType dtype) {
  return dtype == DType::kF32   ? "f32"
         : dtype == DType::kF16  ? "f16"
         : dtype == DType::kBF16 ? "bf16"
                                 : "unknown";
}

namespace dtype_internal {

inline uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

inline float BitsFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Shifts `significand` right by `shift` (1..31) rounding to nearest, ties to even.
inline uint32_t ShiftRightRoundEven(uint32_t significand, int shift) {
  const uint32_t kept = significand >> shift;
  const uint32_t rest = significand & ((uint32_t{1} << shift) - 1);
  const uint32_t halfway = uint32_t{1} << (shift - 1);
  if (rest > halfway || (rest == halfway && (kept & 1u))) return kept + 1;
  return kept;
}

}  // namespace dtype_internal

inline uint16_t FloatToHalfBits(float value) {
  using dtype_internal::FloatBits;
  using dtype_internal::ShiftRightRoundEven;
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;

  if (magnitude > 0x7f800000u) {
    // NaN: keep the top payload bits and force the quiet bit so the payload can never
    // become zero (which would turn the NaN into Inf).
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  // 65520 = 0x477ff000 is the tie between 65504 (largest half, odd significand) and
  // 65536; ties-to-even carries it, and everything above, to Inf.
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);

  if (magnitude >= 0x38800000u) {  // >= 2^-14: normal half
    // Rebias the exponent (127 -> 15) in place and round away the low 13 bits; a carry
    // out of the significand correctly bumps the exponent.
    const uint32_t rebiased = magnitude - ((127u - 15u) << 23);
    return static_cast<uint16_t>(sign | ShiftRightRoundEven(rebiased, 13));
  }
  // 2^-25 is the tie between 0 and the smallest subnormal 2^-24 (even: 0).
  if (magnitude <= 0x33000000u) return sign;
  // Subnormal half: value / 2^-24 = significand * 2^(exponent - 126). A result of 1024
  // is the smallest normal, which the bit pattern encodes correctly.
  const uint32_t exponent = magnitude >> 23;  // 102..112 here
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(
      sign | ShiftRightRoundEven(significand, static_cast<int>(126u - exponent)));
}

inline float HalfBitsToFloat(uint16_t half) {
  using dtype_internal::BitsFloat;
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t significand = half & 0x3ffu;
  if (exponent == 0x1f) return BitsFloat(sign | 0x7f800000u | (significand << 13));
  if (exponent != 0) return BitsFloat(sign | ((exponent + 127u - 15u) << 23) | (significand << 13));
  if (significand == 0) return BitsFloat(sign);
  // Subnormal: significand * 2^-24, exact in float.
  const float magnitude = static_cast<float>(significand) * 0x1p-24f;
  return sign ? -magnitude : magnitude;
}

inline uint16_t FloatToBf16Bits(float value) {
  const uint32_t bits = dtype_internal::FloatBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, sign kept
  }
  // Round the low 16 bits to nearest even by adding 0x7fff plus the kept LSB; the carry
  // propagates through the exponent, so overflow past the largest bf16 yields Inf.
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

inline float Bf16BitsToFloat(uint16_t bf16) {
  return dtype_internal::BitsFloat(static_cast<uint32_t>(bf16) << 16);
}

// The float a value becomes after a store to the format and a load back.
inline float RoundToHalf(float value) { return HalfBitsToFloat(FloatToHalfBits(value)); }
inline float RoundToBf16(float value) { return Bf16BitsToFloat(FloatToBf16Bits(value)); }

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_DTYPE_H_
