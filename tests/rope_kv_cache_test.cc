// Rope::ApplyAndCacheKvDevice (and WriteKvCacheDevice) executed against the float64
// reference, on the host backend (always) and on a GPU (skips only when none exists),
// with the same test bodies.
//
// Every case draws fresh random inputs in [-1, 1] rounded to the dtype, random positions,
// and a random slot mapping with padding (-1) in a cache barely larger than the tokens
// need (so tokens share blocks), poisons q_out and both caches, and checks:
//   Q      within the accuracy bound of the float64 rotation (rope_gpu_test's);
//   K, V   each addressed cache element: kSame K within that bound, kSame V bit-exact;
//          FP8 the correctly rounded code of the float64 value / scale (rope/fp8.h), or,
//          only when that value lies within fp32 noise of a rounding boundary, the code
//          on the other side of it;
//   the rest: cache bytes no slot addresses still hold the poison; the k and v inputs
//          (and Q's input out of place, and everything else in packed QKV) are unchanged.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rope/config.h"
#include "rope/fp8.h"
#include "rope/kv_cache.h"
#include "rope/reference.h"
#include "rope/rope.h"
#include "tests/device_buffers.h"
#include "tests/gpu_test_util.h"

namespace rope_jit {
namespace {

class RopeKvCacheTest : public ::testing::TestWithParam<TestBackend> {};

constexpr uint8_t kPoison = 0xA7;  // a finite value in every format: a stray write shows

struct KvCase {
  int tokens = 20;
  int q_heads = 8;
  int kv_heads = 1;
  KvLayout layout = KvLayout::kNHD;
  KvDType kv_dtype = KvDType::kSame;
  int block_size = 16;
  bool packed_qkv = false;  // Q, K, V as views into one [tokens, q + 2 kv, D] buffer
  bool q_out_of_place = false;
  float k_scale = 1, v_scale = 1;
  // With more than one position column (MRoPE, ChatGLM-v1): the HF / vLLM [columns, tokens]
  // layout instead of token-major [tokens, columns].
  bool positions_column_major = false;
  // Aligned views: the vector kernel unless a case asks otherwise (kAuto takes the narrow
  // one for most of these small NeoX launches, which would leave the vector kernel unchecked).
  KernelChoice kernel = KernelChoice::kVector;
  // Launched with programmatic dependent launch (the kernel forms its first addresses
  // before it waits, in launches this small) and, with `promise`, the promise that
  // positions and slots were not written by the kernel ahead (it reads them first too).
  bool pdl = false;
  bool promise = false;
};

Fp8Format FormatOf(KvDType dtype) {
  return dtype == KvDType::kFp8E4M3 ? Fp8Format::kE4M3Fn : Fp8Format::kE5M2;
}

// Checks one FP8 byte against the float64 value it stores: the correctly rounded code of
// `exact`, or a code that some value within `noise` of it rounds to (the kernel's fp32
// result can cross a rounding boundary only when the float64 value is that close to
// one). Counts the cases decided by the noise.
struct Fp8Check {
  int64_t exact = 0, near_boundary = 0;
  ::testing::AssertionResult operator()(Fp8Format format, uint8_t got, double exact_value, double noise) {
    const uint8_t want = EncodeFp8(format, exact_value);
    if (got == want) {
      ++exact;
      return ::testing::AssertionSuccess();
    }
    const uint8_t low = EncodeFp8(format, exact_value - noise), high = EncodeFp8(format, exact_value + noise);
    if (low != high && (got == low || got == high)) {
      ++near_boundary;
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "FP8 byte 0x" << std::hex << int{got} << " (" << DecodeFp8(format, got) << "), want 0x"
           << int{want} << std::dec << " (" << DecodeFp8(format, want) << ") for " << exact_value
           << " +- " << noise;
  }
};

Fp8Check& Fp8Stats() {
  static Fp8Check* stats = new Fp8Check();
  return *stats;
}

void RunKvCase(DeviceRuntime& runtime, const Rope& rope, const KvCase& c) {
  const RopeConfig& config = rope.config();
  const int D = config.head_dim;
  const DType dtype = config.dtype;
  const int esize = DTypeSize(dtype);
  const bool fp8 = c.kv_dtype != KvDType::kSame;
  const int cache_esize = KvElementSize(c.kv_dtype, dtype);
  SCOPED_TRACE(absl::StrCat(DTypeName(dtype), " ", StyleName(config.style), " head_dim=", D,
                            " rotary_dim=", config.EffectiveRotaryDim(), " tokens=", c.tokens,
                            " q=", c.q_heads, " kv=", c.kv_heads, " ", KvLayoutName(c.layout), " ",
                            KvDTypeName(c.kv_dtype), " block_size=", c.block_size, " packed=",
                            c.packed_qkv, " q_out=", c.q_out_of_place, " position_columns=",
                            config.position_columns, c.positions_column_major ? " [columns, tokens]" : "",
                            " kernel=", static_cast<int>(c.kernel), " pdl=", c.pdl,
                            " promise=", c.promise));
  const int64_t num_blocks = (c.tokens + c.block_size - 1) / c.block_size + 2;
  const int64_t num_slots = num_blocks * c.block_size;

  // Inputs. Packed: [tokens, q + 2 kv, D]. Separate: Q, K dense; V with a gap after each
  // token (its own stride), which must stay untouched too.
  const int64_t row = static_cast<int64_t>(c.q_heads + 2 * c.kv_heads) * D;
  const int64_t v_stride = c.packed_qkv ? row : static_cast<int64_t>(c.kv_heads + 1) * D;
  const size_t q_count = c.packed_qkv ? c.tokens * row : static_cast<size_t>(c.tokens) * c.q_heads * D;
  const size_t k_count = c.packed_qkv ? 0 : static_cast<size_t>(c.tokens) * c.kv_heads * D;
  const size_t v_count = c.packed_qkv ? 0 : static_cast<size_t>(c.tokens) * v_stride;
  HostBuffer q_host(dtype, q_count), k_host(dtype, k_count), v_host(dtype, v_count);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (HostBuffer* buffer : {&q_host, &k_host, &v_host})
    for (size_t i = 0; i < buffer->size(); ++i) buffer->Set(i, uniform(Rng()));

  // Token-major [tokens, columns], as the reference takes them; every column random.
  const int columns = config.position_columns;
  std::vector<int64_t> positions(static_cast<size_t>(c.tokens) * columns);
  std::uniform_int_distribution<int64_t> position_dist(0, config.max_position - 1);
  for (int64_t& p : positions) p = position_dist(Rng());
  positions[0] = config.max_position - 1;
  std::vector<int64_t> positions_as_uploaded = positions;
  if (c.positions_column_major) {
    for (int t = 0; t < c.tokens; ++t)
      for (int col = 0; col < columns; ++col) {
        positions_as_uploaded[static_cast<size_t>(col) * c.tokens + t] = positions[t * columns + col];
      }
  }
  // Distinct slots, about a fifth of them padding: at least one when there are two tokens
  // or more, and never the first token's, so that something is always written.
  std::vector<int64_t> all_slots(num_slots);
  for (int64_t s = 0; s < num_slots; ++s) all_slots[s] = s;
  std::shuffle(all_slots.begin(), all_slots.end(), Rng());
  std::vector<int64_t> slots(all_slots.begin(), all_slots.begin() + c.tokens);
  std::bernoulli_distribution padding(0.2);
  for (int t = 1; t < c.tokens; ++t) {
    if (padding(Rng())) slots[t] = -1;
  }
  if (c.tokens > 1) slots[(c.tokens + 1) / 2] = -1;

  const int device = 0;
  const size_t cache_bytes = static_cast<size_t>(num_slots) * c.kv_heads * D * cache_esize;
  DeviceBuffer q_dev(runtime, q_host.bytes.size()), k_dev(runtime, k_host.bytes.size() + 16);
  DeviceBuffer v_dev(runtime, v_host.bytes.size() + 16);
  DeviceBuffer q_out_dev(runtime, static_cast<size_t>(c.tokens) * c.q_heads * D * esize);
  DeviceBuffer k_cache_dev(runtime, cache_bytes), v_cache_dev(runtime, cache_bytes);
  DeviceBuffer pos_dev(runtime, positions.size() * 8), slot_dev(runtime, slots.size() * 8);
  DeviceBuffer scale_dev(runtime, 2 * sizeof(float));
  const float scales[2] = {c.k_scale, c.v_scale};
  // Packed QKV leaves the separate K and V buffers empty: nothing to copy.
  auto upload = [&](const DeviceBuffer& to, const HostBuffer& from) {
    return from.bytes.empty() || runtime.CopyToDevice(device, to.get(), from.bytes.data(), from.bytes.size()).ok();
  };
  auto download = [&](HostBuffer& to, const DeviceBuffer& from) {
    return to.bytes.empty() || runtime.CopyToHost(device, to.bytes.data(), from.get(), to.bytes.size()).ok();
  };
  ASSERT_TRUE(upload(q_dev, q_host) && upload(k_dev, k_host) && upload(v_dev, v_host));
  ASSERT_TRUE(runtime.CopyToDevice(device, pos_dev.get(), positions_as_uploaded.data(),
                                   positions_as_uploaded.size() * 8).ok());
  ASSERT_TRUE(runtime.CopyToDevice(device, slot_dev.get(), slots.data(), slots.size() * 8).ok());
  ASSERT_TRUE(runtime.CopyToDevice(device, scale_dev.get(), scales, sizeof(scales)).ok());
  const size_t q_out_bytes = static_cast<size_t>(c.tokens) * c.q_heads * D * esize;
  ASSERT_TRUE(runtime.MemsetAsync(device, q_out_dev.get(), 0xFF, q_out_bytes, nullptr).ok());
  ASSERT_TRUE(runtime.MemsetAsync(device, k_cache_dev.get(), kPoison, cache_bytes, nullptr).ok());
  ASSERT_TRUE(runtime.MemsetAsync(device, v_cache_dev.get(), kPoison, cache_bytes, nullptr).ok());

  auto at = [&](const DeviceBuffer& buffer, size_t element) {
    return static_cast<uint8_t*>(buffer.get()) + element * esize;
  };
  const size_t k_offset = c.packed_qkv ? static_cast<size_t>(c.q_heads) * D : 0;
  const size_t v_offset = c.packed_qkv ? static_cast<size_t>(c.q_heads + c.kv_heads) * D : 0;
  const int64_t q_stride = c.packed_qkv ? row : static_cast<int64_t>(c.q_heads) * D;
  const int64_t k_stride = c.packed_qkv ? row : static_cast<int64_t>(c.kv_heads) * D;
  const DeviceTensor q{at(q_dev, 0), c.tokens, c.q_heads, D, q_stride, D, dtype};
  const DeviceTensor k{c.packed_qkv ? at(q_dev, k_offset) : at(k_dev, 0), c.tokens, c.kv_heads, D,
                       k_stride, D, dtype};
  const DeviceTensor v{c.packed_qkv ? at(q_dev, v_offset) : at(v_dev, 0), c.tokens, c.kv_heads, D,
                       v_stride, D, dtype};
  const DeviceTensor q_out = DeviceTensor::Contiguous(q_out_dev.get(), c.tokens, c.q_heads, D, dtype);
  KvCacheView cache;
  cache.k = k_cache_dev.get();
  cache.v = v_cache_dev.get();
  cache.num_blocks = num_blocks;
  cache.block_size = c.block_size;
  cache.kv_heads = c.kv_heads;
  cache.head_dim = D;
  cache.layout = c.layout;
  cache.dtype = c.kv_dtype;
  if (fp8) {
    cache.k_scale = static_cast<const float*>(scale_dev.get());
    cache.v_scale = static_cast<const float*>(scale_dev.get()) + 1;
  }
  Positions device_positions = Positions::Int64(static_cast<const int64_t*>(pos_dev.get()));
  if (c.positions_column_major) device_positions = device_positions.ColumnMajor(c.tokens);
  ApplyOptions options;
  options.kernel = c.kernel;
  options.programmatic_dependent_launch = c.pdl;
  options.positions_not_written_by_prior_kernel = c.promise;
  absl::Status applied = rope.ApplyAndCacheKvDevice(
      q, k, v, device_positions, static_cast<const int64_t*>(slot_dev.get()), cache, nullptr,
      c.q_out_of_place ? &q_out : nullptr, options);
  ASSERT_TRUE(applied.ok()) << applied;
  ASSERT_TRUE(runtime.SynchronizeStream(device, nullptr).ok());

  HostBuffer q_after(dtype, q_host.size()), k_after(dtype, k_host.size()), v_after(dtype, v_host.size());
  HostBuffer q_out_after(dtype, static_cast<size_t>(c.tokens) * c.q_heads * D);
  std::vector<uint8_t> k_cache(cache_bytes), v_cache(cache_bytes);
  ASSERT_TRUE(download(q_after, q_dev) && download(k_after, k_dev) && download(v_after, v_dev));
  ASSERT_TRUE(runtime.CopyToHost(device, q_out_after.bytes.data(), q_out_dev.get(), q_out_bytes).ok());
  ASSERT_TRUE(runtime.CopyToHost(device, k_cache.data(), k_cache_dev.get(), cache_bytes).ok());
  ASSERT_TRUE(runtime.CopyToHost(device, v_cache.data(), v_cache_dev.get(), cache_bytes).ok());

  // The float64 expectation from the inputs as stored.
  const HostBuffer& k_source = c.packed_qkv ? q_host : k_host;
  const HostBuffer& v_source = c.packed_qkv ? q_host : v_host;
  auto gather = [&](const HostBuffer& from, size_t offset, int64_t stride, int heads) {
    std::vector<double> x(static_cast<size_t>(c.tokens) * heads * D);
    for (int t = 0; t < c.tokens; ++t)
      for (int h = 0; h < heads; ++h)
        for (int d = 0; d < D; ++d) x[(static_cast<size_t>(t) * heads + h) * D + d] = from.Get(offset + t * stride + h * D + d);
    return x;
  };
  const std::vector<double> q_in = gather(q_host, 0, q_stride, c.q_heads);
  const std::vector<double> k_in = gather(k_source, k_offset, k_stride, c.kv_heads);
  const std::vector<double> v_in = gather(v_source, v_offset, v_stride, c.kv_heads);
  const ReferenceKvCache expected =
      ReferenceApplyAndCacheKv(config, rope.frequencies(), q_in, k_in, v_in, c.tokens, c.q_heads,
                               c.kv_heads, positions, slots, num_blocks, c.block_size, c.layout);
  ASSERT_EQ(expected.k_cache.size(), cache_bytes / cache_esize);

  // Q.
  const double attention = rope.frequencies().attention_factor;
  for (int t = 0; t < c.tokens; ++t)
    for (int h = 0; h < c.q_heads; ++h)
      for (int d = 0; d < D; ++d) {
        const size_t index = (static_cast<size_t>(t) * c.q_heads + h) * D + d;
        const double got = c.q_out_of_place ? q_out_after.Get(index) : q_after.Get(t * q_stride + h * D + d);
        const double want = expected.q[index];
        ASSERT_LE(std::fabs(got - want), Tolerance(want, dtype) * std::max(1.0, attention))
            << "q token " << t << " head " << h << " dim " << d << ": got " << got << " want " << want;
      }

  // The caches, element by element.
  Fp8Check& fp8_check = Fp8Stats();
  int64_t written = 0;
  for (size_t e = 0; e < expected.k_cache.size(); ++e) {
    const uint8_t* k_bytes = &k_cache[e * cache_esize];
    const uint8_t* v_bytes = &v_cache[e * cache_esize];
    if (!expected.written[e]) {
      for (int b = 0; b < cache_esize; ++b) {
        ASSERT_EQ(k_bytes[b], kPoison) << "K cache element " << e << " written, no slot addresses it";
        ASSERT_EQ(v_bytes[b], kPoison) << "V cache element " << e << " written, no slot addresses it";
      }
      continue;
    }
    ++written;
    const double k_want = expected.k_cache[e], v_want = expected.v_cache[e];
    if (!fp8) {
      HostBuffer k_got(dtype, 1), v_got(dtype, 1), v_in_bits(dtype, 1);
      std::memcpy(k_got.bytes.data(), k_bytes, esize);
      std::memcpy(v_got.bytes.data(), v_bytes, esize);
      v_in_bits.Set(0, v_want);  // exact: v_want is a value of the dtype
      ASSERT_LE(std::fabs(k_got.Get(0) - k_want), Tolerance(k_want, dtype) * std::max(1.0, attention))
          << "K cache element " << e << ": got " << k_got.Get(0) << " want " << k_want;
      ASSERT_TRUE(v_got.SameBits(v_in_bits, 0)) << "V cache element " << e << " is not V's bits";
      continue;
    }
    // fp32 noise: the rotation's (the f32 bound) and two roundings of x * (1 / scale).
    const Fp8Format format = FormatOf(c.kv_dtype);
    const double k_exact = k_want / c.k_scale, v_exact = v_want / c.v_scale;
    const double k_noise = 2e-6 * std::max(1.0, attention) / c.k_scale + std::fabs(k_exact) * 0x1p-22;
    ASSERT_TRUE(fp8_check(format, k_bytes[0], k_exact, k_noise)) << "K cache element " << e;
    ASSERT_TRUE(fp8_check(format, v_bytes[0], v_exact, std::fabs(v_exact) * 0x1p-22)) << "V cache element " << e;
  }
  EXPECT_GT(written, 0);

  // Inputs untouched: k and v always, q out of place; in packed QKV everything but Q in place.
  for (size_t i = 0; i < k_host.size(); ++i) ASSERT_TRUE(k_after.SameBits(k_host, i)) << "k input " << i;
  for (size_t i = 0; i < v_host.size(); ++i) ASSERT_TRUE(v_after.SameBits(v_host, i)) << "v input " << i;
  for (int t = 0; t < c.tokens; ++t)
    for (int64_t i = 0; i < q_stride; ++i) {
      const size_t index = t * q_stride + i;
      const bool is_q = i < static_cast<int64_t>(c.q_heads) * D;
      if (c.q_out_of_place || !is_q) {
        ASSERT_TRUE(q_after.SameBits(q_host, index)) << "token " << t << " element " << i << " changed";
      }
    }
}

RopeConfig Config(int head_dim, DType dtype, RopeStyle style, int rotary_dim = 0) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dim = rotary_dim;
  config.dtype = dtype;
  config.style = style;
  config.max_position = 1 << 17;
  return config;
}

std::unique_ptr<Rope> MakeRope(DeviceRuntime& runtime, const RopeConfig& config) {
  auto rope = Rope::Create(config, runtime, 0);
  EXPECT_TRUE(rope.ok()) << rope.status();
  return rope.ok() ? std::move(*rope) : nullptr;
}

// Scales that put the values across each format's range: saturating, plain, and mostly
// small (subnormal codes). Inputs and results are within [-1.5, 1.5].
float ScaleFor(KvDType dtype, int which) {
  static constexpr float kE4M3[] = {1.0f / 600, 0.25f, 3.0f};
  static constexpr float kE5M2[] = {1.0f / 80000, 0.5f, 2000.0f};
  return dtype == KvDType::kFp8E4M3 ? kE4M3[which % 3] : dtype == KvDType::kFp8E5M2 ? kE5M2[which % 3] : 1.0f;
}

// dtype x style x head_dim {64, 128, 256} x layout x {kSame, E4M3, E5M2}, one Rope per
// spec (each is compiled once). The other dimensions rotate with the case number so that
// each appears with every dtype: block sizes 1, 16, 32; GQA 32/8 and 8/1; packed QKV or
// separate tensors; Q in place or out of place.
TEST_P(RopeKvCacheTest, EveryDtypeStyleHeadDimLayoutAndCacheFormat) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  int case_number = 0;
  std::set<std::pair<bool, int>> kernel_orders;  // (vector kernel, launch order) that ran
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16})
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved})
      for (int head_dim : {64, 128, 256}) {
        std::unique_ptr<Rope> rope = MakeRope(*runtime, Config(head_dim, dtype, style));
        ASSERT_NE(rope, nullptr);
        for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND})
          for (KvDType kv_dtype : {KvDType::kSame, KvDType::kFp8E4M3, KvDType::kFp8E5M2}) {
            const int n = case_number++;
            KvCase c;
            c.layout = layout;
            c.kv_dtype = kv_dtype;
            c.block_size = std::array{1, 16, 32}[n % 3];
            const bool big_gqa = (n / 3) % 2 == 0;
            c.q_heads = big_gqa ? 32 : 8;
            c.kv_heads = big_gqa ? 8 : 1;
            c.tokens = big_gqa ? 6 : 20;
            c.packed_qkv = n % 2 == 0;
            c.q_out_of_place = (n / 2) % 2 == 0;
            c.k_scale = ScaleFor(kv_dtype, n);
            c.v_scale = ScaleFor(kv_dtype, n + 1);
            // Alternates with the head_dim: each dtype and style runs both kernels.
            c.kernel = (n / 6) % 2 == 0 ? KernelChoice::kVector : KernelChoice::kNarrow;
            // A third of the cases each: the default order, addresses before the wait
            // (PDL), and positions and slots before it too (the promise). n / 2 (not a
            // multiple of the kernel's period of 6) gives every order on both kernels in
            // each dtype and style; the host backend runs every order.
            const int order = (n / 2) % 3;
            c.pdl = order != 0;
            c.promise = order == 2;
            kernel_orders.insert({c.kernel == KernelChoice::kVector, order});
            ASSERT_NO_FATAL_FAILURE(RunKvCase(*runtime, *rope, c));
          }
      }
  std::printf("FP8 codes checked: %lld correctly rounded, %lld within fp32 noise of a rounding "
              "boundary\n",
              static_cast<long long>(Fp8Stats().exact), static_cast<long long>(Fp8Stats().near_boundary));
  EXPECT_GT(Fp8Stats().exact, 0);
  EXPECT_EQ(kernel_orders.size(), 6u) << "every launch order on both kernels";
}

// K's and V's dims past rotary_dim go to the cache too; ChatGLM's 2D positions.
TEST_P(RopeKvCacheTest, PartialRotaryAndTwoPositionColumns) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  RopeConfig partial = Config(128, DType::kBF16, RopeStyle::kNeox, 64);
  std::unique_ptr<Rope> rope = MakeRope(*runtime, partial);
  ASSERT_NE(rope, nullptr);
  for (KvDType kv_dtype : {KvDType::kSame, KvDType::kFp8E4M3}) {
    KvCase c;
    c.kv_dtype = kv_dtype;
    c.k_scale = c.v_scale = ScaleFor(kv_dtype, 1);
    c.q_out_of_place = true;
    c.layout = KvLayout::kHND;
    ASSERT_NO_FATAL_FAILURE(RunKvCase(*runtime, *rope, c));
  }
}

// MRoPE through the fused call (issue 13): Qwen2-VL's contiguous sections and Qwen3-VL's
// interleaved ones, partial rotary, both position layouts, into a bf16 and an FP8 cache,
// against the float64 reference written from HF's formulas (rope/reference.h).
TEST_P(RopeKvCacheTest, MropeSectionsBothLayouts) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  struct Variant {
    int head_dim, rotary_dim;
    std::vector<int> section;
    bool interleaved;
    KvDType kv_dtype;
  };
  const Variant variants[] = {{128, 0, {16, 24, 24}, false, KvDType::kSame},
                              {128, 96, {24, 12, 12}, true, KvDType::kFp8E4M3}};
  for (const Variant& variant : variants) {
    RopeConfig config = Config(variant.head_dim, DType::kBF16, RopeStyle::kNeox, variant.rotary_dim);
    config.max_position = 1 << 20;
    config.position_columns = 3;
    config.mrope_section = variant.section;
    config.mrope_interleaved = variant.interleaved;
    std::unique_ptr<Rope> rope = MakeRope(*runtime, config);
    ASSERT_NE(rope, nullptr);
    // Each cache format with both position layouts, and each layout packed and not.
    for (bool column_major : {false, true}) {
      KvCase c;
      c.positions_column_major = column_major;
      c.kv_dtype = variant.kv_dtype;
      c.k_scale = c.v_scale = ScaleFor(c.kv_dtype, 1);
      c.q_heads = 4;
      c.kv_heads = 2;
      c.packed_qkv = column_major == variant.interleaved;
      ASSERT_NO_FATAL_FAILURE(RunKvCase(*runtime, *rope, c));
    }
  }
}

// The kernel's own FP8 conversion, exhaustively: the cache write alone, f32, scale 1, of
// every code's value, every tie between neighbouring codes and the floats on either side,
// saturation, tiny values, signed zeros and NaN; each byte must be exactly rope/fp8.h's.
TEST_P(RopeKvCacheTest, Fp8ConversionMatchesTheHostEncoderEverywhere) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  const int D = 64;
  std::unique_ptr<Rope> rope = MakeRope(*runtime, Config(D, DType::kF32, RopeStyle::kNeox));
  ASSERT_NE(rope, nullptr);
  for (Fp8Format format : {Fp8Format::kE4M3Fn, Fp8Format::kE5M2}) {
    std::vector<float> values = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                                 std::numeric_limits<float>::quiet_NaN(),
                                 -std::numeric_limits<float>::quiet_NaN(),
                                 -std::numeric_limits<float>::infinity(), 1e30f, 1e-30f,
                                 std::numeric_limits<float>::denorm_min()};
    const Fp8Traits traits = TraitsOf(format);
    for (int code = 0; code <= traits.max_code; ++code) {
      const double value = DecodeFp8(format, static_cast<uint8_t>(code));
      const double next = code < traits.max_code ? DecodeFp8(format, static_cast<uint8_t>(code + 1))
                                                 : traits.max_value * 1.125;
      const float mid = static_cast<float>((value + next) / 2);  // exact: 4 bits more than FP8
      values.insert(values.end(), {static_cast<float>(value), mid, std::nextafter(mid, 0.0f),
                                   std::nextafter(mid, 1e38f)});
    }
    const size_t positive = values.size();
    for (size_t i = 0; i < positive; ++i) values.push_back(-values[i]);
    const int tokens = static_cast<int>((values.size() + D - 1) / D);
    values.resize(static_cast<size_t>(tokens) * D, 0.5f);

    const size_t bytes = values.size() * sizeof(float);
    DeviceBuffer kv(*runtime, bytes), k_cache(*runtime, values.size()), v_cache(*runtime, values.size());
    DeviceBuffer slots_dev(*runtime, tokens * 8), scale(*runtime, sizeof(float));
    std::vector<int64_t> slots(tokens);
    for (int t = 0; t < tokens; ++t) slots[t] = tokens - 1 - t;  // reversed: no accidental identity
    const float one = 1.0f;
    ASSERT_TRUE(runtime->CopyToDevice(0, kv.get(), values.data(), bytes).ok());
    ASSERT_TRUE(runtime->CopyToDevice(0, slots_dev.get(), slots.data(), tokens * 8).ok());
    ASSERT_TRUE(runtime->CopyToDevice(0, scale.get(), &one, sizeof(one)).ok());
    const DeviceTensor tensor = DeviceTensor::Contiguous(kv.get(), tokens, 1, D, DType::kF32);
    KvCacheView cache;
    cache.k = k_cache.get();
    cache.v = v_cache.get();
    cache.num_blocks = tokens;
    cache.block_size = 1;
    cache.kv_heads = 1;
    cache.head_dim = D;
    cache.dtype = format == Fp8Format::kE4M3Fn ? KvDType::kFp8E4M3 : KvDType::kFp8E5M2;
    cache.k_scale = cache.v_scale = static_cast<const float*>(scale.get());
    // Both kernels: they convert in pairs (vector) and one value at a time (narrow).
    for (KernelChoice kernel : {KernelChoice::kVector, KernelChoice::kNarrow}) {
      SCOPED_TRACE(absl::StrCat(format == Fp8Format::kE4M3Fn ? "e4m3" : "e5m2", " kernel=",
                                static_cast<int>(kernel)));
      ApplyOptions options;
      options.kernel = kernel;
      ASSERT_TRUE(runtime->MemsetAsync(0, k_cache.get(), kPoison, values.size(), nullptr).ok());
      ASSERT_TRUE(runtime->MemsetAsync(0, v_cache.get(), kPoison, values.size(), nullptr).ok());
      ASSERT_TRUE(rope->WriteKvCacheDevice(tensor, tensor,
                                           static_cast<const int64_t*>(slots_dev.get()), cache,
                                           nullptr, options)
                      .ok());
      ASSERT_TRUE(runtime->SynchronizeStream(0, nullptr).ok());
      std::vector<uint8_t> k_bytes(values.size()), v_bytes(values.size());
      ASSERT_TRUE(runtime->CopyToHost(0, k_bytes.data(), k_cache.get(), values.size()).ok());
      ASSERT_TRUE(runtime->CopyToHost(0, v_bytes.data(), v_cache.get(), values.size()).ok());
      for (int t = 0; t < tokens; ++t)
        for (int d = 0; d < D; ++d) {
          const float x = values[static_cast<size_t>(t) * D + d];
          const size_t stored = static_cast<size_t>(slots[t]) * D + d;
          const uint8_t want = EncodeFp8(format, x);
          for (uint8_t got : {k_bytes[stored], v_bytes[stored]}) {
            // NaN stays NaN; its code may differ (NVIDIA's multiply by the scale returns
            // the canonical NaN, sign dropped, and its converter has its own NaN code).
            if (std::isnan(x)) {
              ASSERT_TRUE(Fp8IsNan(format, got)) << "NaN stored as 0x" << std::hex << int{got};
            } else {
              ASSERT_EQ(got, want) << "value " << x << " (" << std::hexfloat << x << ")";
            }
          }
        }
    }
  }
}

// A slot at or past the cache's end is never written and raises the checked-mode flag;
// padding (-1) does not raise it.
TEST_P(RopeKvCacheTest, SlotsPastTheEndAreSkippedAndFlagged) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  const int D = 64, tokens = 4;
  std::unique_ptr<Rope> rope = MakeRope(*runtime, Config(D, DType::kBF16, RopeStyle::kNeox));
  ASSERT_NE(rope, nullptr);
  ASSERT_TRUE(rope->EnableCheckedPositions().ok());
  const size_t cache_bytes = 2 * 4 * D * 2;  // 2 blocks of 4 slots, 1 head, bf16
  DeviceBuffer qkv(*runtime, tokens * 3 * D * 2), k_cache(*runtime, cache_bytes), v_cache(*runtime, cache_bytes);
  DeviceBuffer slots_dev(*runtime, tokens * 8);
  ASSERT_TRUE(runtime->MemsetAsync(0, qkv.get(), 0x3c, tokens * 3 * D * 2, nullptr).ok());
  const int64_t row = 3 * D;
  char* base = static_cast<char*>(qkv.get());
  const DeviceTensor q{base, tokens, 1, D, row, D, DType::kBF16};
  const DeviceTensor k{base + D * 2, tokens, 1, D, row, D, DType::kBF16};
  const DeviceTensor v{base + 2 * D * 2, tokens, 1, D, row, D, DType::kBF16};
  KvCacheView cache;
  cache.k = k_cache.get();
  cache.v = v_cache.get();
  cache.num_blocks = 2;
  cache.block_size = 4;
  cache.kv_heads = 1;
  cache.head_dim = D;
  ApplyOptions pdl;  // addresses formed before the wait, slots read after it
  pdl.programmatic_dependent_launch = true;
  ApplyOptions early = pdl;  // slots read before the wait; the flag is raised after it
  early.positions_not_written_by_prior_kernel = true;
  for (const ApplyOptions& options : {ApplyOptions{}, pdl, early}) {
    for (int64_t bad : {int64_t{-1}, int64_t{8}, int64_t{1} << 40}) {
      SCOPED_TRACE(options.positions_not_written_by_prior_kernel ? "early"
                   : options.programmatic_dependent_launch      ? "pdl"
                                                                : "plain");
      ASSERT_TRUE(runtime->MemsetAsync(0, k_cache.get(), kPoison, cache_bytes, nullptr).ok());
      ASSERT_TRUE(runtime->MemsetAsync(0, v_cache.get(), kPoison, cache_bytes, nullptr).ok());
      const int64_t slots[tokens] = {0, bad, 7, -5};
      ASSERT_TRUE(runtime->CopyToDevice(0, slots_dev.get(), slots, sizeof(slots)).ok());
      ASSERT_TRUE(rope->ApplyAndCacheKvDevice(q, k, v, Positions::FromOffset(0),
                                              static_cast<const int64_t*>(slots_dev.get()), cache, nullptr,
                                              nullptr, options)
                      .ok());
      auto flagged = rope->TakePositionError(nullptr);
      ASSERT_TRUE(flagged.ok()) << flagged.status();
      EXPECT_EQ(*flagged, bad >= 0) << "slot " << bad;
      std::vector<uint8_t> k_bytes(cache_bytes), v_bytes(cache_bytes);
      ASSERT_TRUE(runtime->CopyToHost(0, k_bytes.data(), k_cache.get(), cache_bytes).ok());
      ASSERT_TRUE(runtime->CopyToHost(0, v_bytes.data(), v_cache.get(), cache_bytes).ok());
      // Slots 0 and 7 hold V's bits (0x3c3c), the other six are untouched.
      for (int slot = 0; slot < 8; ++slot) {
        const bool cached = slot == 0 || slot == 7;
        for (int byte = 0; byte < D * 2; ++byte) {
          const size_t i = static_cast<size_t>(slot) * D * 2 + byte;
          ASSERT_EQ(v_bytes[i], cached ? 0x3c : kPoison) << "slot " << slot << " byte " << byte;
          if (!cached) {
            ASSERT_EQ(k_bytes[i], kPoison) << "slot " << slot << " byte " << byte;
          }
        }
      }
    }
  }
}

ROPE_JIT_INSTANTIATE_BACKENDS(RopeKvCacheTest);

}  // namespace
}  // namespace rope_jit
