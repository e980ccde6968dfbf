// AOT vs JIT on a real GPU: for each baked shape, the code object built at build time by
// nvcc / hipcc (//aot:rope_aot_baked, linked into this binary so that a copy of it runs
// outside Bazel) and the one NVRTC / hipRTC compile now for device 0 run on the same random
// inputs, and their outputs must be bit-identical. Skips only when no GPU exists; a device
// whose target was not baked fails (add it to aot/BUILD.bazel).
//
// Both sides go through the public API (Rope::Create) with their own kernel service: one
// with only the baked tier (asserted: zero compiles), one with no baked tier and no disk
// tier (asserted: it compiled). Outputs are written out of place into buffers poisoned with
// different bytes on the two sides, so an element one side skipped cannot compare equal.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aot/rope_aot_baked.h"
#include "gtest/gtest.h"
#include "jit/baked_tier.h"
#include "jit/kernel_service.h"
#include "rope/config.h"
#include "rope/dtype.h"
#include "rope/rope.h"
#include "tests/gpu_test_util.h"

namespace rope_jit {
namespace {

constexpr int kTokens = 257;  // odd: partial blocks
constexpr int kQHeads = 8;
constexpr int kKHeads = 2;  // GQA
constexpr int64_t kMaxPosition = int64_t{1} << 20;

ServiceOptions MemoryOnly(const BakedTier* baked) {
  ServiceOptions options;
  options.disk.dir = "";
  options.baked = baked;
  return options;
}

class DeviceBuffer {
 public:
  DeviceBuffer(DeviceRuntime& runtime, size_t bytes) : runtime_(runtime), bytes_(bytes) {
    absl::StatusOr<DevicePointer> allocated = runtime.Allocate(0, bytes);
    EXPECT_TRUE(allocated.ok()) << allocated.status();
    if (allocated.ok()) pointer_ = *allocated;
  }
  ~DeviceBuffer() {
    if (pointer_ != nullptr) {
      EXPECT_TRUE(runtime_.Free(0, pointer_).ok());
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  char* get() const { return static_cast<char*>(pointer_); }
  std::vector<uint8_t> Read() const {
    std::vector<uint8_t> host(bytes_);
    absl::Status copied = runtime_.CopyToHost(0, host.data(), pointer_, bytes_);
    EXPECT_TRUE(copied.ok()) << copied;
    return host;
  }

 private:
  DeviceRuntime& runtime_;
  size_t bytes_;
  void* pointer_ = nullptr;
};

// Random values in [-4, 4], stored in `dtype`; never zeros.
std::vector<uint8_t> RandomElements(DType dtype, size_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> value(-4.0f, 4.0f);
  std::vector<uint8_t> bytes(count * DTypeSize(dtype));
  for (size_t i = 0; i < count; ++i) {
    float f = value(rng);
    if (dtype == DType::kF32) {
      std::memcpy(&bytes[i * 4], &f, 4);
    } else {
      uint16_t bits = dtype == DType::kBF16 ? FloatToBf16Bits(f) : FloatToHalfBits(f);
      std::memcpy(&bytes[i * 2], &bits, 2);
    }
  }
  return bytes;
}

// "" when equal, else the first differing element.
// Compares the tensor's window [shift, shift + bytes) of two read-back buffers: the
// buffers are poisoned with different bytes, and the slack around the window is never
// written, so it differs by design.
std::string FirstDifference(const std::vector<uint8_t>& aot_buffer, const std::vector<uint8_t>& jit_buffer,
                            size_t shift, size_t bytes, DType dtype, const char* what) {
  const std::vector<uint8_t> aot(aot_buffer.begin() + shift, aot_buffer.begin() + shift + bytes);
  const std::vector<uint8_t> jit(jit_buffer.begin() + shift, jit_buffer.begin() + shift + bytes);
  const int size = DTypeSize(dtype);
  for (size_t i = 0; i + size <= aot.size(); i += size) {
    if (std::memcmp(&aot[i], &jit[i], size) != 0) {
      uint32_t a = 0, j = 0;
      std::memcpy(&a, &aot[i], size);
      std::memcpy(&j, &jit[i], size);
      return absl::StrFormat("%s element %d (token %d): AOT bits 0x%x, JIT bits 0x%x", what,
                             i / size, i / size / (aot.size() / size / kTokens), a, j);
    }
  }
  return "";
}

enum class Call { kQK, kQ, kK };

struct Launch {
  Call call;
  bool misaligned;  // buffers one element off: the unaligned kernels
  enum { kInt64, kInt32, kOffset } positions;
};

// Runs `launch` through both Ropes on the same inputs and compares the outputs bitwise.
void RunBoth(DeviceRuntime& runtime, const RopeConfig& config, const Rope& aot, const Rope& jit,
             const Launch& launch, std::mt19937_64& rng) {
  const DType dtype = config.dtype;
  const size_t element = DTypeSize(dtype);
  const int64_t head_dim = config.head_dim;
  const size_t q_count = size_t{kTokens} * kQHeads * head_dim;
  const size_t k_count = size_t{kTokens} * kKHeads * head_dim;
  const size_t shift = launch.misaligned ? element : 0;

  DeviceBuffer q_in(runtime, q_count * element + 16), k_in(runtime, k_count * element + 16);
  DeviceBuffer q_aot(runtime, q_count * element + 16), k_aot(runtime, k_count * element + 16);
  DeviceBuffer q_jit(runtime, q_count * element + 16), k_jit(runtime, k_count * element + 16);
  ASSERT_TRUE(runtime
                  .CopyToDevice(0, q_in.get() + shift, RandomElements(dtype, q_count, rng).data(),
                                q_count * element)
                  .ok());
  ASSERT_TRUE(runtime
                  .CopyToDevice(0, k_in.get() + shift, RandomElements(dtype, k_count, rng).data(),
                                k_count * element)
                  .ok());

  std::vector<int64_t> positions64(kTokens);
  std::vector<int32_t> positions32(kTokens);
  std::uniform_int_distribution<int64_t> position(0, kMaxPosition - 1);
  for (int t = 0; t < kTokens; ++t)
    positions32[t] = static_cast<int32_t>(positions64[t] = position(rng));
  DeviceBuffer positions_device(runtime, kTokens * sizeof(int64_t));
  Positions positions = Positions::FromOffset(position(rng) / 2);
  if (launch.positions == Launch::kInt64) {
    ASSERT_TRUE(
        runtime
            .CopyToDevice(0, positions_device.get(), positions64.data(), kTokens * sizeof(int64_t))
            .ok());
    positions = Positions::Int64(reinterpret_cast<const int64_t*>(positions_device.get()));
  } else if (launch.positions == Launch::kInt32) {
    ASSERT_TRUE(
        runtime
            .CopyToDevice(0, positions_device.get(), positions32.data(), kTokens * sizeof(int32_t))
            .ok());
    positions = Positions::Int32(reinterpret_cast<const int32_t*>(positions_device.get()));
  }

  absl::StatusOr<StreamHandle> stream = runtime.CreateStream(0);
  ASSERT_TRUE(stream.ok()) << stream.status();
  auto tensor = [&](const DeviceBuffer& buffer, int heads) {
    return DeviceTensor::Contiguous(buffer.get() + shift, kTokens, heads, head_dim, dtype);
  };
  auto apply = [&](const Rope& rope, const DeviceBuffer& q_out, const DeviceBuffer& k_out,
                   uint8_t poison) {
    EXPECT_TRUE(runtime.MemsetAsync(0, q_out.get(), poison, q_count * element + 16, *stream).ok());
    EXPECT_TRUE(runtime.MemsetAsync(0, k_out.get(), poison, k_count * element + 16, *stream).ok());
    const DeviceTensor q = tensor(q_in, kQHeads), k = tensor(k_in, kKHeads);
    const DeviceTensor q_o = tensor(q_out, kQHeads), k_o = tensor(k_out, kKHeads);
    switch (launch.call) {
      case Call::kQK:
        return rope.ApplyPositionEmbeddingsDevice(q, k, positions, *stream, &q_o, &k_o);
      case Call::kQ:
        return rope.ApplyQDevice(q, positions, *stream, &q_o);
      case Call::kK:
        return rope.ApplyKDevice(k, positions, *stream, &k_o);
    }
    return absl::InternalError("unknown call");
  };
  absl::Status aot_status = apply(aot, q_aot, k_aot, 0xA5);
  absl::Status jit_status = apply(jit, q_jit, k_jit, 0x5A);
  ASSERT_TRUE(aot_status.ok()) << aot_status;
  ASSERT_TRUE(jit_status.ok()) << jit_status;
  ASSERT_TRUE(runtime.SynchronizeStream(0, *stream).ok());
  EXPECT_TRUE(runtime.DestroyStream(0, *stream).ok());

  if (launch.call != Call::kK) {
    EXPECT_EQ(FirstDifference(q_aot.Read(), q_jit.Read(), shift, q_count * element, dtype, "Q"), "");
  }
  if (launch.call != Call::kQ) {
    EXPECT_EQ(FirstDifference(k_aot.Read(), k_jit.Read(), shift, k_count * element, dtype, "K"), "");
  }
}

TEST(AotGpuTest, BakedAndJitCodeGiveBitIdenticalOutputs) {
  ROPE_JIT_GPU_OR_SKIP(runtime);
  absl::StatusOr<std::string> target = runtime->DeviceTarget(0);
  ASSERT_TRUE(target.ok()) << target.status();
  absl::StatusOr<std::string> name = runtime->DeviceName(0);
  std::cout << "device 0: " << (name.ok() ? *name : "?") << " (" << *target << ")\n";
  const StaticBakedTier& tier = RopeAotBakedTier();
  std::mt19937_64 rng(20261128);
  int compared = 0;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
      for (int head_dim : {128, 80}) {
        RopeConfig config;
        config.dtype = dtype;
        config.style = style;
        config.head_dim = head_dim;
        config.theta = 500000;
        config.max_position = kMaxPosition;
        SCOPED_TRACE(absl::StrCat(DTypeName(dtype), " ", StyleName(style), " head_dim ", head_dim));

        KernelService aot_service(MemoryOnly(&tier));
        absl::StatusOr<std::unique_ptr<Rope>> aot = Rope::Create(config, *runtime, 0, aot_service);
        ASSERT_TRUE(aot.ok()) << aot.status();
        ASSERT_EQ(aot_service.stats().compiles, 0u)
            << "no baked code object for " << *target << ": the AOT build covers "
            << "gfx90a, gfx1030, sm_80 and sm_90 (aot/BUILD.bazel)";
        ASSERT_EQ(aot_service.stats().baked_hits, 3u);  // rope, position_embeddings, rope_kv_cache

        KernelService jit_service(MemoryOnly(nullptr));
        absl::StatusOr<std::unique_ptr<Rope>> jit = Rope::Create(config, *runtime, 0, jit_service);
        ASSERT_TRUE(jit.ok()) << jit.status();
        ASSERT_EQ(jit_service.stats().compiles, 3u);

        for (const Launch& launch :
             {Launch{Call::kQK, false, Launch::kInt64}, Launch{Call::kQK, true, Launch::kInt32},
              Launch{Call::kQ, false, Launch::kOffset}, Launch{Call::kK, true, Launch::kInt64}}) {
          SCOPED_TRACE(absl::StrCat("call ", static_cast<int>(launch.call), " misaligned ",
                                    launch.misaligned, " positions ", launch.positions));
          ASSERT_NO_FATAL_FAILURE(RunBoth(*runtime, config, **aot, **jit, launch, rng));
          ++compared;
        }
      }
    }
  }
  std::cout << compared << " launches bit-identical between AOT and JIT on " << *target << "\n";
}

}  // namespace
}  // namespace rope_jit
