// RopeConfigFromHfConfig on real config.json texts (tests/data/hf_configs, SOURCES says
// where each came from), field by field and, through ComputeFrequencies, against float64
// values computed here from Hugging Face's modeling_rope_utils formulas; and the errors for
// malformed JSON, missing fields, wrong types, unknown rope types and contradictions.
#include "rope/hf_config.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rope/config.h"

namespace rope_jit {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::string ReadConfig(const std::string& name) {
  const std::string path = "tests/data/hf_configs/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

RopeConfig Load(const std::string& name, DType dtype = DType::kBF16,
                const std::string& layer_type = "") {
  absl::StatusOr<RopeConfig> config = RopeConfigFromHfConfig(ReadConfig(name), dtype, layer_type);
  EXPECT_TRUE(config.ok()) << name << ": " << config.status();
  return config.ok() ? *config : RopeConfig{};
}

// ---------------------------------------------------------------------------------------
// Hugging Face's formulas (transformers modeling_rope_utils), written out again here so that
// the library's config.cc is checked against an independent transcription.

// _compute_default_rope_parameters: 1 / base ** (arange(0, dim, 2) / dim).
std::vector<double> HfDefault(double base, int dim) {
  std::vector<double> inv;
  for (int k = 0; k < dim; k += 2) inv.push_back(1.0 / std::pow(base, static_cast<double>(k) / dim));
  return inv;
}

// _compute_llama3_parameters.
std::vector<double> HfLlama3(double base, int dim, double factor, double low_freq_factor,
                             double high_freq_factor, double old_context_len) {
  std::vector<double> inv = HfDefault(base, dim);
  const double low_freq_wavelen = old_context_len / low_freq_factor;
  const double high_freq_wavelen = old_context_len / high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2 * kPi / f;
    double llama = wavelen > low_freq_wavelen ? f / factor : f;
    const double smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
    const double smoothed = (1 - smooth) * llama / factor + smooth * llama;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = medium ? smoothed : llama;
  }
  return inv;
}

struct HfResult {
  std::vector<double> inv;
  double attention = 1.0;
};

// _compute_yarn_parameters (truncate = True).
HfResult HfYarn(double base, int dim, double factor, double original, double beta_fast,
                double beta_slow, double mscale, double mscale_all_dim) {
  auto get_mscale = [](double scale, double m) {
    return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
  };
  HfResult result;
  result.attention = (mscale != 0 && mscale_all_dim != 0)
                         ? get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
                         : get_mscale(factor, 1.0);
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(original / (rotations * 2 * kPi))) / (2 * std::log(base));
  };
  double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(beta_slow)), dim - 1.0);
  if (low == high) high += 0.001;
  for (int i = 0; i < dim / 2; ++i) {
    const double pos_freq = std::pow(base, (2.0 * i) / dim);
    const double extrapolation = 1.0 / pos_freq;
    const double interpolation = 1.0 / (factor * pos_freq);
    const double ramp = std::min(std::max((i - low) / (high - low), 0.0), 1.0);
    const double extrapolation_factor = 1 - ramp;
    result.inv.push_back(interpolation * (1 - extrapolation_factor) +
                         extrapolation * extrapolation_factor);
  }
  return result;
}

// _compute_longrope_parameters (Phi-3: factor from the two context lengths).
HfResult HfLongrope(double base, int dim, const std::vector<double>& ext, double max_position,
                    double original) {
  HfResult result;
  const double factor = max_position / original;
  result.attention = factor <= 1 ? 1.0 : std::sqrt(1 + std::log(factor) / std::log(original));
  for (int k = 0, i = 0; k < dim; k += 2, ++i) {
    result.inv.push_back(1.0 / (ext[i] * std::pow(base, static_cast<double>(k) / dim)));
  }
  return result;
}

void ExpectFrequencies(const RopeConfig& config, const std::vector<double>& inv,
                       double attention = 1.0,
                       LongropeFactors factors = LongropeFactors::kForMaxPosition) {
  absl::StatusOr<RopeFrequencies> freqs = ComputeFrequencies(config, factors);
  ASSERT_TRUE(freqs.ok()) << freqs.status();
  ASSERT_EQ(freqs->inv_freq.size(), inv.size());
  for (size_t i = 0; i < inv.size(); ++i) {
    EXPECT_NEAR(freqs->inv_freq[i], inv[i], 1e-13 * inv[i]) << "inv_freq[" << i << "]";
  }
  EXPECT_NEAR(freqs->attention_factor, attention, 1e-14) << "attention_factor";
}

// ---------------------------------------------------------------------------------------
// Real configs

TEST(HfConfigTest, Llama31_8B) {
  const RopeConfig c = Load("llama-3.1-8b.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.EffectiveRotaryDim(), 128);
  EXPECT_EQ(c.theta, 500000.0);
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  EXPECT_EQ(c.dtype, DType::kBF16);
  EXPECT_EQ(c.max_position, 131072);
  EXPECT_EQ(c.position_columns, 1);
  EXPECT_EQ(c.scaling.type, ScalingType::kLlama3);
  EXPECT_EQ(c.scaling.factor, 8.0);
  EXPECT_EQ(c.scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.scaling.original_max_position_embeddings, 8192);
  ExpectFrequencies(c, HfLlama3(500000, 128, 8, 1, 4, 8192));
}

TEST(HfConfigTest, Llama32_1B_HeadDimField) {
  const RopeConfig c = Load("llama-3.2-1b.json", DType::kF16);
  EXPECT_EQ(c.head_dim, 64);  // head_dim field (2048 / 32 = 64 too)
  EXPECT_EQ(c.EffectiveRotaryDim(), 64);
  EXPECT_EQ(c.dtype, DType::kF16);
  EXPECT_EQ(c.scaling.type, ScalingType::kLlama3);
  EXPECT_EQ(c.scaling.factor, 32.0);
  ExpectFrequencies(c, HfLlama3(500000, 64, 32, 1, 4, 8192));
}

TEST(HfConfigTest, Qwen25_7B) {
  const RopeConfig c = Load("qwen2.5-7b.json");
  EXPECT_EQ(c.head_dim, 128);  // 3584 / 28
  EXPECT_EQ(c.EffectiveRotaryDim(), 128);
  EXPECT_EQ(c.theta, 1e6);
  EXPECT_EQ(c.max_position, 131072);
  EXPECT_EQ(c.scaling.type, ScalingType::kDefault);
  EXPECT_FALSE(c.IsMrope());
  ExpectFrequencies(c, HfDefault(1e6, 128));
}

TEST(HfConfigTest, Qwen25VL_ContiguousMrope) {
  const RopeConfig c = Load("qwen2.5-vl-7b-instruct.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.EffectiveRotaryDim(), 128);
  EXPECT_EQ(c.theta, 1e6);
  EXPECT_EQ(c.max_position, 128000);
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  EXPECT_EQ(c.scaling.type, ScalingType::kDefault);  // "mrope" is the default variant
  EXPECT_EQ(c.mrope_section, (std::vector<int>{16, 24, 24}));
  EXPECT_FALSE(c.mrope_interleaved);
  EXPECT_EQ(c.position_columns, 3);
  EXPECT_EQ(c.SegmentDim(), 128);  // one table for the whole rotary part
  EXPECT_EQ(c.MropeColumn(15), 0);
  EXPECT_EQ(c.MropeColumn(16), 1);
  EXPECT_EQ(c.MropeColumn(39), 1);
  EXPECT_EQ(c.MropeColumn(40), 2);
  EXPECT_EQ(c.MropeColumn(63), 2);
  ExpectFrequencies(c, HfDefault(1e6, 128));
}

TEST(HfConfigTest, Qwen3VL_InterleavedMropeInTextConfig) {
  const RopeConfig c = Load("qwen3-vl-8b-instruct.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.theta, 5e6);
  EXPECT_EQ(c.max_position, 262144);
  EXPECT_EQ(c.mrope_section, (std::vector<int>{24, 20, 20}));
  EXPECT_TRUE(c.mrope_interleaved);
  EXPECT_EQ(c.position_columns, 3);
  // HF apply_interleaved_mrope: T everywhere, H at 1, 4, ..., 58; W at 2, 5, ..., 59.
  for (int j = 0; j < 64; ++j) {
    const int expected = (j % 3 == 1 && j < 60) ? 1 : (j % 3 == 2 && j < 60) ? 2 : 0;
    EXPECT_EQ(c.MropeColumn(j), expected) << j;
  }
  ExpectFrequencies(c, HfDefault(5e6, 128));
}

TEST(HfConfigTest, Qwen3VL_Transformers5RopeParametersGiveTheSameConfig) {
  const RopeConfig v4 = Load("qwen3-vl-8b-instruct.json");
  const RopeConfig v5 = Load("qwen3-vl-8b-instruct-transformers5.json");
  EXPECT_EQ(v5.theta, v4.theta);  // rope_parameters.rope_theta
  EXPECT_EQ(v5.head_dim, v4.head_dim);
  EXPECT_EQ(v5.max_position, v4.max_position);
  EXPECT_EQ(v5.mrope_section, v4.mrope_section);
  EXPECT_EQ(v5.mrope_interleaved, v4.mrope_interleaved);
  EXPECT_EQ(v5.scaling.type, v4.scaling.type);
}

TEST(HfConfigTest, Phi35Mini_LongropeBothLists) {
  const std::string text = ReadConfig("phi-3.5-mini-instruct.json");
  const RopeConfig c = Load("phi-3.5-mini-instruct.json");
  EXPECT_EQ(c.head_dim, 96);  // 3072 / 32
  EXPECT_EQ(c.EffectiveRotaryDim(), 96);
  EXPECT_EQ(c.max_position, 131072);
  EXPECT_EQ(c.scaling.type, ScalingType::kLongrope);
  EXPECT_EQ(c.scaling.original_max_position_embeddings, 4096);  // top-level field
  EXPECT_EQ(c.scaling.factor, 32.0);  // 131072 / 4096, no factor in the file
  ASSERT_EQ(c.scaling.short_factor.size(), 48u);
  ASSERT_EQ(c.scaling.long_factor.size(), 48u);
  EXPECT_EQ(c.scaling.short_factor[1], 1.0199999809265137);
  EXPECT_EQ(c.scaling.long_factor[47], 64.83999633789062);
  const double attention = std::sqrt(1 + std::log(32.0) / std::log(4096.0));
  const HfResult long_hf = HfLongrope(10000, 96, c.scaling.long_factor, 131072, 4096);
  const HfResult short_hf = HfLongrope(10000, 96, c.scaling.short_factor, 131072, 4096);
  EXPECT_NEAR(long_hf.attention, attention, 1e-15);
  // max_position 131072 > 4096: the long list, unless an apply asks for the short one.
  ExpectFrequencies(c, long_hf.inv, long_hf.attention);
  ExpectFrequencies(c, long_hf.inv, long_hf.attention, LongropeFactors::kLong);
  ExpectFrequencies(c, short_hf.inv, short_hf.attention, LongropeFactors::kShort);
}

TEST(HfConfigTest, DeepseekV3_YarnOnTheMlaRopeSlice) {
  const RopeConfig c = Load("deepseek-v3.json");
  EXPECT_EQ(c.head_dim, 64);  // qk_rope_head_dim: the slice of q/k that is rotated
  EXPECT_EQ(c.EffectiveRotaryDim(), 64);
  EXPECT_EQ(c.style, RopeStyle::kInterleaved);
  EXPECT_EQ(c.theta, 10000.0);
  EXPECT_EQ(c.max_position, 163840);
  EXPECT_EQ(c.scaling.type, ScalingType::kYarn);
  EXPECT_EQ(c.scaling.factor, 40.0);
  EXPECT_EQ(c.scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.scaling.beta_fast, 32.0);
  EXPECT_EQ(c.scaling.beta_slow, 1.0);
  EXPECT_EQ(c.scaling.mscale, 1.0);
  EXPECT_EQ(c.scaling.mscale_all_dim, 1.0);
  EXPECT_TRUE(c.scaling.truncate);
  const HfResult hf = HfYarn(10000, 64, 40, 4096, 32, 1, 1.0, 1.0);
  EXPECT_EQ(hf.attention, 1.0);  // mscale / mscale_all_dim
  ExpectFrequencies(c, hf.inv, hf.attention);
}

TEST(HfConfigTest, Glm4_9B_HalfRotaryInterleavedRopeRatio) {
  const RopeConfig c = Load("glm-4-9b-chat.json");
  EXPECT_EQ(c.head_dim, 128);  // kv_channels
  EXPECT_EQ(c.EffectiveRotaryDim(), 64);
  EXPECT_EQ(c.style, RopeStyle::kInterleaved);
  EXPECT_EQ(c.theta, 5e6);  // 10000 * rope_ratio 500
  EXPECT_EQ(c.max_position, 131072);  // seq_length
  ExpectFrequencies(c, HfDefault(5e6, 64));
}

TEST(HfConfigTest, ChatGlm3_6B_WithoutModelType) {
  const RopeConfig c = Load("chatglm3-6b.json", DType::kF16);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.EffectiveRotaryDim(), 64);
  EXPECT_EQ(c.style, RopeStyle::kInterleaved);
  EXPECT_EQ(c.theta, 10000.0);
  EXPECT_EQ(c.max_position, 8192);
  ExpectFrequencies(c, HfDefault(10000, 64));
}

TEST(HfConfigTest, GptJ6B_RotaryDimField) {
  const RopeConfig c = Load("gpt-j-6b.json", DType::kF32);
  EXPECT_EQ(c.head_dim, 256);  // n_embd / n_head
  EXPECT_EQ(c.EffectiveRotaryDim(), 64);
  EXPECT_EQ(c.style, RopeStyle::kInterleaved);
  EXPECT_EQ(c.max_position, 2048);  // n_positions
  EXPECT_EQ(c.dtype, DType::kF32);
  ExpectFrequencies(c, HfDefault(10000, 64));
}

TEST(HfConfigTest, Phi2_PartialRotaryFactor) {
  const RopeConfig c = Load("phi-2.json");
  EXPECT_EQ(c.head_dim, 80);
  EXPECT_EQ(c.EffectiveRotaryDim(), 32);  // int(80 * 0.4)
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  ExpectFrequencies(c, HfDefault(10000, 32));
}

TEST(HfConfigTest, GptNeoX_RotaryPctAndBase) {
  const RopeConfig c = Load("pythia-6.9b-deduped.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.EffectiveRotaryDim(), 32);  // rotary_pct 0.25
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  EXPECT_EQ(c.theta, 10000.0);
  EXPECT_EQ(c.max_position, 2048);
  ExpectFrequencies(c, HfDefault(10000, 32));
}

TEST(HfConfigTest, GptNeoX20B_RotaryPctAndBase) {
  const RopeConfig c = Load("gpt-neox-20b.json");
  EXPECT_EQ(c.head_dim, 96);              // hidden_size 6144 / 64 heads
  EXPECT_EQ(c.EffectiveRotaryDim(), 24);  // rotary_pct 0.25
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  EXPECT_EQ(c.theta, 10000.0);  // rotary_emb_base
  EXPECT_EQ(c.max_position, 2048);
  EXPECT_EQ(c.scaling.type, ScalingType::kDefault);
  ExpectFrequencies(c, HfDefault(10000, 24));
}

// Qwen2-VL as transformers re-saves it: rope_scaling {type: "default", mrope_section}, so
// MRoPE is known from the section list alone.
TEST(HfConfigTest, Qwen2VL_ResavedMropeSectionWithDefaultType) {
  const RopeConfig c = Load("qwen2-vl-7b-instruct-merged-transformers4.46.json");
  EXPECT_EQ(c.head_dim, 128);  // 3584 / 28
  EXPECT_EQ(c.theta, 1e6);
  EXPECT_EQ(c.max_position, 32768);
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  EXPECT_EQ(c.scaling.type, ScalingType::kDefault);
  EXPECT_EQ(c.mrope_section, (std::vector<int>{16, 24, 24}));
  EXPECT_FALSE(c.mrope_interleaved);
  EXPECT_EQ(c.position_columns, 3);
  ExpectFrequencies(c, HfDefault(1e6, 128));
}

TEST(HfConfigTest, Mistral7B) {
  const RopeConfig c = Load("mistral-7b-instruct-v0.1.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.theta, 10000.0);
  EXPECT_EQ(c.max_position, 32768);
  EXPECT_EQ(c.scaling.type, ScalingType::kDefault);
  ExpectFrequencies(c, HfDefault(10000, 128));
}

TEST(HfConfigTest, Gemma3_PerLayerType) {
  const std::string text = ReadConfig("embeddinggemma-gemma3-text.json");
  absl::StatusOr<std::vector<std::string>> types = HfConfigLayerTypes(text);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ(*types, (std::vector<std::string>{"full_attention", "sliding_attention"}));

  absl::StatusOr<RopeConfig> none = RopeConfigFromHfConfig(text, DType::kBF16);
  EXPECT_TRUE(absl::IsInvalidArgument(none.status()));
  EXPECT_TRUE(absl::StrContains(none.status().message(), "pass a layer type")) << none.status();

  const RopeConfig full = Load("embeddinggemma-gemma3-text.json", DType::kBF16, "full_attention");
  EXPECT_EQ(full.head_dim, 256);
  EXPECT_EQ(full.theta, 1e6);
  EXPECT_EQ(full.max_position, 2048);
  ExpectFrequencies(full, HfDefault(1e6, 256));
  const RopeConfig sliding =
      Load("embeddinggemma-gemma3-text.json", DType::kBF16, "sliding_attention");
  EXPECT_EQ(sliding.theta, 10000.0);  // rope_local_base_freq
  ExpectFrequencies(sliding, HfDefault(10000, 256));

  absl::StatusOr<RopeConfig> bad = RopeConfigFromHfConfig(text, DType::kBF16, "chunked");
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "chunked")) << bad.status();
}

// Gemma-3 4B (transformers 4, text_config, no layer_types): full-attention layers use
// rope_theta with linear scaling (HF _compute_linear_scaling_rope_parameters: inv_freq /
// factor); sliding layers rope_local_base_freq and the default rope (Gemma3TextModel's
// rotary_emb_local).
TEST(HfConfigTest, Gemma3_4B_LinearScalingOnFullLayersOnly) {
  const std::string text = ReadConfig("gemma-3-4b-it.json");
  absl::StatusOr<std::vector<std::string>> types = HfConfigLayerTypes(text);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ(*types, (std::vector<std::string>{"full_attention", "sliding_attention"}));

  const RopeConfig full = Load("gemma-3-4b-it.json", DType::kBF16, "full_attention");
  EXPECT_EQ(full.head_dim, 256);
  EXPECT_EQ(full.theta, 1e6);
  EXPECT_EQ(full.max_position, 131072);
  EXPECT_EQ(full.style, RopeStyle::kNeox);
  EXPECT_EQ(full.scaling.type, ScalingType::kLinear);
  EXPECT_EQ(full.scaling.factor, 8.0);
  std::vector<double> linear = HfDefault(1e6, 256);
  for (double& f : linear) f /= 8.0;
  ExpectFrequencies(full, linear);

  const RopeConfig sliding = Load("gemma-3-4b-it.json", DType::kBF16, "sliding_attention");
  EXPECT_EQ(sliding.theta, 10000.0);
  EXPECT_EQ(sliding.scaling.type, ScalingType::kDefault);
  ExpectFrequencies(sliding, HfDefault(10000, 256));
  EXPECT_EQ(HfConfigDType(text).value(), DType::kBF16);
}

// Gemma-3 1B: flat gemma3_text, bases written as integers, head_dim stated (256, not
// hidden_size 1152 / 4 heads = 288).
TEST(HfConfigTest, Gemma3_1B_IntegerBasesAndStatedHeadDim) {
  const RopeConfig full = Load("gemma-3-1b-it.json", DType::kBF16, "full_attention");
  EXPECT_EQ(full.head_dim, 256);
  EXPECT_EQ(full.theta, 1e6);
  EXPECT_EQ(full.max_position, 32768);
  EXPECT_EQ(full.scaling.type, ScalingType::kDefault);  // rope_scaling: null
  ExpectFrequencies(full, HfDefault(1e6, 256));
  const RopeConfig sliding = Load("gemma-3-1b-it.json", DType::kBF16, "sliding_attention");
  EXPECT_EQ(sliding.theta, 10000.0);
  ExpectFrequencies(sliding, HfDefault(10000, 256));
}

TEST(HfConfigTest, ModelDType) {
  EXPECT_EQ(HfConfigDType(ReadConfig("llama-3.1-8b.json")).value(), DType::kBF16);
  EXPECT_EQ(HfConfigDType(ReadConfig("chatglm3-6b.json")).value(), DType::kF16);
  EXPECT_EQ(HfConfigDType(ReadConfig("qwen3-vl-8b-instruct.json")).value(), DType::kBF16);
  EXPECT_EQ(HfConfigDType(ReadConfig("embeddinggemma-gemma3-text.json")).value(), DType::kF32);
  EXPECT_FALSE(HfConfigDType(R"({"torch_dtype": "float8_e4m3fn"})").value().has_value());
  EXPECT_FALSE(HfConfigDType("{}").value().has_value());
}

// ---------------------------------------------------------------------------------------
// Spellings the real files above do not cover (inline, minimal texts)

TEST(HfConfigTest, Transformers5LayerTypeKeyedRopeParameters) {
  const std::string text = R"({
    "model_type": "gemma3_text", "head_dim": 128, "max_position_embeddings": 32768,
    "rope_parameters": {
      "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
      "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}})";
  EXPECT_EQ(HfConfigLayerTypes(text).value(),
            (std::vector<std::string>{"full_attention", "sliding_attention"}));
  const RopeConfig full = RopeConfigFromHfConfig(text, DType::kBF16, "full_attention").value();
  EXPECT_EQ(full.theta, 1e6);
  EXPECT_EQ(full.scaling.type, ScalingType::kLinear);
  EXPECT_EQ(full.scaling.factor, 8.0);
  const RopeConfig sliding = RopeConfigFromHfConfig(text, DType::kBF16, "sliding_attention").value();
  EXPECT_EQ(sliding.theta, 1e4);
  EXPECT_EQ(sliding.scaling.type, ScalingType::kDefault);
  EXPECT_TRUE(absl::StrContains(RopeConfigFromHfConfig(text, DType::kBF16).status().message(),
                                "full_attention, sliding_attention"));
}

TEST(HfConfigTest, ChatGlmV1TwoDimensionalPositions) {
  const RopeConfig c = RopeConfigFromHfConfig(
                           R"({"model_type": "chatglm", "hidden_size": 4096, "num_attention_heads": 32,
                               "position_encoding_2d": true, "max_sequence_length": 2048})",
                           DType::kF16)
                           .value();
  EXPECT_EQ(c.position_columns, 2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.style, RopeStyle::kNeox);
  EXPECT_EQ(c.max_position, 2048);
}

TEST(HfConfigTest, LegacyNamesAndDefaults) {
  // Phi-3's old "su", yarn without factor (the context ratio), dynamic.
  const std::string su = R"({"model_type": "phi3", "hidden_size": 256, "num_attention_heads": 4,
      "max_position_embeddings": 8192, "original_max_position_embeddings": 2048,
      "rope_scaling": {"type": "su", "short_factor": [)" +
                         [] {
                           std::string list;
                           for (int i = 0; i < 32; ++i) list += (i ? ",1.5" : "1.5");
                           return list;
                         }() +
                         R"(], "long_factor": [)" +
                         [] {
                           std::string list;
                           for (int i = 0; i < 32; ++i) list += (i ? ",4" : "4");
                           return list;
                         }() + "]}}";
  const RopeConfig c = RopeConfigFromHfConfig(su, DType::kBF16).value();
  EXPECT_EQ(c.scaling.type, ScalingType::kLongrope);
  EXPECT_EQ(c.scaling.factor, 4.0);

  const RopeConfig yarn = RopeConfigFromHfConfig(
      R"({"head_dim": 64, "max_position_embeddings": 65536, "rope_scaling":
          {"rope_type": "yarn", "original_max_position_embeddings": 16384}})", DType::kBF16).value();
  EXPECT_EQ(yarn.scaling.factor, 4.0);
  const HfResult hf = HfYarn(10000, 64, 4, 16384, 32, 1, 0, 0);
  ExpectFrequencies(yarn, hf.inv, hf.attention);

  const RopeConfig dynamic = RopeConfigFromHfConfig(
      R"({"head_dim": 64, "max_position_embeddings": 4096, "rope_theta": 10000,
          "rope_scaling": {"type": "dynamic", "factor": 2.0}})", DType::kBF16).value();
  EXPECT_EQ(dynamic.scaling.type, ScalingType::kDynamic);
  EXPECT_EQ(dynamic.scaling.original_max_position_embeddings, 4096);
}

// ---------------------------------------------------------------------------------------
// Errors

void ExpectError(const std::string& text, const std::vector<std::string>& fragments,
                 const std::string& layer_type = "") {
  absl::StatusOr<RopeConfig> config = RopeConfigFromHfConfig(text, DType::kBF16, layer_type);
  ASSERT_FALSE(config.ok()) << text;
  EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << config.status();
  for (const std::string& fragment : fragments) {
    EXPECT_TRUE(absl::StrContains(config.status().message(), fragment))
        << "'" << fragment << "' not in: " << config.status().message();
  }
}

constexpr const char* kBase = R"("hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 8192)";

std::string With(const std::string& extra) { return absl::StrCat("{", kBase, extra, "}"); }

TEST(HfConfigErrorTest, MalformedJson) {
  ExpectError("", {"not valid JSON"});
  ExpectError("{", {"not valid JSON"});
  ExpectError(R"({"head_dim": 128,})", {"not valid JSON", "byte"});
  ExpectError(R"({"head_dim": 12 8})", {"not valid JSON"});
  ExpectError(R"({"a": 1} trailing)", {"not valid JSON"});
  ExpectError("{\"a\": \"\xff\"}", {"not valid JSON"});
  ExpectError(R"({"rope_theta": 1e999})", {"not valid JSON"});
  ExpectError("[1, 2]", {"top level must be an object", "array"});
  ExpectError("42", {"top level must be an object"});
  // Deep nesting is parsed without recursion.
  ExpectError(std::string(100000, '[') + std::string(100000, ']'), {"top level must be an object"});
  ExpectError(std::string((16 << 20) + 1, ' '), {"more than a config.json"});
}

TEST(HfConfigErrorTest, MissingFields) {
  ExpectError(R"({"hidden_size": 4096, "num_attention_heads": 32})", {"max_position_embeddings is missing"});
  ExpectError(R"({"max_position_embeddings": 8192, "hidden_size": 4096})",
              {"num_attention_heads", "missing"});
  ExpectError(R"({"model_type": "gptj", "n_embd": 4096, "n_head": 16})", {"n_positions is missing"});
  ExpectError(R"({"model_type": "deepseek_v3", "max_position_embeddings": 8192})",
              {"qk_rope_head_dim is missing"});
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "linear"})"), {"rope_scaling.factor is missing"});
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8,
                       "high_freq_factor": 4, "original_max_position_embeddings": 8192})"),
              {"rope_scaling.low_freq_factor is missing"});
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8,
                       "high_freq_factor": 4, "low_freq_factor": 1})"),
              {"original_max_position_embeddings is missing"});
  ExpectError(With(R"(, "rope_scaling": {"type": "longrope", "short_factor": [1]})"),
              {"rope_scaling.long_factor is missing"});
  ExpectError(With(R"(, "rope_scaling": {"type": "mrope"})"), {"mrope_section is missing"});
}

TEST(HfConfigErrorTest, WrongTypes) {
  ExpectError(With(R"(, "rope_theta": "big")"), {"rope_theta must be a number, got string"});
  ExpectError(R"({"hidden_size": "4096", "num_attention_heads": 32, "max_position_embeddings": 8192})",
              {"hidden_size must be a number, got string"});
  ExpectError(R"({"head_dim": 128.5, "max_position_embeddings": 8192})",
              {"head_dim must be an integer, got 128.5"});
  ExpectError(With(R"(, "rope_scaling": "linear")"), {"rope_scaling must be an object, got string"});
  ExpectError(With(R"(, "rope_scaling": {"rope_type": 3})"), {"rope_scaling.rope_type must be a string"});
  ExpectError(With(R"(, "rope_scaling": {"type": "longrope", "short_factor": [1, "x"], "long_factor": [1]})"),
              {"rope_scaling.short_factor[1] must be a number, got string"});
  ExpectError(With(R"(, "rope_scaling": {"type": "longrope", "short_factor": 1, "long_factor": [1]})"),
              {"rope_scaling.short_factor must be a list of numbers"});
  ExpectError(With(R"(, "text_config": [])"), {"text_config must be an object, got array"});
  ExpectError(With(R"(, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24.5, 24]})"),
              {"mrope_section[1] must be an integer"});
  ExpectError(With(R"(, "rope_scaling": {"type": "yarn", "factor": 4, "truncate": "yes"})"),
              {"rope_scaling.truncate must be true or false"});
}

TEST(HfConfigErrorTest, UnknownRopeType) {
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "ntk-by-parts", "factor": 2})"),
              {"rope_scaling.rope_type", "'ntk-by-parts'", "not a rope type"});
  ExpectError(With(R"(, "rope_parameters": {"type": "xpos"})"), {"rope_parameters.type", "'xpos'"});
}

TEST(HfConfigErrorTest, ContradictoryFields) {
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "linear", "type": "dynamic", "factor": 2})"),
              {"contradictory", "rope_type = 'linear'", "type = 'dynamic'"});
  ExpectError(With(R"(, "rope_theta": 10000, "rotary_emb_base": 500000)"),
              {"contradictory", "rope_theta = 10000", "rotary_emb_base = 500000"});
  ExpectError(With(R"(, "rope_theta": 10000, "rope_parameters": {"rope_type": "default", "rope_theta": 20000})"),
              {"contradictory", "rope_parameters.rope_theta = 20000"});
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "linear", "factor": 2},
                       "rope_parameters": {"rope_type": "linear", "factor": 4})"),
              {"contradictory", "rope_scaling.factor = 2", "rope_parameters.factor = 4"});
  ExpectError(With(R"(, "rotary_dim": 64, "partial_rotary_factor": 0.25)"),
              {"contradictory", "rotary_dim = 64", "= 32"});
  ExpectError(With(R"(, "partial_rotary_factor": 0.5, "rotary_pct": 0.25)"),
              {"contradictory", "partial_rotary_factor = 0.5", "rotary_pct = 0.25"});
  ExpectError(With(R"(, "original_max_position_embeddings": 4096, "rope_scaling":
                       {"rope_type": "yarn", "factor": 2, "original_max_position_embeddings": 2048})"),
              {"contradictory", "original_max_position_embeddings"});
}

TEST(HfConfigErrorTest, ResultsValidateConfigRejects) {
  ExpectError(With(R"(, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 20]})"),
              {"mrope_section", "rotary_dim / 2 = 64", "sum 60"});
  ExpectError(With(R"(, "rope_scaling": {"type": "mrope", "mrope_section": [32, 32]})"),
              {"mrope_section", "3 entries"});
  ExpectError(With(R"(, "partial_rotary_factor": 1.5)"), {"partial_rotary_factor", "1.5"});
  // int(128 * 0.2578125) = 33: odd.
  ExpectError(With(R"(, "partial_rotary_factor": 0.2578125)"), {"rotary_dim", "33"});
  ExpectError(R"({"head_dim": 128, "max_position_embeddings": 4294967296})", {"max_position"});
  ExpectError(With(R"(, "rope_scaling": {"rope_type": "linear", "factor": 0.5})"), {"scaling.factor"});
}

}  // namespace
}  // namespace rope_jit
