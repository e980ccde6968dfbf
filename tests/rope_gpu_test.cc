// RoPE on the host backend and on a real GPU against the float64 reference: the same
// bodies for both (TEST_P over TestBackend); the GPU instance skips only when no GPU exists.
//
// Every case draws fresh random inputs in [-1, 1] (rounded to the storage dtype), poisons
// out-of-place outputs with 0xFF bytes (NaN in every dtype) before the launch, and checks
// (a) rotated elements against rope/reference.h, (b) elements that must not change
// (dims past rotary_dim, the V part of packed QKV, the input of an out-of-place call)
// bit for bit.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "jit/kernel_service.h"
#include "rope/config.h"
#include "rope/dtype.h"
#include "rope/reference.h"
#include "rope/rope.h"
#include "tests/device_buffers.h"
#include "tests/gpu_test_util.h"

namespace rope_jit {
namespace {

class RopeGpuTest : public ::testing::TestWithParam<TestBackend> {};

enum class Entry { kQ, kK, kQK };

struct Case {
  RopeConfig config;
  int tokens = 16;
  int q_heads = 4;
  int k_heads = 2;
  Entry entry = Entry::kQK;
  bool packed_qkv = false;    // Q and K as strided views into one [tokens, q+2k, D] buffer
  bool out_of_place = false;
  bool int64_positions = true;
  bool offset_positions = false;
  int64_t max_sampled_position = 1 << 20;  // positions drawn from [0, this]
  int misalign_elements = 0;  // shift the buffers to force the unaligned kernel
  // Aligned views: the vector kernel unless a test asks otherwise (kAuto takes the narrow
  // one for most of these small NeoX launches, which would leave the vector kernel unchecked).
  KernelChoice kernel = KernelChoice::kVector;
  // Launched with programmatic dependent launch (the kernel forms its first addresses
  // before it waits, in launches this small) and, with `promise`, the promise that the
  // positions were not written by the kernel ahead (it reads them before it waits too).
  bool pdl = false;
  bool promise = false;
  int device = 0;
};

// Largest error seen per dtype over the whole run, for the report.
std::map<std::string, double>& MaxErrorByDtype() {
  static auto* errors = new std::map<std::string, double>();
  return *errors;
}

void RunCase(DeviceRuntime& runtime, const Case& c) {
  const RopeConfig& config = c.config;
  const int D = config.head_dim;
  const int rotary_dim = config.EffectiveRotaryDim();
  const DType dtype = config.dtype;
  const int esize = DTypeSize(dtype);
  SCOPED_TRACE(absl::StrCat(DTypeName(dtype), " ", StyleName(config.style), " head_dim=", D,
                            " rotary_dim=", rotary_dim, " tokens=", c.tokens, " q=", c.q_heads,
                            " k=", c.k_heads, " packed=", c.packed_qkv, " out_of_place=",
                            c.out_of_place, " int64=", c.int64_positions, " misalign=",
                            c.misalign_elements, " kernel=", static_cast<int>(c.kernel),
                            " pdl=", c.pdl, " promise=", c.promise));

  auto rope = Rope::Create(config, runtime, c.device);
  ASSERT_TRUE(rope.ok()) << rope.status();

  const bool uses_q = c.entry != Entry::kK;
  const bool uses_k = c.entry != Entry::kQ;
  // Layout: packed [tokens, q + 2k, D] (V last, never touched), else separate Q and K.
  const int64_t row = c.packed_qkv ? static_cast<int64_t>(c.q_heads + 2 * c.k_heads) * D : 0;
  const size_t q_count = c.packed_qkv ? c.tokens * row : static_cast<size_t>(c.tokens) * c.q_heads * D;
  const size_t k_count = c.packed_qkv ? 0 : static_cast<size_t>(c.tokens) * c.k_heads * D;
  const size_t pad = c.misalign_elements;
  HostBuffer q_host(dtype, q_count + pad), k_host(dtype, k_count + pad);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (size_t i = 0; i < q_host.size(); ++i) q_host.Set(i, uniform(Rng()));
  for (size_t i = 0; i < k_host.size(); ++i) k_host.Set(i, uniform(Rng()));

  const int columns = config.position_columns;
  std::vector<int64_t> positions(static_cast<size_t>(c.tokens) * columns);
  std::uniform_int_distribution<int64_t> position_dist(0, c.max_sampled_position);
  const int64_t offset = c.offset_positions ? position_dist(Rng()) % (config.max_position - c.tokens) : 0;
  for (size_t i = 0; i < positions.size(); ++i) {
    positions[i] = c.offset_positions ? offset + static_cast<int64_t>(i) : position_dist(Rng());
  }
  if (!c.offset_positions && positions.size() >= 2) {
    positions[0] = c.max_sampled_position;  // always include the largest position
    positions[1] = 0;
  }

  // Every buffer is exactly as large as its data (ASan, with the host backend's kernels
  // instrumented, then catches any access past it); an empty K (packed QKV) gets one element.
  const size_t k_bytes = std::max<size_t>(k_host.bytes.size(), esize);
  const size_t position_bytes = positions.size() * (c.int64_positions ? 8 : 4);
  DeviceBuffer q_dev(runtime, q_host.bytes.size(), c.device), k_dev(runtime, k_bytes, c.device);
  DeviceBuffer q_out_dev(runtime, q_host.bytes.size(), c.device), k_out_dev(runtime, k_bytes, c.device);
  DeviceBuffer pos_dev(runtime, std::max<size_t>(position_bytes, 1), c.device);
  ASSERT_TRUE(runtime.CopyToDevice(c.device, q_dev.get(), q_host.bytes.data(), q_host.bytes.size()).ok());
  ASSERT_TRUE(runtime.CopyToDevice(c.device, k_dev.get(), k_host.bytes.data(), k_host.bytes.size()).ok());
  std::vector<int32_t> positions32(positions.begin(), positions.end());
  if (c.int64_positions) {
    ASSERT_TRUE(runtime.CopyToDevice(c.device, pos_dev.get(), positions.data(), positions.size() * 8).ok());
  } else {
    ASSERT_TRUE(runtime.CopyToDevice(c.device, pos_dev.get(), positions32.data(), positions32.size() * 4).ok());
  }
  // Poison: 0xFF bytes are NaN in f32, f16 and bf16.
  ASSERT_TRUE(runtime.MemsetAsync(c.device, q_out_dev.get(), 0xFF, q_host.bytes.size(), nullptr).ok());
  ASSERT_TRUE(runtime.MemsetAsync(c.device, k_out_dev.get(), 0xFF, k_host.bytes.size(), nullptr).ok());

  auto element = [&](void* base, size_t index) { return static_cast<uint8_t*>(base) + (pad + index) * esize; };
  DeviceTensor q, k, q_out, k_out;
  if (c.packed_qkv) {
    q = DeviceTensor{element(q_dev.get(), 0), c.tokens, c.q_heads, D, row, D, dtype};
    k = DeviceTensor{element(q_dev.get(), static_cast<size_t>(c.q_heads) * D), c.tokens, c.k_heads, D, row, D, dtype};
    q_out = DeviceTensor{element(q_out_dev.get(), 0), c.tokens, c.q_heads, D, row, D, dtype};
    k_out = DeviceTensor{element(q_out_dev.get(), static_cast<size_t>(c.q_heads) * D), c.tokens, c.k_heads, D, row, D, dtype};
  } else {
    q = DeviceTensor::Contiguous(element(q_dev.get(), 0), c.tokens, c.q_heads, D, dtype);
    k = DeviceTensor::Contiguous(element(k_dev.get(), 0), c.tokens, c.k_heads, D, dtype);
    q_out = DeviceTensor::Contiguous(element(q_out_dev.get(), 0), c.tokens, c.q_heads, D, dtype);
    k_out = DeviceTensor::Contiguous(element(k_out_dev.get(), 0), c.tokens, c.k_heads, D, dtype);
  }
  Positions pos = c.offset_positions ? Positions::FromOffset(offset)
                  : c.int64_positions ? Positions::Int64(static_cast<const int64_t*>(pos_dev.get()))
                                      : Positions::Int32(static_cast<const int32_t*>(pos_dev.get()));
  const DeviceTensor* q_out_arg = c.out_of_place ? &q_out : nullptr;
  const DeviceTensor* k_out_arg = c.out_of_place ? &k_out : nullptr;
  ApplyOptions options;
  options.kernel = c.kernel;
  options.programmatic_dependent_launch = c.pdl;
  options.positions_not_written_by_prior_kernel = c.promise;
  absl::Status applied;
  switch (c.entry) {
    case Entry::kQ: applied = (*rope)->ApplyQDevice(q, pos, nullptr, q_out_arg, options); break;
    case Entry::kK: applied = (*rope)->ApplyKDevice(k, pos, nullptr, k_out_arg, options); break;
    case Entry::kQK:
      applied =
          (*rope)->ApplyPositionEmbeddingsDevice(q, k, pos, nullptr, q_out_arg, k_out_arg, options);
      break;
  }
  ASSERT_TRUE(applied.ok()) << applied;
  ASSERT_TRUE(runtime.SynchronizeStream(c.device, nullptr).ok());

  // Read back every buffer the call could have touched.
  HostBuffer q_after(dtype, q_host.size()), k_after(dtype, k_host.size());
  HostBuffer q_out_after(dtype, q_host.size()), k_out_after(dtype, k_host.size());
  ASSERT_TRUE(runtime.CopyToHost(c.device, q_after.bytes.data(), q_dev.get(), q_after.bytes.size()).ok());
  ASSERT_TRUE(runtime.CopyToHost(c.device, k_after.bytes.data(), k_dev.get(), k_after.bytes.size()).ok());
  ASSERT_TRUE(runtime.CopyToHost(c.device, q_out_after.bytes.data(), q_out_dev.get(), q_out_after.bytes.size()).ok());
  ASSERT_TRUE(runtime.CopyToHost(c.device, k_out_after.bytes.data(), k_out_dev.get(), k_out_after.bytes.size()).ok());

  // Check one tensor view: `before` holds its inputs, `result` where its output landed.
  double max_error = 0;
  int64_t checked = 0;
  auto check_view = [&](const HostBuffer& before, const HostBuffer& result, const DeviceTensor& view,
                        size_t view_offset, int heads) {
    std::vector<double> x(static_cast<size_t>(c.tokens) * heads * D);
    for (int t = 0; t < c.tokens; ++t)
      for (int h = 0; h < heads; ++h)
        for (int d = 0; d < D; ++d)
          x[(static_cast<size_t>(t) * heads + h) * D + d] =
              before.Get(pad + view_offset + t * view.token_stride + h * view.head_stride + d);
    std::vector<double> expected =
        ReferenceApply(config, (*rope)->frequencies(), x, c.tokens, heads, positions);
    ASSERT_EQ(expected.size(), x.size());
    for (int t = 0; t < c.tokens; ++t)
      for (int h = 0; h < heads; ++h)
        for (int d = 0; d < D; ++d) {
          const size_t at = pad + view_offset + t * view.token_stride + h * view.head_stride + d;
          const double want = expected[(static_cast<size_t>(t) * heads + h) * D + d];
          if (d >= rotary_dim) {
            ASSERT_TRUE(result.SameBits(before, at)) << "pass-through dim " << d << " changed, token " << t;
            continue;
          }
          const double got = result.Get(at);
          const double error = std::fabs(got - want);
          ASSERT_LE(error, Tolerance(want, dtype))
              << "token " << t << " position " << positions[t * columns] << " head " << h << " dim " << d
              << ": got " << got << " want " << want;
          max_error = std::max(max_error, error);
          ++checked;
        }
  };
  const HostBuffer& q_result = c.out_of_place ? q_out_after : q_after;
  const HostBuffer& k_result = c.packed_qkv ? q_result : (c.out_of_place ? k_out_after : k_after);
  const HostBuffer& k_before = c.packed_qkv ? q_host : k_host;
  if (uses_q) check_view(q_host, q_result, q, 0, c.q_heads);
  if (uses_k) check_view(k_before, k_result, k, c.packed_qkv ? static_cast<size_t>(c.q_heads) * D : 0, c.k_heads);
  if (::testing::Test::HasFatalFailure()) return;
  EXPECT_GT(checked, 0);

  // Inputs of an out-of-place call are untouched; so is the V part of packed QKV, and
  // any tensor this entry point does not take.
  if (c.out_of_place) {
    for (size_t i = 0; i < q_host.size(); ++i) ASSERT_TRUE(q_after.SameBits(q_host, i)) << "q input " << i;
    for (size_t i = 0; i < k_host.size(); ++i) ASSERT_TRUE(k_after.SameBits(k_host, i)) << "k input " << i;
  }
  if (c.packed_qkv) {
    const size_t v_begin = static_cast<size_t>(c.q_heads + c.k_heads) * D;
    const HostBuffer& out = c.out_of_place ? q_out_after : q_after;
    for (int t = 0; t < c.tokens; ++t)
      for (size_t i = v_begin; i < static_cast<size_t>(row); ++i) {
        const size_t at = pad + t * row + i;
        if (c.out_of_place) {
          // Never written: still the poison.
          ASSERT_TRUE(std::isnan(out.Get(at))) << "V element " << i << " of token " << t << " written";
        } else {
          ASSERT_TRUE(out.SameBits(q_host, at)) << "V element " << i << " of token " << t << " changed";
        }
      }
  }
  if (!c.packed_qkv && !uses_k) {
    for (size_t i = 0; i < k_host.size(); ++i) ASSERT_TRUE(k_after.SameBits(k_host, i));
  }
  if (!c.packed_qkv && !uses_q) {
    for (size_t i = 0; i < q_host.size(); ++i) ASSERT_TRUE(q_after.SameBits(q_host, i));
  }
  static std::mutex errors_mu;  // the two-GPU test runs cases from two threads
  std::lock_guard<std::mutex> lock(errors_mu);
  double& worst = MaxErrorByDtype()[absl::StrCat(VendorName(runtime.vendor()), " ", DTypeName(dtype))];
  worst = std::max(worst, max_error);
}

RopeConfig Config(int head_dim, DType dtype, RopeStyle style, int rotary_dim = 0) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dim = rotary_dim;
  config.dtype = dtype;
  config.style = style;
  config.max_position = (1 << 20) + 1;
  return config;
}

constexpr DType kDtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
constexpr RopeStyle kStyles[] = {RopeStyle::kNeox, RopeStyle::kInterleaved};

// Whether the `shape`-th shape of a sweep runs with this dtype and style. GPUs run the
// whole dtype x style x shape product. The host compiles every distinct spec with the
// system C++ compiler (about a second each, several under ASan), so there the product
// is thinned to a rotation: each shape runs with one of the six dtype x style pairs, in
// turn, so that every shape, every dtype and every style still runs; head_dim 128 (the
// common case) runs with all six.
bool InSweep(const DeviceRuntime& runtime, DType dtype, RopeStyle style, int shape,
             int head_dim = 0) {
  const int pair = static_cast<int>(dtype) * 2 + static_cast<int>(style);
  return !IsHost(runtime) || head_dim == 128 || pair == shape % 6;
}

TEST_P(RopeGpuTest, EveryDtypeStyleAndHeadDim) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (DType dtype : kDtypes)
    for (RopeStyle style : kStyles)
      for (int shape = 0; shape < 9; ++shape) {
        const int head_dim = std::array{32, 64, 72, 80, 96, 128, 160, 256, 512}[shape];
        if (!InSweep(*runtime, dtype, style, shape, head_dim)) continue;
        // Both kernels on aligned views (misaligned ones: UnalignedViewsTakeTheUnalignedKernel).
        for (KernelChoice kernel : {KernelChoice::kVector, KernelChoice::kNarrow}) {
          Case c;
          c.config = Config(head_dim, dtype, style);
          c.tokens = 24;
          c.kernel = kernel;
          ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
        }
      }
}

TEST_P(RopeGpuTest, EveryEntryPointInPlaceAndOutOfPlace) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (DType dtype : kDtypes)
    for (RopeStyle style : kStyles)
      for (Entry entry : {Entry::kQ, Entry::kK, Entry::kQK})
        for (bool out_of_place : {false, true}) {
          Case c;
          c.config = Config(128, dtype, style);
          c.entry = entry;
          c.out_of_place = out_of_place;
          c.kernel = KernelChoice::kAuto;  // what an engine gets
          ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
        }
}

TEST_P(RopeGpuTest, PartialRotaryLeavesTheRestAlone) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (DType dtype : kDtypes)
    for (RopeStyle style : kStyles)
      for (int shape = 0; shape < 5; ++shape)
        for (bool out_of_place : {false, true}) {
          const auto [head_dim, rotary_dim] =
              std::array<std::pair<int, int>, 5>{{{128, 64}, {128, 32}, {80, 40}, {256, 128}, {96, 2}}}[shape];
          if (!InSweep(*runtime, dtype, style, shape)) continue;
          Case c;
          c.config = Config(head_dim, dtype, style, rotary_dim);
          c.out_of_place = out_of_place;
          ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
        }
}

TEST_P(RopeGpuTest, GqaShapesAsViewsIntoPackedQkv) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (auto [q_heads, k_heads] : {std::pair{32, 8}, {8, 1}, {17, 1}})
    for (DType dtype : kDtypes)
      for (bool out_of_place : {false, true}) {
        Case c;
        c.config = Config(128, dtype, RopeStyle::kNeox);
        c.q_heads = q_heads;
        c.k_heads = k_heads;
        c.packed_qkv = true;
        c.out_of_place = out_of_place;
        c.tokens = 33;
        ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
      }
}

TEST_P(RopeGpuTest, Int32Int64AndOffsetPositions) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (int kind = 0; kind < 3; ++kind) {
    Case c;
    c.config = Config(64, DType::kBF16, RopeStyle::kNeox);
    c.int64_positions = kind == 1;
    c.offset_positions = kind == 2;
    ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
  }
}

// The orders that work before the wait for the prior kernel (the first heads' addresses;
// with the promise, also the positions and cos/sin), in the narrow kernel and in the
// vector kernels' early entry points: the host backend runs them too, so CI checks them
// on every commit. 16 tokens x 6 heads: small enough that the host asks for them.
TEST_P(RopeGpuTest, WorkBeforeTheWaitGivesTheSameResult) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (DType dtype : kDtypes)
    for (RopeStyle style : kStyles)
      for (int variant = 0; variant < 12; ++variant) {
        Case c;
        c.config = Config(128, dtype, style);
        c.kernel = variant % 6 < 3 ? KernelChoice::kNarrow : KernelChoice::kVector;
        c.int64_positions = variant % 3 == 0;
        c.offset_positions = variant % 3 == 2;
        c.entry = variant % 3 == 1 ? Entry::kQ : Entry::kQK;
        c.out_of_place = variant % 3 == 1;
        c.pdl = true;
        c.promise = variant < 6;
        ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
      }
}

TEST_P(RopeGpuTest, UnalignedViewsTakeTheUnalignedKernel) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (DType dtype : kDtypes)
    for (RopeStyle style : kStyles) {
      Case c;
      c.config = Config(128, dtype, style);
      c.misalign_elements = style == RopeStyle::kNeox ? 1 : 2;
      c.out_of_place = true;
      ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
    }
}

TEST_P(RopeGpuTest, GlmAndChatGlm2dPositions) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (DType dtype : kDtypes) {
    Case glm;
    glm.config = RopeConfig::Glm(128, dtype, (1 << 20) + 1);
    glm.packed_qkv = true;
    ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, glm));
    Case chatglm;
    chatglm.config = RopeConfig::ChatGlmV1(128, dtype, (1 << 20) + 1);
    chatglm.out_of_place = true;
    ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, chatglm));
  }
}

// f32 at every scale of position up to 2^20 for both thetas: the float64 phase is what
// makes 2e-6 reachable.
TEST_P(RopeGpuTest, LongContextF32WithinTwoMicro) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  for (double theta : {1e4, 5e5})
    for (RopeStyle style : kStyles) {
      Case c;
      c.config = Config(128, DType::kF32, style);
      c.config.theta = theta;
      c.tokens = 2048;
      c.q_heads = 2;
      c.k_heads = 1;
      ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
    }
}

TEST_P(RopeGpuTest, ScalingVariantsMatchTheReference) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  std::vector<RopeConfig> configs;
  RopeConfig llama3 = Config(128, DType::kF32, RopeStyle::kNeox);
  llama3.theta = 500000;
  llama3.scaling.type = ScalingType::kLlama3;
  llama3.scaling.factor = 8;
  llama3.scaling.original_max_position_embeddings = 8192;
  configs.push_back(llama3);
  RopeConfig yarn = Config(64, DType::kF32, RopeStyle::kNeox);
  yarn.scaling.type = ScalingType::kYarn;
  yarn.scaling.factor = 4;
  yarn.scaling.original_max_position_embeddings = 4096;
  configs.push_back(yarn);
  RopeConfig linear = Config(96, DType::kBF16, RopeStyle::kInterleaved);
  linear.scaling.type = ScalingType::kLinear;
  linear.scaling.factor = 2;
  configs.push_back(linear);
  for (const RopeConfig& config : configs) {
    Case c;
    c.config = config;
    ASSERT_NO_FATAL_FAILURE(RunCase(*runtime, c));
  }
}

// Identical heads stay identical (no cross-head mixing); the same vector at different
// positions comes out different.
TEST_P(RopeGpuTest, HeadsAreIndependent) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  RopeConfig config = Config(128, DType::kF32, RopeStyle::kNeox);
  auto rope = Rope::Create(config, *runtime, 0);
  ASSERT_TRUE(rope.ok()) << rope.status();
  const int tokens = 4, heads = 8, D = 128;
  std::vector<float> host(tokens * heads * D);
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> vec(D);
  for (float& v : vec) v = uniform(Rng());
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < heads; ++h) std::memcpy(&host[(t * heads + h) * D], vec.data(), D * 4);
  DeviceBuffer buffer(*runtime, host.size() * 4);
  ASSERT_TRUE(runtime->CopyToDevice(0, buffer.get(), host.data(), host.size() * 4).ok());
  DeviceTensor x = DeviceTensor::Contiguous(buffer.get(), tokens, heads, D, DType::kF32);
  ASSERT_TRUE((*rope)->ApplyQDevice(x, Positions::FromOffset(1000), nullptr).ok());
  ASSERT_TRUE(runtime->SynchronizeStream(0, nullptr).ok());
  std::vector<float> out(host.size());
  ASSERT_TRUE(runtime->CopyToHost(0, out.data(), buffer.get(), out.size() * 4).ok());
  for (int t = 0; t < tokens; ++t) {
    for (int h = 1; h < heads; ++h)
      EXPECT_EQ(std::memcmp(&out[(t * heads + h) * D], &out[t * heads * D], D * 4), 0) << t << " " << h;
    if (t > 0) {
      EXPECT_NE(std::memcmp(&out[t * heads * D], &out[(t - 1) * heads * D], D * 4), 0);
    }
  }
}

TEST_P(RopeGpuTest, CheckedModeFlagsPositionsOutOfRange) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  RopeConfig config = Config(64, DType::kBF16, RopeStyle::kNeox);
  config.max_position = 100;
  auto rope = Rope::Create(config, *runtime, 0);
  ASSERT_TRUE(rope.ok()) << rope.status();
  ASSERT_TRUE((*rope)->EnableCheckedPositions().ok());
  DeviceBuffer data(*runtime, 2 * 64 * 2), pos(*runtime, 2 * 8);
  ASSERT_TRUE(runtime->MemsetAsync(0, data.get(), 0x3c, 2 * 64 * 2, nullptr).ok());
  DeviceTensor x = DeviceTensor::Contiguous(data.get(), 2, 1, 64, DType::kBF16);
  ApplyOptions pdl;  // addresses formed before the wait, positions read after it
  pdl.programmatic_dependent_launch = true;
  ApplyOptions early = pdl;  // positions read before the wait; the flag is raised after it
  early.positions_not_written_by_prior_kernel = true;
  for (const ApplyOptions& options : {ApplyOptions{}, pdl, early})
    for (int64_t bad : {int64_t{5}, int64_t{100}, int64_t{-1}}) {
      const int64_t positions[2] = {3, bad};
      ASSERT_TRUE(runtime->CopyToDevice(0, pos.get(), positions, sizeof(positions)).ok());
      ASSERT_TRUE((*rope)->ApplyQDevice(x, Positions::Int64(static_cast<int64_t*>(pos.get())),
                                        nullptr, nullptr, options)
                      .ok());
      auto flagged = (*rope)->TakePositionError(nullptr);
      ASSERT_TRUE(flagged.ok()) << flagged.status();
      EXPECT_EQ(*flagged, bad != 5)
          << "position " << bad
          << (options.positions_not_written_by_prior_kernel ? " (early)"
              : options.programmatic_dependent_launch       ? " (pdl)"
                                                            : "");
    }
}

// One Rope per device, both used at once from two threads.
TEST_P(RopeGpuTest, TwoGpusFromTwoThreads) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  absl::StatusOr<int> devices = runtime->DeviceCount();
  ASSERT_TRUE(devices.ok()) << devices.status();
  if (*devices < 2) GTEST_SKIP() << "needs 2 GPUs; this host has " << *devices;
  std::vector<std::thread> threads;
  for (int device = 0; device < 2; ++device) {
    threads.emplace_back([&runtime, device] {
      for (DType dtype : kDtypes) {
        Case c;
        c.config = Config(128, dtype, RopeStyle::kNeox);
        c.device = device;
        c.tokens = 512;
        c.q_heads = 32;
        c.k_heads = 8;
        c.packed_qkv = true;
        RunCase(*runtime, c);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// Runs last: reports the largest errors seen, and checks that every module this process
// loaded came from exactly one tier (a compile or a disk hit), none failed to load, and
// nothing failed to compile. Run twice over one ROPE_JIT_CACHE_DIR, the second process
// shows disk hits and no compiles (tools/gpu_check.sh does that).
TEST_P(RopeGpuTest, ReportMaxErrorsAndServiceStats) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  auto name = runtime->DeviceName(0);
  for (const auto& [backend_dtype, error] : MaxErrorByDtype()) {
    if (backend_dtype.rfind(absl::StrCat(VendorName(runtime->vendor()), " "), 0) != 0) continue;
    std::printf("max abs error %s: %.3g on %s\n", backend_dtype.c_str(), error,
                name.ok() ? name->c_str() : "?");
  }
  const ServiceStats stats = KernelService::Default().stats();
  std::printf("service: compiles=%llu (%.1f ms) disk_hits=%llu memory_hits=%llu loads=%llu (%.1f ms)\n",
              static_cast<unsigned long long>(stats.compiles), stats.compile_ms,
              static_cast<unsigned long long>(stats.disk_hits),
              static_cast<unsigned long long>(stats.memory_hits),
              static_cast<unsigned long long>(stats.loads), stats.load_ms);
  EXPECT_GT(stats.loads, 0u);
  EXPECT_EQ(stats.loads, stats.compiles + stats.disk_hits + stats.baked_hits);
  EXPECT_EQ(stats.load_failures, 0u);
  EXPECT_EQ(stats.compile_failures, 0u);
}

ROPE_JIT_INSTANTIATE_BACKENDS(RopeGpuTest);

}  // namespace
}  // namespace rope_jit
