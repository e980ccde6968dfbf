// Programmatic dependent launch on a real GPU: a chain of applies, each reading what the
// previous one wrote, launched with ApplyOptions::programmatic_dependent_launch, must give
// the float64 result of the whole chain. A kernel that began reading before its
// predecessor finished would read the poisoned (NaN) buffers. Skips only without a GPU;
// on a GPU that does not take PDL (before Hopper) the launches are plain ones and the
// test checks that path.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "rope/config.h"
#include "rope/kernel_specs.h"
#include "rope/reference.h"
#include "rope/rope.h"
#include "tests/gpu_test_util.h"

namespace rope_jit {
namespace {

enum class Chain {
  kLongSteps,              // every apply 4096 tokens: each waits first
  kDecodeSteps,            // the second and third decode-sized: addresses before the wait
  kDecodeStepsWithPromise  // and positions too (positions_not_written_by_prior_kernel)
};

// A chain of kSteps dependent applies under PDL. With decode steps, the second and third
// applies rotate 128 of the first apply's tokens (every 32nd: rows that the first, long
// kernel writes all through its run) into a small buffer: decode-sized launches (at most
// kMaxDecodeOrderTokenHeads tokens x heads) are the ones that work before their wait,
// the second on the vector kernel's early entry point and the third on the narrow kernel.
// With the promise they also read their positions (written before the chain began)
// before the wait.
void RunChain(DeviceRuntime* runtime, Chain chain) {
  const bool decode = chain != Chain::kLongSteps;
  RopeConfig config;
  config.head_dim = 128;
  config.dtype = DType::kF32;
  config.max_position = 1 << 16;
  auto rope = Rope::Create(config, *runtime, 0);
  ASSERT_TRUE(rope.ok()) << rope.status();

  // Large enough that each launch runs for many microseconds: a dependent kernel that did
  // not wait would overtake its predecessor.
  constexpr int kTokens = 4096, kHeads = 8, kSteps = 3;
  constexpr int kSampleStride = 32, kSampled = kTokens / kSampleStride;  // decode steps' tokens
  // Larger decode steps would silently take the default order and test nothing new.
  static_assert(int64_t{kSampled} * kHeads <= kMaxDecodeOrderTokenHeads,
                "the decode steps must be small enough to work before their wait");
  const size_t row = size_t{kHeads} * config.head_dim;
  const size_t count = kTokens * row;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x0(count);
  for (float& v : x0) v = uniform(rng);
  std::uniform_int_distribution<int64_t> position_dist(0, config.max_position - 1);
  std::vector<int64_t> positions(kTokens), sampled_positions(kSampled);
  for (int64_t& p : positions) p = position_dist(rng);
  for (int64_t& p : sampled_positions) p = position_dist(rng);

  auto stream = runtime->CreateStream(0);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<DevicePointer> buffers;
  for (int i = 0; i <= kSteps; ++i) {
    auto buffer = runtime->Allocate(0, count * sizeof(float));
    ASSERT_TRUE(buffer.ok()) << buffer.status();
    buffers.push_back(*buffer);
    // 0xFF bytes are NaN: whatever a launch did not write, or read too early, shows.
    if (i > 0) {
      ASSERT_TRUE(runtime->MemsetAsync(0, *buffer, 0xFF, count * 4, *stream).ok());
    }
  }
  auto pos_dev = runtime->Allocate(0, positions.size() * sizeof(int64_t));
  ASSERT_TRUE(pos_dev.ok());
  ASSERT_TRUE(runtime->CopyToDevice(0, *pos_dev, positions.data(), positions.size() * 8).ok());
  auto sampled_pos_dev = runtime->Allocate(0, sampled_positions.size() * sizeof(int64_t));
  ASSERT_TRUE(sampled_pos_dev.ok());
  ASSERT_TRUE(runtime->CopyToDevice(0, *sampled_pos_dev, sampled_positions.data(),
                                    sampled_positions.size() * 8)
                  .ok());
  ASSERT_TRUE(runtime->CopyToDevice(0, buffers[0], x0.data(), count * sizeof(float)).ok());
  ASSERT_TRUE(runtime->SynchronizeStream(0, *stream).ok());

  ApplyOptions options;
  options.programmatic_dependent_launch = true;
  const Positions pos = Positions::Int64(static_cast<const int64_t*>(*pos_dev));
  const Positions sampled_pos = Positions::Int64(static_cast<const int64_t*>(*sampled_pos_dev));
  for (int i = 0; i < kSteps; ++i) {
    DeviceTensor in = DeviceTensor::Contiguous(buffers[i], kTokens, kHeads, 128, DType::kF32);
    DeviceTensor out = DeviceTensor::Contiguous(buffers[i + 1], kTokens, kHeads, 128, DType::kF32);
    ApplyOptions step_options = options;
    if (decode && i > 0) {
      step_options.positions_not_written_by_prior_kernel = chain == Chain::kDecodeStepsWithPromise;
      step_options.kernel = i == 1 ? KernelChoice::kVector : KernelChoice::kNarrow;
      in.tokens = out.tokens = kSampled;
      if (i == 1) in.token_stride *= kSampleStride;  // every 32nd row of the first output
    }
    ASSERT_TRUE(
        (*rope)->ApplyQDevice(in, decode && i > 0 ? sampled_pos : pos, *stream, &out, step_options).ok());
  }
  ASSERT_TRUE(runtime->SynchronizeStream(0, *stream).ok());
  const size_t result_count = decode ? kSampled * row : count;
  std::vector<float> result(result_count);
  ASSERT_TRUE(
      runtime->CopyToHost(0, result.data(), buffers[kSteps], result_count * sizeof(float)).ok());

  std::vector<double> expected(x0.begin(), x0.end());
  for (int i = 0; i < kSteps; ++i) {
    if (decode && i > 0) {
      if (i == 1) {
        std::vector<double> sampled(kSampled * row);
        for (int t = 0; t < kSampled; ++t) {
          std::copy_n(expected.begin() + static_cast<size_t>(t) * kSampleStride * row, row,
                      sampled.begin() + t * row);
        }
        expected = std::move(sampled);
      }
      expected = ReferenceApply(config, (*rope)->frequencies(), expected, kSampled, kHeads,
                                sampled_positions);
    } else {
      expected = ReferenceApply(config, (*rope)->frequencies(), expected, kTokens, kHeads, positions);
    }
    ASSERT_EQ(expected.size(), i == 0 ? count : result_count);
  }
  // Each step rounds to f32 once: kSteps times the single-apply bound.
  double max_error = 0;
  for (size_t i = 0; i < result_count; ++i) {
    const double error = std::fabs(result[i] - expected[i]);
    ASSERT_FALSE(std::isnan(result[i])) << "element " << i << " was never written";
    max_error = std::max(max_error, error);
  }
  EXPECT_LE(max_error, kSteps * 2e-6);
  const char* const kinds[] = {
      "", ", the last two decode-sized: addresses before the wait (vector, then narrow kernel)",
      ", the last two decode-sized: addresses and positions before the wait (vector, then "
      "narrow kernel)"};
  printf("PDL chain of %d applies%s: max abs error %.3g\n", kSteps, kinds[static_cast<int>(chain)],
         max_error);

  for (DevicePointer buffer : buffers) EXPECT_TRUE(runtime->Free(0, buffer).ok());
  EXPECT_TRUE(runtime->Free(0, *pos_dev).ok());
  EXPECT_TRUE(runtime->Free(0, *sampled_pos_dev).ok());
  EXPECT_TRUE(runtime->DestroyStream(0, *stream).ok());
}

TEST(PdlGpuTest, ChainedDependentAppliesGiveTheChainedReference) {
  ROPE_JIT_GPU_OR_SKIP(runtime);
  RunChain(runtime, Chain::kLongSteps);
}

TEST(PdlGpuTest, ChainFormingAddressesBeforeTheWaitGivesTheChainedReference) {
  ROPE_JIT_GPU_OR_SKIP(runtime);
  RunChain(runtime, Chain::kDecodeSteps);
}

TEST(PdlGpuTest, ChainReadingPositionsBeforeTheWaitGivesTheChainedReference) {
  ROPE_JIT_GPU_OR_SKIP(runtime);
  RunChain(runtime, Chain::kDecodeStepsWithPromise);
}

}  // namespace
}  // namespace rope_jit
