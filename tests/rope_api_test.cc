// The apply API without a GPU: real NVRTC compiles through the kernel service, a fake
// device runtime that records launches. Checks validation (every bad argument is
// InvalidArgument naming it, and nothing is launched), kernel choice and launch shape.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "rope/rope.h"
#include "tests/fake_runtime.h"
#include "tests/require_compiler.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

class RopeApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
    ServiceOptions options;
    options.disk.dir = TestTempRoot() + "/rope_api_cache";
    service_ = std::make_unique<KernelService>(options);
  }

  std::unique_ptr<Rope> Make(const RopeConfig& config) {
    auto rope = Rope::Create(config, runtime_, 0, *service_);
    EXPECT_TRUE(rope.ok()) << rope.status();
    return rope.ok() ? std::move(*rope) : nullptr;
  }

  FakeRuntime runtime_{"sm_90"};
  std::unique_ptr<KernelService> service_;
  // Never dereferenced: the fake runtime launches nothing.
  alignas(16) char storage_[64];
  void* data_ = storage_;
};

RopeConfig Bf16Config() {
  RopeConfig config;
  config.head_dim = 128;
  config.dtype = DType::kBF16;
  config.max_position = 4096;
  return config;
}

TEST_F(RopeApiTest, PositionEmbeddingsLaunchOnceWithTheViewsGiven) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  const int64_t row = (32 + 2 * 8) * 128;
  DeviceTensor q{data_, 4096, 32, 128, row, 128, DType::kBF16};
  DeviceTensor k{static_cast<char*>(data_) + 32 * 128 * 2, 4096, 8, 128, row, 128, DType::kBF16};
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 1u);
  const RopeLaunchArgs& args = launches[0].args;
  EXPECT_EQ(runtime_.FunctionName(launches[0].function), "rope_qk_apply_aligned");
  EXPECT_EQ(args.total_heads, 40);
  EXPECT_EQ(args.tensors[0].in_token_stride, row);
  EXPECT_EQ(args.tensors[1].in, k.data);
  EXPECT_EQ(args.tensors[1].out, k.data);  // in place
  EXPECT_EQ(args.num_tokens, 4096);
  EXPECT_EQ(launches[0].block.x, 256u);
  // bf16, head_dim 128, NeoX: 4 elements (8 bytes) per access, 16 lanes per head.
  const int64_t threads = int64_t{4096} * 16 * args.head_splits;
  EXPECT_EQ(launches[0].grid.x, static_cast<uint32_t>((threads + 255) / 256));
}

// Decode: the narrow kernel (one pair a thread, PrefersNarrowKernel), one head a thread.
// Prefill: the vector kernel, 4 heads a thread.
TEST_F(RopeApiTest, DecodeTakesTheNarrowKernelAndSplitsHeadsPrefillDoesNot) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  DeviceTensor q1 = DeviceTensor::Contiguous(data_, 1, 32, 128, DType::kBF16);
  DeviceTensor k1 = DeviceTensor::Contiguous(data_, 1, 8, 128, DType::kBF16);
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q1, k1, Positions::FromOffset(7), nullptr).ok());
  DeviceTensor qn = DeviceTensor::Contiguous(data_, 32768, 32, 128, DType::kBF16);
  DeviceTensor kn = DeviceTensor::Contiguous(data_, 32768, 8, 128, DType::kBF16);
  RopeConfig long_config = Bf16Config();
  long_config.max_position = 65536;
  std::unique_ptr<Rope> long_rope = Make(long_config);
  ASSERT_TRUE(long_rope->ApplyPositionEmbeddingsDevice(qn, kn, Positions::FromOffset(0), nullptr).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 2u);
  EXPECT_EQ(runtime_.FunctionName(launches[0].function), "rope_qk_apply_unaligned");
  EXPECT_EQ(launches[0].args.head_splits, 40);
  EXPECT_EQ(launches[0].args.position_offset, 7);
  EXPECT_EQ(launches[0].grid.x, 64u * 40 / 256);  // 64 narrow lanes a head (one pair each)
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_qk_apply_aligned");
  EXPECT_EQ(launches[1].args.head_splits, 10);  // 4 heads a thread when there are many: 40 in 10
}

// ApplyOptions::kernel forces either kernel on aligned views; misaligned views always take
// the narrow one; a value outside the enum is refused before anything launches.
TEST_F(RopeApiTest, KernelChoiceForcesEitherKernelOnAlignedViews) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  DeviceTensor q = DeviceTensor::Contiguous(data_, 1, 32, 128, DType::kBF16);
  DeviceTensor k = DeviceTensor::Contiguous(data_, 1, 8, 128, DType::kBF16);
  DeviceTensor misaligned = DeviceTensor::Contiguous(static_cast<char*>(data_) + 2, 1, 8, 128,
                                                     DType::kBF16);
  ApplyOptions vector, narrow, bad;
  vector.kernel = KernelChoice::kVector;
  narrow.kernel = KernelChoice::kNarrow;
  bad.kernel = static_cast<KernelChoice>(7);
  const Positions at = Positions::FromOffset(0);
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, at, nullptr, nullptr, nullptr, vector).ok());
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, at, nullptr, nullptr, nullptr, narrow).ok());
  ASSERT_TRUE(rope->ApplyKDevice(misaligned, at, nullptr, nullptr, vector).ok());
  const absl::Status refused = rope->ApplyQDevice(q, at, nullptr, nullptr, bad);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.message(), "options.kernel")) << refused;
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 3u);
  EXPECT_EQ(runtime_.FunctionName(launches[0].function), "rope_qk_apply_aligned");
  EXPECT_EQ(launches[0].grid.x, 3u);  // 16 vector lanes a head x 40 heads: 640 threads
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_qk_apply_unaligned");
  EXPECT_EQ(runtime_.FunctionName(launches[2].function), "rope_apply_unaligned");
}

TEST_F(RopeApiTest, ProgrammaticDependentLaunchIsAskedOnlyWhenChosen) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  DeviceTensor q = DeviceTensor::Contiguous(data_, 1, 32, 128, DType::kBF16);
  DeviceTensor k = DeviceTensor::Contiguous(data_, 1, 8, 128, DType::kBF16);
  ApplyOptions pdl;
  pdl.programmatic_dependent_launch = true;
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr).ok());
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr, nullptr,
                                                  nullptr, pdl)
                  .ok());
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr, nullptr, pdl).ok());
  ASSERT_TRUE(rope->ApplyKDevice(k, Positions::FromOffset(0), nullptr, nullptr, pdl).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 4u);
  EXPECT_FALSE(launches[0].options.programmatic_dependent_launch);
  for (int i = 1; i < 4; ++i) EXPECT_TRUE(launches[i].options.programmatic_dependent_launch) << i;
}

TEST_F(RopeApiTest, PositionsAreReadEarlyOnlyUnderPdlAndWhenPromised) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  DeviceTensor q = DeviceTensor::Contiguous(data_, 1, 32, 128, DType::kBF16);
  DeviceTensor k = DeviceTensor::Contiguous(data_, 1, 8, 128, DType::kBF16);
  ApplyOptions promise_only;
  promise_only.positions_not_written_by_prior_kernel = true;
  ApplyOptions pdl_only;
  pdl_only.programmatic_dependent_launch = true;
  ApplyOptions both = promise_only;
  both.programmatic_dependent_launch = true;
  for (const ApplyOptions& options : {ApplyOptions{}, promise_only, pdl_only, both}) {
    ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr,
                                                    nullptr, nullptr, options)
                    .ok());
  }
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr, nullptr, both).ok());
  // Decode-sized launches read early on either kernel (the vector one through its own
  // entry point), 64 tokens x 40 heads on neither.
  ApplyOptions both_vector = both;
  both_vector.kernel = KernelChoice::kVector;
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr,
                                                  nullptr, nullptr, both_vector)
                  .ok());
  DeviceTensor q64 = DeviceTensor::Contiguous(data_, 64, 32, 128, DType::kBF16);
  DeviceTensor k64 = DeviceTensor::Contiguous(data_, 64, 8, 128, DType::kBF16);
  ApplyOptions both_narrow = both;
  both_narrow.kernel = KernelChoice::kNarrow;
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q64, k64, Positions::FromOffset(0), nullptr,
                                                  nullptr, nullptr, both_narrow)
                  .ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 7u);
  // No PDL (with or without the promise): the wait first. PDL alone: addresses first.
  EXPECT_EQ(launches[0].args.launch_order, ROPE_ORDER_WAIT_FIRST);
  EXPECT_EQ(launches[1].args.launch_order, ROPE_ORDER_WAIT_FIRST);
  EXPECT_EQ(launches[2].args.launch_order, ROPE_ORDER_ADDRESSES_FIRST);
  EXPECT_EQ(launches[3].args.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  EXPECT_EQ(launches[4].args.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  EXPECT_EQ(launches[5].args.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  EXPECT_EQ(launches[6].args.launch_order, ROPE_ORDER_WAIT_FIRST);
  const char* const functions[] = {"rope_qk_apply_unaligned", "rope_qk_apply_unaligned",
                                   "rope_qk_apply_unaligned", "rope_qk_apply_unaligned",
                                   "rope_apply_unaligned",    "rope_qk_apply_aligned_early",
                                   "rope_qk_apply_unaligned"};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(runtime_.FunctionName(launches[i].function), functions[i]) << i;
}

TEST_F(RopeApiTest, InterleavedDecodeUnderPdlTakesTheVectorKernelsEarlyEntry) {
  RopeConfig config = Bf16Config();
  config.style = RopeStyle::kInterleaved;
  std::unique_ptr<Rope> rope = Make(config);
  ASSERT_NE(rope, nullptr);
  DeviceTensor q = DeviceTensor::Contiguous(data_, 1, 32, 128, DType::kBF16);
  DeviceTensor k = DeviceTensor::Contiguous(data_, 1, 8, 128, DType::kBF16);
  ApplyOptions pdl;
  pdl.programmatic_dependent_launch = true;
  ApplyOptions early = pdl;
  early.positions_not_written_by_prior_kernel = true;
  for (const ApplyOptions& options : {pdl, early}) {
    ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr,
                                                    nullptr, nullptr, options)
                    .ok());
  }
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, k, Positions::FromOffset(0), nullptr,
                                                  nullptr, nullptr, ApplyOptions{})
                  .ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 3u);
  EXPECT_EQ(runtime_.FunctionName(launches[0].function), "rope_qk_apply_aligned_early");
  EXPECT_EQ(launches[0].args.launch_order, ROPE_ORDER_ADDRESSES_FIRST);
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_qk_apply_aligned_early");
  EXPECT_EQ(launches[1].args.launch_order, ROPE_ORDER_POSITIONS_FIRST);
  // Without PDL there is no wait to work ahead of: the default vector kernel.
  EXPECT_EQ(runtime_.FunctionName(launches[2].function), "rope_qk_apply_aligned");
  EXPECT_EQ(launches[2].args.launch_order, ROPE_ORDER_WAIT_FIRST);
  // The same launch shape every way: only the order of the work differs.
  for (int i = 1; i < 3; ++i) {
    EXPECT_EQ(launches[0].grid.x, launches[i].grid.x) << i;
    EXPECT_EQ(launches[0].args.head_splits, launches[i].args.head_splits) << i;
  }
}

TEST_F(RopeApiTest, MisalignedViewTakesTheUnalignedKernel) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  DeviceTensor x = DeviceTensor::Contiguous(static_cast<char*>(data_) + 2, 3, 2, 128, DType::kBF16);
  ASSERT_TRUE(rope->ApplyKDevice(x, Positions::FromOffset(0), nullptr).ok());
  DeviceTensor strided{data_, 3, 2, 128, 2 * 128 + 1, 128, DType::kBF16};
  ASSERT_TRUE(rope->ApplyQDevice(strided, Positions::FromOffset(0), nullptr).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 2u);
  EXPECT_EQ(runtime_.FunctionName(launches[0].function), "rope_apply_unaligned");
  EXPECT_EQ(runtime_.FunctionName(launches[1].function), "rope_apply_unaligned");
}

TEST_F(RopeApiTest, ZeroTokensLaunchNothing) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  DeviceTensor x = DeviceTensor::Contiguous(data_, 0, 4, 128, DType::kBF16);
  EXPECT_TRUE(rope->ApplyQDevice(x, Positions::FromOffset(0), nullptr).ok());
  EXPECT_TRUE(runtime_.launches().empty());
}

TEST_F(RopeApiTest, SecondCreateIsServedFromMemory) {
  ASSERT_NE(Make(Bf16Config()), nullptr);
  const ServiceStats first = service_->stats();
  ASSERT_NE(Make(Bf16Config()), nullptr);
  const ServiceStats second = service_->stats();
  EXPECT_EQ(second.compiles, first.compiles);
  EXPECT_EQ(second.loads, first.loads);
  EXPECT_EQ(second.memory_hits, first.memory_hits + 9);  // 3 kernels x 3 functions
}

// Every bad argument: InvalidArgument that names it, and nothing launched.
TEST_F(RopeApiTest, BadInputMatrix) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  const DeviceTensor good_q = DeviceTensor::Contiguous(data_, 4, 8, 128, DType::kBF16);
  const DeviceTensor good_k = DeviceTensor::Contiguous(data_, 4, 2, 128, DType::kBF16);
  struct BadCase {
    std::string expect_in_message;
    DeviceTensor q, k;
    Positions positions;
    const DeviceTensor* q_out;
  };
  DeviceTensor null_data = good_q;
  null_data.data = nullptr;
  DeviceTensor wrong_dim = good_q;
  wrong_dim.head_dim = 64;
  DeviceTensor wrong_dtype = good_q;
  wrong_dtype.dtype = DType::kF16;
  DeviceTensor negative_tokens = good_q;
  negative_tokens.tokens = -1;
  DeviceTensor no_heads = good_q;
  no_heads.heads = 0;
  DeviceTensor overlapping_heads = good_q;
  overlapping_heads.head_stride = 64;
  DeviceTensor overlapping_tokens = good_q;
  overlapping_tokens.token_stride = 128;
  DeviceTensor fewer_tokens = good_k;
  fewer_tokens.tokens = 3;
  DeviceTensor out_wrong_heads = DeviceTensor::Contiguous(data_, 4, 7, 128, DType::kBF16);
  DeviceTensor out_wrong_dtype = DeviceTensor::Contiguous(data_, 4, 8, 128, DType::kF32);
  std::vector<BadCase> cases = {
      {"q.data", null_data, good_k, Positions::FromOffset(0), nullptr},
      {"q.head_dim = 64", wrong_dim, good_k, Positions::FromOffset(0), nullptr},
      {"q.dtype = f16", wrong_dtype, good_k, Positions::FromOffset(0), nullptr},
      {"q.tokens = -1", negative_tokens, good_k, Positions::FromOffset(0), nullptr},
      {"q.heads = 0", no_heads, good_k, Positions::FromOffset(0), nullptr},
      {"q.head_stride = 64", overlapping_heads, good_k, Positions::FromOffset(0), nullptr},
      {"q.token_stride = 128", overlapping_tokens, good_k, Positions::FromOffset(0), nullptr},
      {"k.tokens = 3", good_q, fewer_tokens, Positions::FromOffset(0), nullptr},
      {"q_out is [4, 7, 128]", good_q, good_k, Positions::FromOffset(0), &out_wrong_heads},
      {"q_out.dtype = f32", good_q, good_k, Positions::FromOffset(0), &out_wrong_dtype},
      {"offset 4093", good_q, good_k, Positions::FromOffset(4093), nullptr},
      {"offset -1", good_q, good_k, Positions::FromOffset(-1), nullptr},
  };
  for (const BadCase& c : cases) {
    absl::Status status = rope->ApplyPositionEmbeddingsDevice(c.q, c.k, c.positions, nullptr, c.q_out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.expect_in_message << ": " << status;
    EXPECT_TRUE(absl::StrContains(status.message(), c.expect_in_message))
        << "message '" << status.message() << "' does not name '" << c.expect_in_message << "'";
  }
  // The single-tensor entry points validate the same way.
  EXPECT_EQ(rope->ApplyQDevice(null_data, Positions::FromOffset(0), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rope->ApplyKDevice(wrong_dim, Positions::FromOffset(0), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(runtime_.launches().empty());
}

// Extents the kernel cannot index exactly (issue 14, item 2): every one is refused before
// any arithmetic on it overflows (UBSan checks that under --config=asan), nothing launched.
TEST_F(RopeApiTest, ExtentsTheKernelCannotIndexAreRefused) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const DeviceTensor good = DeviceTensor::Contiguous(data_, 4, 8, 128, DType::kBF16);
  struct BadCase {
    std::string expect_in_message;
    DeviceTensor x;
    Positions positions;
  };
  DeviceTensor huge_head_stride = good;  // 7 * head_stride overflows
  huge_head_stride.head_stride = kMax - 5;
  DeviceTensor huge_token_stride = good;  // 3 * token_stride overflows
  huge_token_stride.token_stride = kMax / 2;
  DeviceTensor byte_overflow = good;  // element offsets fit in 64 bits, byte offsets do not
  byte_overflow.token_stride = kMax / 4;
  DeviceTensor sum_overflow = good;  // each product fits, their sum does not
  sum_overflow.tokens = 2;
  sum_overflow.heads = 2;
  sum_overflow.token_stride = (int64_t{1} << 62) + 128;
  sum_overflow.head_stride = int64_t{1} << 62;
  DeviceTensor wraps_address = good;  // byte offsets fit in 64 bits, the address wraps
  wraps_address.data = reinterpret_cast<void*>(~uintptr_t{0} - 1023);
  wraps_address.tokens = 2;
  wraps_address.token_stride = int64_t{1} << 40;
  DeviceTensor negative_token_stride = good;
  negative_token_stride.token_stride = -1024;
  DeviceTensor negative_head_stride = good;
  negative_head_stride.head_stride = -128;
  negative_head_stride.token_stride = 1024;
  DeviceTensor misaligned = good;
  misaligned.data = static_cast<char*>(data_) + 1;
  std::vector<BadCase> cases = {
      {"x.head_stride = 9223372036854775802", huge_head_stride, Positions::FromOffset(0)},
      {"x.token_stride = 4611686018427387903", huge_token_stride, Positions::FromOffset(0)},
      {"x.data: the last element", byte_overflow, Positions::FromOffset(0)},
      {"x.token_stride = 4611686018427388032 over 2, x.head_stride = 4611686018427387904 over 2",
       sum_overflow, Positions::FromOffset(0)},
      {"x.data", wraps_address, Positions::FromOffset(0)},
      {"x.token_stride = -1024", negative_token_stride, Positions::FromOffset(0)},
      {"x.head_stride = -128", negative_head_stride, Positions::FromOffset(0)},
      {"x.data", misaligned, Positions::FromOffset(0)},
      {"offset 9223372036854775805", good, Positions::FromOffset(kMax - 2)},
      {"positions.data", good, Positions::Int64(reinterpret_cast<const int64_t*>(storage_ + 4))},
  };
  for (const BadCase& c : cases) {
    absl::Status status = rope->ApplyQDevice(c.x, c.positions, nullptr);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.expect_in_message << ": " << status;
    EXPECT_TRUE(absl::StrContains(status.message(), c.expect_in_message))
        << "message '" << status.message() << "' does not name '" << c.expect_in_message << "'";
  }
  // An output view is checked the same way.
  absl::Status out_status = rope->ApplyQDevice(good, Positions::FromOffset(0), nullptr, &huge_head_stride);
  EXPECT_TRUE(absl::StrContains(out_status.message(), "x_out.head_stride")) << out_status;
  EXPECT_TRUE(runtime_.launches().empty());

  // The largest view that is still indexable passes: one token, a head stride whose last
  // byte offset is just below 2^63.
  DeviceTensor largest = good;
  largest.tokens = 1;
  largest.heads = 2;
  largest.head_stride = kMax / 2 - 128;
  EXPECT_TRUE(rope->ApplyQDevice(largest, Positions::FromOffset(0), nullptr).ok());
  EXPECT_EQ(runtime_.launches().size(), 1u);
}

TEST_F(RopeApiTest, BadConfigOrDeviceFailsCreate) {
  std::vector<std::pair<std::string, RopeConfig>> configs;
  RopeConfig odd = Bf16Config();
  odd.head_dim = 127;
  configs.emplace_back("head_dim", odd);
  RopeConfig huge = Bf16Config();
  huge.head_dim = 514;
  configs.emplace_back("head_dim", huge);
  RopeConfig wide = Bf16Config();
  wide.rotary_dim = 256;
  configs.emplace_back("rotary_dim", wide);
  for (const auto& [field, config] : configs) {
    auto rope = Rope::Create(config, runtime_, 0, *service_);
    EXPECT_EQ(rope.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_TRUE(absl::StrContains(rope.status().message(), field)) << rope.status();
  }
  auto no_device = Rope::Create(Bf16Config(), runtime_, 1, *service_);
  EXPECT_EQ(no_device.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(no_device.status().message(), "device = 1"));
}

TEST_F(RopeApiTest, ChatGlmNeedsPositionArrays) {
  std::unique_ptr<Rope> rope = Make(RopeConfig::ChatGlmV1(128, DType::kF16, 2048));
  ASSERT_NE(rope, nullptr);
  DeviceTensor x = DeviceTensor::Contiguous(data_, 2, 2, 128, DType::kF16);
  absl::Status status = rope->ApplyQDevice(x, Positions::FromOffset(0), nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(runtime_.launches().empty());
  ASSERT_TRUE(rope->ApplyQDevice(x, Positions::Int32(reinterpret_cast<const int32_t*>(data_)), nullptr).ok());
  EXPECT_EQ(runtime_.launches().size(), 1u);
}

RopeConfig MropeConfig(bool interleaved) {
  RopeConfig config = Bf16Config();
  config.position_columns = 3;
  config.mrope_section = interleaved ? std::vector<int>{24, 20, 20} : std::vector<int>{16, 24, 24};
  config.mrope_interleaved = interleaved;
  return config;
}

TEST_F(RopeApiTest, MropePositionsInBothLayoutsWithoutACopy) {
  std::unique_ptr<Rope> rope = Make(MropeConfig(/*interleaved=*/false));
  ASSERT_NE(rope, nullptr);
  const DeviceTensor q = DeviceTensor::Contiguous(data_, 5, 4, 128, DType::kBF16);
  const auto* pos = reinterpret_cast<const int64_t*>(data_);
  // Token-major [tokens, 3].
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::Int64(pos), nullptr).ok());
  // HF / vLLM position_ids[3, tokens], and the same rows in a wider buffer.
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::Int64(pos).ColumnMajor(5), nullptr).ok());
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::Int64(pos).ColumnMajor(4096), nullptr).ok());
  // Text-only decode: every column is offset + token.
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::FromOffset(7), nullptr).ok());
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 4u);
  EXPECT_EQ(launches[0].args.positions, pos);
  EXPECT_EQ(launches[0].args.position_token_stride, 3);
  EXPECT_EQ(launches[0].args.position_column_stride, 1);
  EXPECT_EQ(launches[1].args.position_token_stride, 1);
  EXPECT_EQ(launches[1].args.position_column_stride, 5);
  EXPECT_EQ(launches[2].args.position_column_stride, 4096);
  EXPECT_EQ(launches[3].args.positions, nullptr);
  EXPECT_EQ(launches[3].args.position_offset, 7);
  // One frequency table over the whole rotary part: the 1D launch shape.
  EXPECT_EQ(launches[0].grid.x, launches[3].grid.x);
}

TEST_F(RopeApiTest, MropeSpecBakesSectionsOneDimensionalSpecUnchanged) {
  auto mrope = RopeKernelSpec(MropeConfig(false), RopeKernel::kRope, "sm_90");
  auto interleaved = RopeKernelSpec(MropeConfig(true), RopeKernel::kRope, "sm_90");
  auto plain = RopeKernelSpec(Bf16Config(), RopeKernel::kRope, "sm_90");
  ASSERT_TRUE(mrope.ok() && interleaved.ok() && plain.ok());
  auto has = [](const KernelSpec& spec, const std::string& define) {
    return std::find(spec.defines.begin(), spec.defines.end(), define) != spec.defines.end();
  };
  EXPECT_TRUE(has(*mrope, "ROPE_MROPE=1"));
  EXPECT_TRUE(has(*mrope, "ROPE_MROPE_S0=16"));
  EXPECT_TRUE(has(*mrope, "ROPE_MROPE_S2=24"));
  EXPECT_TRUE(has(*mrope, "ROPE_SEGMENTS=1"));
  EXPECT_TRUE(has(*interleaved, "ROPE_MROPE=2"));
  EXPECT_TRUE(has(*interleaved, "ROPE_MROPE_S1=20"));
  for (const std::string& define : plain->defines) {
    EXPECT_FALSE(absl::StartsWith(define, "ROPE_MROPE")) << define;
  }
  EXPECT_EQ(plain->defines.size(), 6u);
}

TEST_F(RopeApiTest, BadPositionLayouts) {
  std::unique_ptr<Rope> mrope = Make(MropeConfig(true));
  std::unique_ptr<Rope> plain = Make(Bf16Config());
  ASSERT_NE(mrope, nullptr);
  ASSERT_NE(plain, nullptr);
  const DeviceTensor q = DeviceTensor::Contiguous(data_, 5, 4, 128, DType::kBF16);
  const auto* pos = reinterpret_cast<const int32_t*>(data_);
  struct BadCase {
    const Rope* rope;
    Positions positions;
    std::string expect;
  };
  Positions negative_token = Positions::Int32(pos);
  negative_token.token_stride = -3;
  Positions negative_column = Positions::Int32(pos);
  negative_column.column_stride = -1;
  Positions huge = Positions::Int32(pos).ColumnMajor(int64_t{1} << 56);
  Positions far = Positions::Int32(pos);
  far.token_stride = int64_t{1} << 55;
  Positions strided_1d = Positions::Int32(pos);
  strided_1d.token_stride = 2;
  const std::vector<BadCase> cases = {
      {mrope.get(), negative_token, "positions.token_stride = -3"},
      {mrope.get(), negative_column, "positions.column_stride = -1"},
      {mrope.get(), huge, "exceeds 2^56"},
      {mrope.get(), far, "exceeds 2^56"},
      {mrope.get(), Positions::FromOffset(4092), "offset 4092"},
      {plain.get(), strided_1d, "positions.token_stride = 2"},
  };
  for (const BadCase& c : cases) {
    absl::Status status = c.rope->ApplyQDevice(q, c.positions, nullptr);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << c.expect << ": " << status;
    EXPECT_TRUE(absl::StrContains(status.message(), c.expect)) << status.message();
  }
  EXPECT_TRUE(runtime_.launches().empty());
}

RopeConfig LongropeBf16Config() {
  RopeConfig config = Bf16Config();
  config.head_dim = 64;
  config.max_position = 16384;
  config.scaling.type = ScalingType::kLongrope;
  config.scaling.factor = 4;
  config.scaling.original_max_position_embeddings = 4096;
  for (int i = 0; i < 32; ++i) {
    config.scaling.short_factor.push_back(1.0 + i / 64.0);
    config.scaling.long_factor.push_back(2.0 + i / 8.0);
  }
  return config;
}

TEST_F(RopeApiTest, LongropeListChosenPerCallFromResidentTables) {
  std::unique_ptr<Rope> rope = Make(LongropeBf16Config());
  ASSERT_NE(rope, nullptr);
  const DeviceTensor q = DeviceTensor::Contiguous(data_, 3, 2, 64, DType::kBF16);
  ApplyOptions short_list, long_list;
  short_list.longrope = LongropeFactors::kShort;
  long_list.longrope = LongropeFactors::kLong;
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr, nullptr, short_list).ok());
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr, nullptr, long_list).ok());
  ASSERT_TRUE(rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr).ok());
  ASSERT_TRUE(rope->ApplyPositionEmbeddingsDevice(q, q, Positions::FromOffset(0), nullptr, nullptr,
                                                  nullptr, short_list)
                  .ok());
  const int loads_before = runtime_.loads();
  std::vector<FakeRuntime::LaunchRecord> launches = runtime_.launches();
  ASSERT_EQ(launches.size(), 4u);
  const double* short_table = launches[0].args.inv_freq;
  const double* long_table = launches[1].args.inv_freq;
  ASSERT_NE(short_table, long_table);
  EXPECT_EQ(launches[2].args.inv_freq, long_table);  // max_position 16384 > 4096: long
  EXPECT_EQ(launches[3].args.inv_freq, short_table);
  // The fake device memory is host memory: the tables hold the two lists' frequencies.
  const RopeFrequencies short_freqs = ComputeFrequencies(rope->config(), LongropeFactors::kShort).value();
  const RopeFrequencies long_freqs = ComputeFrequencies(rope->config(), LongropeFactors::kLong).value();
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(short_table[i], short_freqs.inv_freq[i]);
    EXPECT_EQ(long_table[i], long_freqs.inv_freq[i]);
  }
  EXPECT_EQ(launches[0].args.attention_factor, launches[1].args.attention_factor);
  EXPECT_EQ(runtime_.loads(), loads_before);
  EXPECT_EQ(LongropeFactorsForSequence(rope->config(), 4096), LongropeFactors::kShort);
  EXPECT_EQ(LongropeFactorsForSequence(rope->config(), 4097), LongropeFactors::kLong);
}

TEST_F(RopeApiTest, LongropeChoiceOnAnotherVariantIsRejected) {
  std::unique_ptr<Rope> rope = Make(Bf16Config());
  ASSERT_NE(rope, nullptr);
  const DeviceTensor q = DeviceTensor::Contiguous(data_, 3, 2, 128, DType::kBF16);
  ApplyOptions options;
  options.longrope = LongropeFactors::kLong;
  absl::Status status = rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr, nullptr, options);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "options.longrope")) << status;
  options.longrope = static_cast<LongropeFactors>(9);
  status = rope->ApplyQDevice(q, Positions::FromOffset(0), nullptr, nullptr, options);
  EXPECT_TRUE(absl::StrContains(status.message(), "options.longrope = 9")) << status;
  EXPECT_TRUE(runtime_.launches().empty());
}

}  // namespace
}  // namespace rope_jit
