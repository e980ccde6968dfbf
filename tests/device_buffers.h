// Shared by the accuracy suites: host images of device tensors in their storage dtype,
// device allocations freed at scope exit, and the tolerance against float64.
//
//   HostBuffer x(DType::kBF16, count);      // x.Set(i, value) rounds to bf16
//   DeviceBuffer dev(runtime, x.bytes.size());
//   runtime.CopyToDevice(0, dev.get(), x.bytes.data(), x.bytes.size());
//   EXPECT_LE(std::fabs(got - want), Tolerance(want, DType::kBF16));
#ifndef ROPE_JIT_TESTS_DEVICE_BUFFERS_H_
#define ROPE_JIT_TESTS_DEVICE_BUFFERS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "jit/device_runtime.h"
#include "rope/config.h"
#include "rope/dtype.h"

namespace rope_jit {

// Spacing of the dtype's values around |value| (subnormal spacing below the normals).
inline double Ulp(double value, DType dtype) {
  const int mantissa_bits = dtype == DType::kF32 ? 23 : dtype == DType::kF16 ? 10 : 7;
  const int min_exponent = dtype == DType::kF32 ? -126 : dtype == DType::kF16 ? -14 : -126;
  int exponent = value == 0 ? min_exponent : std::max(std::ilogb(value), min_exponent);
  return std::ldexp(1.0, exponent - mantissa_bits);
}

// Allowed error: f32 meets 2e-6 absolute; f16/bf16 one ulp of the result's dtype (the
// fp32 math then rounds once), with fp32 noise on top.
inline double Tolerance(double expected, DType dtype) {
  if (dtype == DType::kF32) return 2e-6;
  return Ulp(std::fabs(expected), dtype) + 2e-6;
}

// Host buffer of `count` elements of `dtype`, as bytes.
struct HostBuffer {
  DType dtype;
  std::vector<uint8_t> bytes;
  HostBuffer(DType d, size_t count) : dtype(d), bytes(count * DTypeSize(d)) {}
  size_t size() const { return bytes.size() / DTypeSize(dtype); }
  double Get(size_t i) const {
    if (dtype == DType::kF32) {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, &bytes[i * 2], 2);
    return dtype == DType::kF16 ? HalfBitsToFloat(h) : Bf16BitsToFloat(h);
  }
  void Set(size_t i, double value) {
    if (dtype == DType::kF32) {
      float f = static_cast<float>(value);
      std::memcpy(&bytes[i * 4], &f, 4);
    } else {
      const float f = static_cast<float>(value);
      uint16_t h = dtype == DType::kF16 ? FloatToHalfBits(f) : FloatToBf16Bits(f);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  bool SameBits(const HostBuffer& other, size_t i) const {
    const int size = DTypeSize(dtype);
    return std::memcmp(&bytes[i * size], &other.bytes[i * size], size) == 0;
  }
};

class DeviceBuffer {
 public:
  DeviceBuffer(DeviceRuntime& runtime, size_t bytes, int device = 0)
      : runtime_(runtime), device_(device) {
    auto allocated = runtime.Allocate(device, bytes);
    EXPECT_TRUE(allocated.ok()) << allocated.status();
    if (allocated.ok()) pointer_ = *allocated;
  }
  ~DeviceBuffer() {
    if (pointer_ != nullptr) {
      EXPECT_TRUE(runtime_.Free(device_, pointer_).ok());
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return pointer_; }

 private:
  DeviceRuntime& runtime_;
  const int device_;
  void* pointer_ = nullptr;
};

// Fresh inputs every run; a failure prints the values it saw.
inline std::mt19937_64& Rng() {
  static std::mt19937_64 rng(std::random_device{}());
  return rng;
}

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_DEVICE_BUFFERS_H_
