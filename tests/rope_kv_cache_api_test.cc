// Rope::ApplyAndCacheKvDevice and WriteKvCacheDevice without a GPU: real NVRTC compiles
// through the kernel service, a fake device runtime that records launches. Checks the
// launch arguments (cache strides per layout, slot count, format, kernel choice) and
// that every bad argument is InvalidArgument naming it with nothing launched.
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "rope/kv_cache.h"
#include "rope/rope.h"
#include "tests/fake_runtime.h"
#include "tests/require_compiler.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

constexpr int kQHeads = 32, kKvHeads = 8, kDim = 128, kTokens = 64;
constexpr int64_t kRow = (kQHeads + 2 * kKvHeads) * kDim;  // packed QKV, bf16

class RopeKvCacheApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
    ServiceOptions options;
    options.disk.dir = TestTempRoot() + "/rope_kv_cache_api_cache";
    service_ = std::make_unique<KernelService>(options);
    RopeConfig config;
    config.head_dim = kDim;
    config.dtype = DType::kBF16;
    config.max_position = 4096;
    auto rope = Rope::Create(config, runtime_, 0, *service_);
    ASSERT_TRUE(rope.ok()) << rope.status();
    rope_ = std::move(*rope);

    // Never dereferenced: the fake runtime launches nothing.
    char* base = reinterpret_cast<char*>(uintptr_t{1} << 32);
    q_ = DeviceTensor{base, kTokens, kQHeads, kDim, kRow, kDim, DType::kBF16};
    k_ = DeviceTensor{base + kQHeads * kDim * 2, kTokens, kKvHeads, kDim, kRow, kDim, DType::kBF16};
    v_ = DeviceTensor{base + (kQHeads + kKvHeads) * kDim * 2, kTokens, kKvHeads, kDim, kRow, kDim,
                      DType::kBF16};
    cache_.k = base + (int64_t{1} << 28);
    cache_.v = base + (int64_t{2} << 28);
    cache_.num_blocks = 100;
    cache_.block_size = 16;
    cache_.kv_heads = kKvHeads;
    cache_.head_dim = kDim;
    slots_ = reinterpret_cast<const int64_t*>(base + (int64_t{3} << 28));
  }

  absl::Status Apply(const DeviceTensor& q, const DeviceTensor& k, const DeviceTensor& v,
                     const KvCacheView& cache, const DeviceTensor* q_out = nullptr,
                     Positions positions = Positions::FromOffset(0)) {
    return rope_->ApplyAndCacheKvDevice(q, k, v, positions, slots_, cache, nullptr, q_out);
  }

  FakeRuntime runtime_{"sm_90"};
  std::unique_ptr<KernelService> service_;
  std::unique_ptr<Rope> rope_;
  DeviceTensor q_, k_, v_;
  KvCacheView cache_;
  const int64_t* slots_ = nullptr;
  const float scales_[2] = {0.5f, 2.0f};
};

TEST_F(RopeKvCacheApiTest, OneLaunchWithTheCacheGeometry) {
  for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND}) {
    KvCacheView cache = cache_;
    cache.layout = layout;
    ASSERT_TRUE(Apply(q_, k_, v_, cache).ok());
  }
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 2u);
  for (const FakeRuntime::LaunchRecord& launch : launches) {
    EXPECT_EQ(runtime_.FunctionName(launch.function), "rope_kv_cache_aligned");
    const RopeKvCacheArgs& a = launch.kv_args;
    EXPECT_EQ(a.rope.total_heads, kQHeads + 2 * kKvHeads);
    EXPECT_EQ(a.rope.tensors[0].in, q_.data);
    EXPECT_EQ(a.rope.tensors[0].out, q_.data);  // in place
    EXPECT_EQ(a.rope.tensors[1].in, k_.data);
    EXPECT_EQ(a.v, v_.data);
    EXPECT_EQ(a.v_token_stride, kRow);
    EXPECT_EQ(a.k_cache, cache_.k);
    EXPECT_EQ(a.v_cache, cache_.v);
    EXPECT_EQ(a.slot_mapping, reinterpret_cast<const long long*>(slots_));
    EXPECT_EQ(a.num_slots, 1600);
    EXPECT_EQ(a.block_size, 16);
    EXPECT_EQ(a.cache_dtype, ROPE_KV_SAME);
    EXPECT_EQ(a.rotate, 1);
    EXPECT_EQ(a.rope.num_tokens, kTokens);
    EXPECT_EQ(a.cache_block_stride, 16 * kKvHeads * kDim);
    // The launch shape is the rotation's, over Q, K and V heads.
    const RopeLaunchShape shape = ComputeLaunchShape(
        rope_->config(), RopeKernel::kRopeKvCache, kTokens, 48, VectorWidth(rope_->config()));
    EXPECT_EQ(a.rope.head_splits, shape.head_splits);
    EXPECT_EQ(launch.grid.x, static_cast<uint32_t>(shape.blocks));
  }
  EXPECT_EQ(launches[0].kv_args.cache_slot_stride, kKvHeads * kDim);  // NHD
  EXPECT_EQ(launches[0].kv_args.cache_head_stride, kDim);
  EXPECT_EQ(launches[1].kv_args.cache_slot_stride, kDim);             // HND
  EXPECT_EQ(launches[1].kv_args.cache_head_stride, 16 * kDim);
}

TEST_F(RopeKvCacheApiTest, PositionsAndSlotsAreReadEarlyOnlyUnderPdlAndWhenPromised) {
  ApplyOptions pdl;
  pdl.programmatic_dependent_launch = true;
  ApplyOptions early = pdl;
  early.positions_not_written_by_prior_kernel = true;
  // One token (a decode step): the narrow kernel, which reads early when asked.
  DeviceTensor q = q_, k = k_, v = v_;
  q.tokens = k.tokens = v.tokens = 1;
  for (const ApplyOptions& options : {pdl, early}) {
    ASSERT_TRUE(rope_->ApplyAndCacheKvDevice(q, k, v, Positions::FromOffset(0), slots_, cache_,
                                             nullptr, nullptr, options)
                    .ok());
  }
  ASSERT_TRUE(rope_->WriteKvCacheDevice(k, v, slots_, cache_, nullptr, early).ok());
  // 64 tokens x 48 heads: too large to gain, so the promise is not used.
  ASSERT_TRUE(rope_->ApplyAndCacheKvDevice(q_, k_, v_, Positions::FromOffset(0), slots_, cache_,
                                           nullptr, nullptr, early)
                  .ok());
  // The vector kernel reads early through its own entry point.
  ApplyOptions early_vector = early;
  early_vector.kernel = KernelChoice::kVector;
  ASSERT_TRUE(rope_->ApplyAndCacheKvDevice(q, k, v, Positions::FromOffset(0), slots_, cache_,
                                           nullptr, nullptr, early_vector)
                  .ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 5u);
  // PDL alone: only the addresses before the wait; the promise adds positions and slots.
  EXPECT_EQ(launches[0].kv_args.rope.launch_order, ROPE_ORDER_ADDRESSES_FIRST);
  EXPECT_EQ(launches[1].kv_args.rope.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  EXPECT_EQ(launches[2].kv_args.rope.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  EXPECT_EQ(launches[3].kv_args.rope.launch_order, ROPE_ORDER_WAIT_FIRST);
  EXPECT_EQ(launches[4].kv_args.rope.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_kv_cache_unaligned");
  EXPECT_EQ(runtime_.FunctionName(launches[3].function), "rope_kv_cache_aligned");
  EXPECT_EQ(runtime_.FunctionName(launches[4].function), "rope_kv_cache_aligned_early");
  for (const FakeRuntime::LaunchRecord& launch : launches) {
    EXPECT_TRUE(launch.options.programmatic_dependent_launch);
  }
}

TEST_F(RopeKvCacheApiTest, Fp8OutOfPlaceAndTheCacheWriteAlone) {
  KvCacheView fp8 = cache_;
  fp8.dtype = KvDType::kFp8E5M2;
  fp8.k_scale = &scales_[0];
  fp8.v_scale = &scales_[1];
  DeviceTensor q_out = DeviceTensor::Contiguous(static_cast<char*>(cache_.k) - (int64_t{1} << 27),
                                                kTokens, kQHeads, kDim, DType::kBF16);
  ASSERT_TRUE(Apply(q_, k_, v_, fp8, &q_out).ok());
  ASSERT_TRUE(rope_->WriteKvCacheDevice(k_, v_, slots_, fp8, nullptr).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 2u);
  EXPECT_EQ(launches[0].kv_args.cache_dtype, ROPE_KV_FP8_E5M2);
  EXPECT_EQ(launches[0].kv_args.k_scale, &scales_[0]);
  EXPECT_EQ(launches[0].kv_args.v_scale, &scales_[1]);
  EXPECT_EQ(launches[0].kv_args.rope.tensors[0].out, q_out.data);
  EXPECT_EQ(launches[0].kv_args.rope.tensors[0].out_token_stride, kQHeads * kDim);
  const RopeKvCacheArgs& write = launches[1].kv_args;
  EXPECT_EQ(write.rotate, 0);
  EXPECT_EQ(write.rope.tensors[0].num_heads, 0);
  EXPECT_EQ(write.rope.total_heads, 2 * kKvHeads);
  // The write alone chooses its kernel as the rotation does (PrefersNarrowKernel): 64 tokens
  // of 16 K and V heads (65536 narrow threads, over the 48K limit) take the vector kernel,
  // 16 tokens (16384) the narrow one.
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_kv_cache_aligned");
  DeviceTensor k16 = k_, v16 = v_;
  k16.tokens = v16.tokens = 16;
  ASSERT_TRUE(rope_->WriteKvCacheDevice(k16, v16, slots_, fp8, nullptr).ok());
  ASSERT_EQ(runtime_.launches().size(), 3u);
  EXPECT_EQ(runtime_.FunctionName(runtime_.launches()[2].function), "rope_kv_cache_unaligned");
}

TEST_F(RopeKvCacheApiTest, MisalignedViewsTakeTheUnalignedKernel) {
  KvCacheView shifted = cache_;
  shifted.k = static_cast<char*>(cache_.k) + 2;  // bf16-aligned, not 8-byte aligned
  ASSERT_TRUE(Apply(q_, k_, v_, shifted).ok());
  KvCacheView fp8 = cache_;
  fp8.dtype = KvDType::kFp8E4M3;
  fp8.k_scale = &scales_[0];
  fp8.v_scale = &scales_[1];
  fp8.v = static_cast<char*>(cache_.v) + 2;  // 4 FP8 bytes per access need 4-byte alignment
  ASSERT_TRUE(Apply(q_, k_, v_, fp8).ok());
  fp8.v = static_cast<char*>(cache_.v) + 4;
  ASSERT_TRUE(Apply(q_, k_, v_, fp8).ok());
  DeviceTensor v_odd = v_;
  v_odd.token_stride = kRow + 1;
  ASSERT_TRUE(Apply(q_, k_, v_odd, cache_).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 4u);
  EXPECT_EQ(runtime_.FunctionName(launches[0].function), "rope_kv_cache_unaligned");
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_kv_cache_unaligned");
  EXPECT_EQ(runtime_.FunctionName(launches[2].function), "rope_kv_cache_aligned");
  EXPECT_EQ(runtime_.FunctionName(launches[3].function), "rope_kv_cache_unaligned");
}

TEST_F(RopeKvCacheApiTest, ZeroTokensLaunchNothing) {
  DeviceTensor q = q_, k = k_, v = v_;
  q.tokens = k.tokens = v.tokens = 0;
  EXPECT_TRUE(Apply(q, k, v, cache_).ok());
  EXPECT_TRUE(rope_->WriteKvCacheDevice(k, v, slots_, cache_, nullptr).ok());
  EXPECT_TRUE(runtime_.launches().empty());
}

// The bad-input matrix: InvalidArgument naming the value, nothing launched.
TEST_F(RopeKvCacheApiTest, BadInputMatrix) {
  struct BadCase {
    std::string expect_in_message;
    std::function<absl::Status()> call;
  };
  std::vector<BadCase> cases;
  auto tensor_case = [&](std::string message, std::function<void(DeviceTensor&, DeviceTensor&, DeviceTensor&)> mutate) {
    DeviceTensor q = q_, k = k_, v = v_;
    mutate(q, k, v);
    cases.push_back({message, [this, q, k, v] { return Apply(q, k, v, cache_); }});
  };
  auto cache_case = [&](std::string message, std::function<void(KvCacheView&)> mutate) {
    KvCacheView cache = cache_;
    mutate(cache);
    cases.push_back({message, [this, cache] { return Apply(q_, k_, v_, cache); }});
  };
  tensor_case("q.data is null", [](DeviceTensor& q, DeviceTensor&, DeviceTensor&) { q.data = nullptr; });
  tensor_case("k.data is null", [](DeviceTensor&, DeviceTensor& k, DeviceTensor&) { k.data = nullptr; });
  tensor_case("v.data is null", [](DeviceTensor&, DeviceTensor&, DeviceTensor& v) { v.data = nullptr; });
  tensor_case("k.tokens = 63 but q.tokens = 64", [](DeviceTensor&, DeviceTensor& k, DeviceTensor&) { k.tokens = 63; });
  tensor_case("v.tokens = 65 but k.tokens = 64", [](DeviceTensor&, DeviceTensor&, DeviceTensor& v) { v.tokens = 65; });
  tensor_case("k.heads = 4 but cache.kv_heads = 8", [](DeviceTensor&, DeviceTensor& k, DeviceTensor&) { k.heads = 4; });
  tensor_case("v.heads = 16 but cache.kv_heads = 8", [](DeviceTensor&, DeviceTensor&, DeviceTensor& v) { v.heads = 16; });
  tensor_case("v.head_dim = 64", [](DeviceTensor&, DeviceTensor&, DeviceTensor& v) { v.head_dim = 64; });
  tensor_case("v.dtype = f16", [](DeviceTensor&, DeviceTensor&, DeviceTensor& v) { v.dtype = DType::kF16; });
  tensor_case("v.head_stride = 64", [](DeviceTensor&, DeviceTensor&, DeviceTensor& v) { v.head_stride = 64; });
  tensor_case("k.token_stride", [](DeviceTensor&, DeviceTensor& k, DeviceTensor&) {
    k.token_stride = int64_t{1} << 58;  // its last element's byte offset overflows
  });
  cache_case("cache.k is null", [](KvCacheView& c) { c.k = nullptr; });
  cache_case("cache.head_dim = 64", [](KvCacheView& c) { c.head_dim = 64; });
  cache_case("cache.num_blocks = 0", [](KvCacheView& c) { c.num_blocks = 0; });
  cache_case("cache extent overflows", [](KvCacheView& c) { c.num_blocks = int64_t{1} << 53; });
  cache_case("cache.k_scale is null", [](KvCacheView& c) { c.dtype = KvDType::kFp8E4M3; });
  cache_case("scales are for FP8", [this](KvCacheView& c) { c.v_scale = &scales_[1]; });
  cache_case("cache.k and cache.v overlap", [](KvCacheView& c) { c.v = static_cast<char*>(c.k) + 4096; });
  cases.push_back({"slot_mapping is null", [this] {
                     return rope_->ApplyAndCacheKvDevice(q_, k_, v_, Positions::FromOffset(0), nullptr,
                                                         cache_, nullptr);
                   }});
  DeviceTensor q_out_wrong = DeviceTensor::Contiguous(q_.data, kTokens, kQHeads - 1, kDim, DType::kBF16);
  cases.push_back({"q_out is [64, 31, 128]", [this, q_out_wrong] { return Apply(q_, k_, v_, cache_, &q_out_wrong); }});
  cases.push_back({"offset 4090", [this] { return Apply(q_, k_, v_, cache_, nullptr, Positions::FromOffset(4090)); }});
  cases.push_back({"options.kernel = 9", [this] {
                     ApplyOptions bad;
                     bad.kernel = static_cast<KernelChoice>(9);
                     return rope_->WriteKvCacheDevice(k_, v_, slots_, cache_, nullptr, bad);
                   }});
  // The cache write alone validates K, V, slots and cache the same way.
  cases.push_back({"v.heads = 16 but cache.kv_heads = 8", [this] {
                     DeviceTensor v = v_;
                     v.heads = 16;
                     return rope_->WriteKvCacheDevice(k_, v, slots_, cache_, nullptr);
                   }});
  cases.push_back({"slot_mapping is null",
                   [this] { return rope_->WriteKvCacheDevice(k_, v_, nullptr, cache_, nullptr); }});
  cases.push_back({"cache.v is null", [this] {
                     KvCacheView cache = cache_;
                     cache.v = nullptr;
                     return rope_->WriteKvCacheDevice(k_, v_, slots_, cache, nullptr);
                   }});
  for (const BadCase& c : cases) {
    const absl::Status status = c.call();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.expect_in_message << ": " << status;
    EXPECT_TRUE(absl::StrContains(status.message(), c.expect_in_message))
        << "message '" << status.message() << "' does not name '" << c.expect_in_message << "'";
  }
  EXPECT_TRUE(runtime_.launches().empty());
}

}  // namespace
}  // namespace rope_jit
