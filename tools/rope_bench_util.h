// Small helpers of tools/rope_bench: device buffers that free themselves, host encoding of
// random values in the storage dtypes, and statistics over timing samples.
#ifndef ROPE_JIT_TOOLS_ROPE_BENCH_UTIL_H_
#define ROPE_JIT_TOOLS_ROPE_BENCH_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "jit/device_runtime.h"
#include "rope/config.h"
#include "rope/dtype.h"

namespace rope_jit {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A device allocation freed when dropped (errors at free are ignored: the benchmark is
// ending or already failing).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Allocate(DeviceRuntime& runtime, int device, size_t bytes) {
    absl::StatusOr<DevicePointer> pointer = runtime.Allocate(device, bytes);
    if (!pointer.ok()) return pointer.status();
    DeviceBuffer buffer;
    buffer.runtime_ = &runtime;
    buffer.device_ = device;
    buffer.data_ = static_cast<char*>(*pointer);
    buffer.bytes_ = bytes;
    return buffer;
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      runtime_ = std::exchange(other.runtime_, nullptr);
      device_ = other.device_;
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Reset(); }

  char* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Reset() {
    if (runtime_ != nullptr && data_ != nullptr) runtime_->Free(device_, data_).IgnoreError();
    data_ = nullptr;
    bytes_ = 0;
  }

  DeviceRuntime* runtime_ = nullptr;
  int device_ = 0;
  char* data_ = nullptr;
  size_t bytes_ = 0;
};

// Values drawn from N(0, 1), stored in `dtype`: the bytes to upload, and (if asked) the
// exact values those bytes hold, as the float64 reference must see them.
inline std::string EncodeNormal(DType dtype, size_t count, uint64_t seed,
                                std::vector<double>* exact = nullptr) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int size = DTypeSize(dtype);
  std::string bytes(count * size, '\0');
  if (exact != nullptr) exact->resize(count);
  for (size_t i = 0; i < count; ++i) {
    const float value = normal(rng);
    float stored = value;
    if (dtype == DType::kF32) {
      std::memcpy(&bytes[i * 4], &value, 4);
    } else {
      const uint16_t bits = dtype == DType::kF16 ? FloatToHalfBits(value) : FloatToBf16Bits(value);
      stored = dtype == DType::kF16 ? HalfBitsToFloat(bits) : Bf16BitsToFloat(bits);
      std::memcpy(&bytes[i * 2], &bits, 2);
    }
    if (exact != nullptr) (*exact)[i] = stored;
  }
  return bytes;
}

inline std::vector<double> DecodeValues(DType dtype, const std::string& bytes) {
  const int size = DTypeSize(dtype);
  std::vector<double> values(bytes.size() / size);
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      values[i] = f;
    } else {
      uint16_t bits;
      std::memcpy(&bits, &bytes[i * 2], 2);
      values[i] = dtype == DType::kF16 ? HalfBitsToFloat(bits) : Bf16BitsToFloat(bits);
    }
  }
  return values;
}

inline double Median(std::vector<double> samples) {
  if (samples.empty()) return kNaN;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return n % 2 == 1 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
}

inline double Min(const std::vector<double>& samples) {
  return samples.empty() ? kNaN : *std::min_element(samples.begin(), samples.end());
}

inline double Max(const std::vector<double>& samples) {
  return samples.empty() ? kNaN : *std::max_element(samples.begin(), samples.end());
}

inline int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_ROPE_BENCH_UTIL_H_
