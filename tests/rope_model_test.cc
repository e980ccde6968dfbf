// MRoPE and per-call longrope against the float64 reference on the host backend (always)
// and a GPU (skipped only where none exists), same bodies for both.
//
// Fresh random inputs in [-1, 1] rounded to the storage dtype, random positions up to
// 2^20 in each MRoPE column, outputs poisoned before each launch; both MRoPE variants, both
// position layouts ([tokens, 3] and HF's [3, tokens] with a row pitch), rotary_dim <
// head_dim, f32/f16/bf16; a text-only token equals the 1D result bit for bit; a longrope
// Rope switching between its short and long lists call by call.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "rope/config.h"
#include "rope/dtype.h"
#include "rope/hf_config.h"
#include "rope/reference.h"
#include "rope/rope.h"
#include "tests/gpu_test_util.h"

namespace rope_jit {
namespace {

class RopeModelTest : public ::testing::TestWithParam<TestBackend> {};

std::mt19937_64& Rng() {
  static std::mt19937_64 rng(std::random_device{}());
  return rng;
}

// Host copy of a device tensor's elements in the storage dtype.
class Elements {
 public:
  Elements(DType dtype, size_t count) : dtype_(dtype), bytes_(count * DTypeSize(dtype)) {}
  DType dtype() const { return dtype_; }
  size_t size() const { return bytes_.size() / DTypeSize(dtype_); }
  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  size_t bytes() const { return bytes_.size(); }
  double Get(size_t i) const {
    if (dtype_ == DType::kF32) {
      float f;
      std::memcpy(&f, &bytes_[i * 4], 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, &bytes_[i * 2], 2);
    return dtype_ == DType::kF16 ? HalfBitsToFloat(h) : Bf16BitsToFloat(h);
  }
  void Set(size_t i, double value) {
    const float f = static_cast<float>(value);
    if (dtype_ == DType::kF32) {
      std::memcpy(&bytes_[i * 4], &f, 4);
      return;
    }
    const uint16_t h = dtype_ == DType::kF16 ? FloatToHalfBits(f) : FloatToBf16Bits(f);
    std::memcpy(&bytes_[i * 2], &h, 2);
  }
  bool operator==(const Elements& other) const { return bytes_ == other.bytes_; }

 private:
  DType dtype_;
  std::vector<uint8_t> bytes_;
};

class DeviceBytes {
 public:
  DeviceBytes(DeviceRuntime& runtime, size_t bytes) : runtime_(runtime) {
    absl::StatusOr<DevicePointer> allocated = runtime.Allocate(0, std::max<size_t>(bytes, 16));
    EXPECT_TRUE(allocated.ok()) << allocated.status();
    if (allocated.ok()) pointer_ = *allocated;
  }
  ~DeviceBytes() {
    if (pointer_ != nullptr) {
      EXPECT_TRUE(runtime_.Free(0, pointer_).ok());
    }
  }
  void* get() const { return pointer_; }

 private:
  DeviceRuntime& runtime_;
  void* pointer_ = nullptr;
};

// The allowed error of an element whose float64 value is `want`: f32 2e-6 (times the
// attention factor); f16/bf16 one ulp of `want` in the dtype plus fp32 rounding noise.
double Tolerance(double want, DType dtype, double attention_factor) {
  const double noise = 8 * std::ldexp(1.0, -24) * 2 * attention_factor;
  if (dtype == DType::kF32) return 2e-6 * attention_factor;
  const int mantissa_bits = dtype == DType::kF16 ? 10 : 7;
  const int min_exponent = dtype == DType::kF16 ? -14 : -126;
  const int exponent = want == 0 ? min_exponent : std::max(std::ilogb(want), min_exponent);
  return std::ldexp(1.0, exponent - mantissa_bits) + noise;
}

enum class Layout { kTokenMajor, kColumnMajor, kOffset };

const char* LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kTokenMajor: return "[tokens, 3]";
    case Layout::kColumnMajor: return "[3, tokens] with row pitch";
    case Layout::kOffset: return "offset";
  }
  return "?";
}

struct Outputs {
  Elements q, k;  // outputs (out of place)
};

// Applies `rope` to random Q [tokens, 4, D] and K [tokens, 2, D] out of place with the
// given positions (token-major host copy `positions`, `columns` per token, laid out on
// the device as `layout`), and checks every element against the float64 reference for
// `freqs`. Returns the outputs for bitwise comparisons.
Outputs ApplyAndCheck(DeviceRuntime& runtime, const Rope& rope, const RopeFrequencies& freqs,
                  const Elements& q_in, const Elements& k_in, const std::vector<int64_t>& positions,
                  int columns, Layout layout, const ApplyOptions& options = {}) {
  const RopeConfig& config = rope.config();
  const DType dtype = config.dtype;
  const int D = config.head_dim;
  const int tokens = static_cast<int>(positions.size() / columns);
  const int q_heads = static_cast<int>(q_in.size() / tokens / D);
  const int k_heads = static_cast<int>(k_in.size() / tokens / D);
  SCOPED_TRACE(absl::StrCat(DTypeName(dtype), " head_dim=", D, " rotary_dim=",
                            config.EffectiveRotaryDim(), " ", LayoutName(layout)));
  Outputs run{Elements(dtype, q_in.size()), Elements(dtype, k_in.size())};

  DeviceBytes q_dev(runtime, q_in.bytes()), k_dev(runtime, k_in.bytes());
  DeviceBytes q_out(runtime, q_in.bytes()), k_out(runtime, k_in.bytes());
  // Column-major rows are `pitch` apart, padded with positions out of range (a read of the
  // padding would show as a wrong result).
  const int pitch = tokens + 5;
  std::vector<int32_t> device_positions;
  if (layout == Layout::kColumnMajor) {
    device_positions.assign(static_cast<size_t>(pitch) * columns, -77);
    for (int t = 0; t < tokens; ++t) {
      for (int c = 0; c < columns; ++c) {
        device_positions[static_cast<size_t>(c) * pitch + t] = static_cast<int32_t>(positions[t * columns + c]);
      }
    }
  }
  DeviceBytes pos_dev(runtime, std::max(positions.size() * 8, device_positions.size() * 4));
  EXPECT_TRUE(runtime.CopyToDevice(0, q_dev.get(), q_in.data(), q_in.bytes()).ok());
  EXPECT_TRUE(runtime.CopyToDevice(0, k_dev.get(), k_in.data(), k_in.bytes()).ok());
  EXPECT_TRUE(runtime.MemsetAsync(0, q_out.get(), 0xFF, q_in.bytes(), nullptr).ok());
  EXPECT_TRUE(runtime.MemsetAsync(0, k_out.get(), 0xFF, k_in.bytes(), nullptr).ok());
  Positions pos;
  switch (layout) {
    case Layout::kTokenMajor:
      EXPECT_TRUE(runtime.CopyToDevice(0, pos_dev.get(), positions.data(), positions.size() * 8).ok());
      pos = Positions::Int64(static_cast<const int64_t*>(pos_dev.get()));
      break;
    case Layout::kColumnMajor:
      EXPECT_TRUE(runtime.CopyToDevice(0, pos_dev.get(), device_positions.data(),
                                       device_positions.size() * 4).ok());
      pos = Positions::Int32(static_cast<const int32_t*>(pos_dev.get())).ColumnMajor(pitch);
      break;
    case Layout::kOffset:
      pos = Positions::FromOffset(positions[0]);
      break;
  }
  const DeviceTensor q = DeviceTensor::Contiguous(q_dev.get(), tokens, q_heads, D, dtype);
  const DeviceTensor k = DeviceTensor::Contiguous(k_dev.get(), tokens, k_heads, D, dtype);
  const DeviceTensor qo = DeviceTensor::Contiguous(q_out.get(), tokens, q_heads, D, dtype);
  const DeviceTensor ko = DeviceTensor::Contiguous(k_out.get(), tokens, k_heads, D, dtype);
  const absl::Status applied = rope.ApplyPositionEmbeddingsDevice(q, k, pos, nullptr, &qo, &ko, options);
  EXPECT_TRUE(applied.ok()) << applied;
  EXPECT_TRUE(runtime.SynchronizeStream(0, nullptr).ok());
  EXPECT_TRUE(runtime.CopyToHost(0, run.q.data(), q_out.get(), run.q.bytes()).ok());
  EXPECT_TRUE(runtime.CopyToHost(0, run.k.data(), k_out.get(), run.k.bytes()).ok());

  auto check = [&](const Elements& in, const Elements& out, int heads, const char* name) {
    std::vector<double> x(in.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = in.Get(i);
    const std::vector<double> want = ReferenceApply(config, freqs, x, tokens, heads, positions);
    ASSERT_EQ(want.size(), x.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const int d = static_cast<int>(i % D);
      const size_t t = i / D / heads;
      const double got = out.Get(i);
      ASSERT_LE(std::fabs(got - want[i]), Tolerance(want[i], dtype, freqs.attention_factor))
          << name << " token " << t << " (positions " << positions[t * columns] << ", "
          << positions[t * columns + columns - 1] << ") dim " << d << ": got " << got << " want "
          << want[i];
    }
  };
  check(q_in, run.q, q_heads, "q");
  check(k_in, run.k, k_heads, "k");
  return run;
}

Elements RandomElements(DType dtype, size_t count) {
  Elements elements(dtype, count);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (size_t i = 0; i < count; ++i) elements.Set(i, uniform(Rng()));
  return elements;
}

RopeConfig Mrope(DType dtype, int head_dim, int rotary_dim, std::vector<int> section,
                 bool interleaved, RopeStyle style = RopeStyle::kNeox) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dim = rotary_dim;
  config.dtype = dtype;
  config.style = style;
  config.theta = 1e6;
  config.max_position = (1 << 20) + 1;
  config.position_columns = 3;
  config.mrope_section = std::move(section);
  config.mrope_interleaved = interleaved;
  return config;
}

std::vector<RopeConfig> MropeConfigs(DType dtype) {
  return {
      Mrope(dtype, 128, 128, {16, 24, 24}, false),  // Qwen2-VL / Qwen2.5-VL
      Mrope(dtype, 128, 128, {24, 20, 20}, true),   // Qwen3-VL
      Mrope(dtype, 128, 64, {8, 12, 12}, false),    // rotary_dim < head_dim
      Mrope(dtype, 256, 64, {11, 11, 10}, true),    // partial rotary, sections off the lanes
      Mrope(dtype, 96, 96, {12, 18, 18}, false, RopeStyle::kInterleaved),
  };
}

// Every variant in bf16; contiguous, interleaved and the partial, lane-straddling one in
// f32 and f16 too (each config is two host compiles; the matrix keeps the suite short).
std::vector<RopeConfig> MropeMatrix() {
  std::vector<RopeConfig> matrix = MropeConfigs(DType::kBF16);
  for (DType dtype : {DType::kF32, DType::kF16}) {
    const std::vector<RopeConfig> configs = MropeConfigs(dtype);
    matrix.push_back(configs[dtype == DType::kF32 ? 0 : 1]);
    matrix.push_back(configs[3]);
  }
  return matrix;
}

TEST_P(RopeModelTest, MropeBothVariantsBothLayoutsMatchTheReference) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  {
    {
      for (const RopeConfig& config : MropeMatrix()) {
        SCOPED_TRACE(absl::StrCat("mrope ", config.mrope_section[0], "/", config.mrope_section[1], "/",
                                  config.mrope_section[2], config.mrope_interleaved ? " interleaved" : ""));
        absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(config, *runtime, 0);
        ASSERT_TRUE(rope.ok()) << rope.status();
        const int tokens = 24;
        std::uniform_int_distribution<int64_t> position(0, 1 << 20);
        std::vector<int64_t> positions(tokens * 3);
        for (int64_t& p : positions) p = position(Rng());
        positions[0] = 1 << 20;  // the extremes: 2^20 and 0 in token 0
        positions[1] = 1 << 20;
        positions[2] = 0;
        const Elements q = RandomElements(config.dtype, static_cast<size_t>(tokens) * 4 * config.head_dim);
        const Elements k = RandomElements(config.dtype, static_cast<size_t>(tokens) * 2 * config.head_dim);
        const Outputs token_major = ApplyAndCheck(*runtime, **rope, (*rope)->frequencies(), q, k,
                                              positions, 3, Layout::kTokenMajor);
        if (HasFatalFailure()) return;
        const Outputs column_major = ApplyAndCheck(*runtime, **rope, (*rope)->frequencies(), q, k,
                                               positions, 3, Layout::kColumnMajor);
        if (HasFatalFailure()) return;
        // The same positions read from either layout give the same bits.
        EXPECT_TRUE(token_major.q == column_major.q);
        EXPECT_TRUE(token_major.k == column_major.k);
      }
    }
  }
}

TEST_P(RopeModelTest, MropeTextOnlyTokensEqualOneDimensionalExactly) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  {
    {
      const std::vector<RopeConfig> matrix = MropeMatrix();
      // Contiguous (bf16), interleaved (f16), sections straddling a lane's pairs (f32);
      // their MRoPE kernels are already in the service's memory tier.
      for (const RopeConfig& config : {matrix[0], matrix[7], matrix[6]}) {
        RopeConfig plain = config;
        plain.position_columns = 1;
        plain.mrope_section.clear();
        plain.mrope_interleaved = false;
        absl::StatusOr<std::unique_ptr<Rope>> mrope = Rope::Create(config, *runtime, 0);
        absl::StatusOr<std::unique_ptr<Rope>> one_d = Rope::Create(plain, *runtime, 0);
        ASSERT_TRUE(mrope.ok() && one_d.ok()) << mrope.status() << one_d.status();
        const int tokens = 16;
        std::vector<int64_t> one, three;
        std::uniform_int_distribution<int64_t> position(0, (1 << 20) - tokens);
        const int64_t start = position(Rng());
        for (int t = 0; t < tokens; ++t) {
          one.push_back(start + t);
          three.insert(three.end(), {start + t, start + t, start + t});
        }
        const Elements q = RandomElements(config.dtype, static_cast<size_t>(tokens) * 4 * config.head_dim);
        const Elements k = RandomElements(config.dtype, static_cast<size_t>(tokens) * 2 * config.head_dim);
        const Outputs reference = ApplyAndCheck(*runtime, **one_d, (*one_d)->frequencies(), q, k,
                                            one, 1, Layout::kTokenMajor);
        for (Layout layout : {Layout::kTokenMajor, Layout::kColumnMajor, Layout::kOffset}) {
          const Outputs text = ApplyAndCheck(*runtime, **mrope, (*mrope)->frequencies(), q, k,
                                         three, 3, layout);
          if (HasFatalFailure()) return;
          EXPECT_TRUE(text.q == reference.q) << LayoutName(layout);
          EXPECT_TRUE(text.k == reference.k) << LayoutName(layout);
        }
      }
    }
  }
}

std::string ReadConfig(const std::string& name) {
  std::ifstream in("tests/data/hf_configs/" + name, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_P(RopeModelTest, LongropeShortAndLongPerCallOnOneRope) {
  ROPE_JIT_BACKEND_OR_SKIP(runtime);
  {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      // Phi-3.5-mini's real factors: head_dim 96, original context 4096, max 131072.
      absl::StatusOr<RopeConfig> config =
          RopeConfigFromHfConfig(ReadConfig("phi-3.5-mini-instruct.json"), dtype);
      ASSERT_TRUE(config.ok()) << config.status();
      absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(*config, *runtime, 0);
      ASSERT_TRUE(rope.ok()) << rope.status();
      const RopeFrequencies short_freqs = ComputeFrequencies(*config, LongropeFactors::kShort).value();
      const RopeFrequencies long_freqs = ComputeFrequencies(*config, LongropeFactors::kLong).value();
      ASSERT_NE(short_freqs.inv_freq, long_freqs.inv_freq);
      ASSERT_GT(short_freqs.attention_factor, 1.1);  // sqrt(1 + ln 32 / ln 4096)
      const int tokens = 20;
      const Elements q = RandomElements(dtype, static_cast<size_t>(tokens) * 4 * 96);
      const Elements k = RandomElements(dtype, static_cast<size_t>(tokens) * 2 * 96);
      // A short prompt, a long one, short again: the choice follows each call.
      const int64_t lengths[] = {3000, 131072, 4096, 100000};
      
      for (int64_t length : lengths) {
        ApplyOptions options;
        options.longrope = LongropeFactorsForSequence(*config, length);
        EXPECT_EQ(options.longrope, length > 4096 ? LongropeFactors::kLong : LongropeFactors::kShort);
        std::uniform_int_distribution<int64_t> position(0, length - 1);
        std::vector<int64_t> positions(tokens);
        for (int64_t& p : positions) p = position(Rng());
        positions[0] = length - 1;
        const RopeFrequencies& freqs =
            options.longrope == LongropeFactors::kLong ? long_freqs : short_freqs;
        ApplyAndCheck(*runtime, **rope, freqs, q, k, positions, 1, Layout::kTokenMajor, options);
        if (HasFatalFailure()) return;
      }
      // The default is the list for max_position: long.
      std::vector<int64_t> positions(tokens);
      for (int t = 0; t < tokens; ++t) positions[t] = 9000 + t;
      ApplyAndCheck(*runtime, **rope, long_freqs, q, k, positions, 1, Layout::kTokenMajor);
    }
  }
}

ROPE_JIT_INSTANTIATE_BACKENDS(RopeModelTest);

}  // namespace
}  // namespace rope_jit
