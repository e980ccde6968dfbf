#include "rope/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kMinHeadDim = 32;
constexpr int kMaxHeadDim = 512;
constexpr int64_t kMaxPositionLimit = int64_t{1} << 31;

// %.17g so that a rejected double is printed exactly as the caller passed it.
std::string Num(double value) { return absl::StrFormat("%.17g", value); }

absl::Status Invalid(const std::string& field, const std::string& requirement,
                     const std::string& got) {
  return absl::InvalidArgumentError(
      absl::StrCat("RopeConfig.", field, " must be ", requirement, ", got ", got));
}

const char* ScalingName(ScalingType type) {
  switch (type) {
    case ScalingType::kDefault: return "default";
    case ScalingType::kLinear: return "linear";
    case ScalingType::kDynamic: return "dynamic";
    case ScalingType::kYarn: return "yarn";
    case ScalingType::kLlama3: return "llama3";
    case ScalingType::kLongrope: return "longrope";
  }
  return "unknown";
}

bool IsKnownScaling(ScalingType type) {
  switch (type) {
    case ScalingType::kDefault:
    case ScalingType::kLinear:
    case ScalingType::kDynamic:
    case ScalingType::kYarn:
    case ScalingType::kLlama3:
    case ScalingType::kLongrope:
      return true;
  }
  return false;
}

absl::Status ValidateFactorList(const std::vector<double>& list, const char* field,
                                int expected_size) {
  if (static_cast<int>(list.size()) != expected_size) {
    return Invalid(absl::StrCat("scaling.", field),
                   absl::StrCat("a list of SegmentDim()/2 = ", expected_size, " entries"),
                   absl::StrCat(list.size(), " entries"));
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (!(std::isfinite(list[i]) && list[i] > 0)) {
      return Invalid(absl::StrCat("scaling.", field, "[", i, "]"), "finite and > 0",
                     Num(list[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateScaling(const RopeConfig& config) {
  const RopeScaling& s = config.scaling;
  if (!IsKnownScaling(s.type)) {
    return Invalid("scaling.type", "a ScalingType", absl::StrCat(static_cast<int>(s.type)));
  }
  if (s.type == ScalingType::kDefault) return absl::OkStatus();  // no parameters read

  const std::string type_name = ScalingName(s.type);
  // Every HF variant that reads `factor` requires >= 1 (a factor below 1 would shrink
  // the context instead of extending it).
  if (!(std::isfinite(s.factor) && s.factor >= 1.0)) {
    return Invalid("scaling.factor", absl::StrCat("finite and >= 1 for ", type_name),
                   Num(s.factor));
  }
  if (s.original_max_position_embeddings < 0) {
    return Invalid("scaling.original_max_position_embeddings", ">= 0",
                   absl::StrCat(s.original_max_position_embeddings));
  }
  const bool needs_original = s.type == ScalingType::kDynamic || s.type == ScalingType::kLlama3;
  if (needs_original && s.original_max_position_embeddings == 0) {
    return Invalid("scaling.original_max_position_embeddings",
                   absl::StrCat("> 0 for ", type_name), "0");
  }
  const bool reads_attention_factor =
      s.type == ScalingType::kYarn || s.type == ScalingType::kLongrope;
  if (reads_attention_factor && s.attention_factor.has_value() &&
      !(std::isfinite(*s.attention_factor) && *s.attention_factor > 0)) {
    return Invalid("scaling.attention_factor", "finite and > 0", Num(*s.attention_factor));
  }

  switch (s.type) {
    case ScalingType::kDynamic:
      // The NTK exponent d/(d-2) needs at least two pairs per segment.
      if (config.SegmentDim() <= 2) {
        return Invalid("rotary_dim", "> 2 * position_columns for dynamic scaling",
                       absl::StrCat(config.EffectiveRotaryDim()));
      }
      break;
    case ScalingType::kYarn:
      // find_correction_dim divides by ln(theta) and takes ln(orig / (beta * 2 pi)).
      if (!(config.theta > 1.0)) {
        return Invalid("theta", "> 1 for yarn", Num(config.theta));
      }
      if (!(std::isfinite(s.beta_fast) && s.beta_fast > 0)) {
        return Invalid("scaling.beta_fast", "finite and > 0", Num(s.beta_fast));
      }
      if (!(std::isfinite(s.beta_slow) && s.beta_slow > 0)) {
        return Invalid("scaling.beta_slow", "finite and > 0", Num(s.beta_slow));
      }
      // Non-negative mscales keep get_mscale() >= 1, so the ratio is finite and > 0.
      if (s.mscale.has_value() && !(std::isfinite(*s.mscale) && *s.mscale >= 0)) {
        return Invalid("scaling.mscale", "finite and >= 0", Num(*s.mscale));
      }
      if (s.mscale_all_dim.has_value() &&
          !(std::isfinite(*s.mscale_all_dim) && *s.mscale_all_dim >= 0)) {
        return Invalid("scaling.mscale_all_dim", "finite and >= 0", Num(*s.mscale_all_dim));
      }
      break;
    case ScalingType::kLlama3:
      if (!(std::isfinite(s.low_freq_factor) && s.low_freq_factor > 0)) {
        return Invalid("scaling.low_freq_factor", "finite and > 0", Num(s.low_freq_factor));
      }
      // The smoothing divides by (high - low).
      if (!(std::isfinite(s.high_freq_factor) && s.high_freq_factor > s.low_freq_factor)) {
        return Invalid("scaling.high_freq_factor",
                       absl::StrCat("finite and > low_freq_factor (", Num(s.low_freq_factor), ")"),
                       Num(s.high_freq_factor));
      }
      break;
    case ScalingType::kLongrope: {
      const int pairs = config.SegmentDim() / 2;
      if (absl::Status st = ValidateFactorList(s.short_factor, "short_factor", pairs); !st.ok()) {
        return st;
      }
      if (absl::Status st = ValidateFactorList(s.long_factor, "long_factor", pairs); !st.ok()) {
        return st;
      }
      // The default attention factor divides by ln(original context).
      const int64_t original = s.original_max_position_embeddings > 0
                                   ? s.original_max_position_embeddings
                                   : config.max_position;
      if (!s.attention_factor.has_value() && s.factor > 1.0 && original < 2) {
        return Invalid("scaling.original_max_position_embeddings",
                       ">= 2 when longrope computes the attention factor",
                       absl::StrCat(original));
      }
      break;
    }
    default:
      break;
  }
  return absl::OkStatus();
}

// HF _compute_default_rope_parameters: inv_freq[i] = 1 / base^(2i/d), i in [0, d/2).
std::vector<double> DefaultInvFreq(double base, int dim) {
  std::vector<double> inv_freq(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    inv_freq[i] = 1.0 / std::pow(base, (2.0 * i) / dim);
  }
  return inv_freq;
}

// HF yarn's get_mscale: the attention temperature YaRN suggests for a context factor.
double YarnMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// HF yarn's find_correction_dim: the (pair-index-scaled) dimension whose wavelength
// completes `rotations` turns over the original context.
double YarnCorrectionDim(double rotations, int dim, double base, double original) {
  return (dim * std::log(original / (rotations * 2.0 * kPi))) / (2.0 * std::log(base));
}

RopeFrequencies ComputeYarn(const RopeConfig& config) {
  const RopeScaling& s = config.scaling;
  const int dim = config.SegmentDim();
  const double base = config.theta;
  const double factor = s.factor;
  const double original = static_cast<double>(
      s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                             : config.max_position);

  RopeFrequencies result;
  if (s.attention_factor.has_value()) {
    result.attention_factor = *s.attention_factor;
  } else if (s.mscale.value_or(0.0) != 0.0 && s.mscale_all_dim.value_or(0.0) != 0.0) {
    // Python truthiness in HF (`if mscale and mscale_all_dim`): unset or zero means off.
    result.attention_factor =
        YarnMscale(factor, *s.mscale) / YarnMscale(factor, *s.mscale_all_dim);
  } else {
    result.attention_factor = YarnMscale(factor, 1.0);
  }

  double low = YarnCorrectionDim(s.beta_fast, dim, base, original);
  double high = YarnCorrectionDim(s.beta_slow, dim, base, original);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // HF's guard against a zero-width ramp

  result.inv_freq.resize(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    const double pos_freq = std::pow(base, (2.0 * i) / dim);
    const double extrapolation = 1.0 / pos_freq;
    const double interpolation = 1.0 / (factor * pos_freq);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    result.inv_freq[i] = interpolation * (1.0 - extrapolation_weight) +
                         extrapolation * extrapolation_weight;
  }
  return result;
}

RopeFrequencies ComputeLlama3(const RopeConfig& config) {
  const RopeScaling& s = config.scaling;
  const double original = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = original / s.low_freq_factor;
  const double high_freq_wavelen = original / s.high_freq_factor;

  RopeFrequencies result;
  result.inv_freq = DefaultInvFreq(config.theta, config.SegmentDim());
  for (double& inv_freq : result.inv_freq) {
    const double wavelen = 2.0 * kPi / inv_freq;
    if (wavelen < high_freq_wavelen) continue;  // high frequency: kept
    if (wavelen > low_freq_wavelen) {           // low frequency: fully interpolated
      inv_freq /= s.factor;
      continue;
    }
    const double smooth =
        (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    inv_freq = (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;
  }
  return result;
}

int64_t LongropeOriginal(const RopeConfig& config) {
  const RopeScaling& s = config.scaling;
  return s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                                : config.max_position;
}

// HF picks the list by the sequence length: long when it exceeds the original context.
// kForMaxPosition evaluates that rule at max_position.
bool UsesLongFactors(const RopeConfig& config, LongropeFactors factors) {
  switch (factors) {
    case LongropeFactors::kShort: return false;
    case LongropeFactors::kLong: return true;
    case LongropeFactors::kForMaxPosition: break;
  }
  return config.max_position > LongropeOriginal(config);
}

RopeFrequencies ComputeLongrope(const RopeConfig& config, LongropeFactors factors) {
  const RopeScaling& s = config.scaling;
  const int dim = config.SegmentDim();
  const int64_t original = LongropeOriginal(config);
  const std::vector<double>& ext = UsesLongFactors(config, factors) ? s.long_factor : s.short_factor;

  RopeFrequencies result;
  if (s.attention_factor.has_value()) {
    result.attention_factor = *s.attention_factor;
  } else if (s.factor <= 1.0) {
    result.attention_factor = 1.0;
  } else {
    result.attention_factor =
        std::sqrt(1.0 + std::log(s.factor) / std::log(static_cast<double>(original)));
  }
  result.inv_freq.resize(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    result.inv_freq[i] = 1.0 / (ext[i] * std::pow(config.theta, (2.0 * i) / dim));
  }
  return result;
}

absl::Status ValidateMrope(const RopeConfig& config) {
  if (!config.IsMrope()) {
    if (config.position_columns == 3) {
      return Invalid("position_columns", "1 or 2 without mrope_section (3 is MRoPE)", "3");
    }
    return absl::OkStatus();
  }
  const std::vector<int>& section = config.mrope_section;
  if (section.size() != 3) {
    return Invalid("mrope_section", "3 entries (temporal, height, width)",
                   absl::StrCat(section.size(), " entries"));
  }
  if (config.position_columns != 3) {
    return Invalid("position_columns", "3 with mrope_section",
                   absl::StrCat(config.position_columns));
  }
  int64_t sum = 0;
  for (size_t c = 0; c < section.size(); ++c) {
    if (section[c] < 0) {
      return Invalid(absl::StrCat("mrope_section[", c, "]"), ">= 0", absl::StrCat(section[c]));
    }
    sum += section[c];
  }
  const int pairs = config.EffectiveRotaryDim() / 2;
  if (sum != pairs) {
    return Invalid("mrope_section",
                   absl::StrCat("entries summing to rotary_dim / 2 = ", pairs),
                   absl::StrCat(section[0], ", ", section[1], ", ", section[2], " (sum ", sum, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

int RopeConfig::MropeColumn(int pair) const {
  if (!IsMrope() || mrope_section.size() != 3) return 0;
  const int s0 = mrope_section[0], s1 = mrope_section[1], s2 = mrope_section[2];
  if (mrope_interleaved) {
    if (pair % 3 == 1 && pair < 3 * s1) return 1;
    if (pair % 3 == 2 && pair < 3 * s2) return 2;
    return 0;
  }
  if (pair < s0) return 0;
  return pair < s0 + s1 ? 1 : 2;
}

const char* StyleName(RopeStyle style) {
  switch (style) {
    case RopeStyle::kNeox: return "neox";
    case RopeStyle::kInterleaved: return "interleaved";
  }
  return "unknown";
}

absl::StatusOr<DType> ParseDType(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "f16" || lower == "fp16" || lower == "half" || lower == "float16") return DType::kF16;
  if (lower == "bf16" || lower == "bfloat16") return DType::kBF16;
  if (lower == "f32" || lower == "fp32" || lower == "float" || lower == "float32") return DType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", text, "'; the kernels support f16, bf16 and f32"));
}

absl::StatusOr<RopeStyle> ParseStyle(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "neox" || lower == "rotate_half") return RopeStyle::kNeox;
  if (lower == "interleaved" || lower == "gptj") return RopeStyle::kInterleaved;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown style '", text, "'; expected neox (rotate-half) or interleaved (GPT-J)"));
}

RopeConfig RopeConfig::Glm(int head_dim, DType dtype, int64_t max_position, double theta) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dim = head_dim / 2;
  config.theta = theta;
  config.style = RopeStyle::kInterleaved;
  config.dtype = dtype;
  config.max_position = max_position;
  return config;
}

RopeConfig RopeConfig::ChatGlmV1(int head_dim, DType dtype, int64_t max_position) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dim = head_dim;
  config.theta = 10000.0;
  config.style = RopeStyle::kNeox;
  config.dtype = dtype;
  config.max_position = max_position;
  config.position_columns = 2;
  return config;
}

namespace {

// The inputs, field by field.
absl::Status ValidateFields(const RopeConfig& config) {
  if (config.head_dim < kMinHeadDim || config.head_dim > kMaxHeadDim || config.head_dim % 2 != 0) {
    return Invalid("head_dim", absl::StrCat("even and in [", kMinHeadDim, ", ", kMaxHeadDim, "]"),
                   absl::StrCat(config.head_dim));
  }
  if (config.position_columns < 1 || config.position_columns > 3) {
    return Invalid("position_columns", "1, 2 or 3", absl::StrCat(config.position_columns));
  }
  if (config.rotary_dim < 0 || config.rotary_dim > config.head_dim) {
    return Invalid("rotary_dim", absl::StrCat("in [0, head_dim = ", config.head_dim, "] (0 means head_dim)"),
                   absl::StrCat(config.rotary_dim));
  }
  RETURN_IF_ERROR(ValidateMrope(config));
  const int rotary = config.EffectiveRotaryDim();
  // Each segment rotates whole pairs of its own.
  if (rotary % (2 * config.Segments()) != 0) {
    return Invalid("rotary_dim",
                   absl::StrCat("divisible by 2 * position_columns = ", 2 * config.Segments()),
                   absl::StrCat(rotary));
  }
  if (!(std::isfinite(config.theta) && config.theta > 0)) {
    return Invalid("theta", "finite and > 0", Num(config.theta));
  }
  if (config.max_position < 1 || config.max_position >= kMaxPositionLimit) {
    return Invalid("max_position", "in [1, 2^31)", absl::StrCat(config.max_position));
  }
  if (config.dtype != DType::kF32 && config.dtype != DType::kF16 && config.dtype != DType::kBF16) {
    return Invalid("dtype", "f32, f16 or bf16", absl::StrCat(static_cast<int>(config.dtype)));
  }
  if (config.style != RopeStyle::kNeox && config.style != RopeStyle::kInterleaved) {
    return Invalid("style", "neox or interleaved", absl::StrCat(static_cast<int>(config.style)));
  }
  return ValidateScaling(config);
}

// What the kernels need of ComputeFrequencies' result: inputs that pass every field
// check can still overflow or underflow on the way (a tiny theta or longrope factor, a
// huge yarn mscale).
absl::Status ValidateFrequencies(const RopeConfig& config, const RopeFrequencies& freqs) {
  // The kernels scale cos and sin by the attention factor as a float; a float subnormal
  // would already have lost bits.
  const double factor = freqs.attention_factor;
  if (!(std::isfinite(factor) && factor >= std::numeric_limits<float>::min() &&
        factor <= std::numeric_limits<float>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RopeConfig gives attention factor ", Num(factor), ", which is not a positive normal float ",
        "(check scaling.attention_factor, scaling.mscale, scaling.mscale_all_dim)"));
  }
  // kernels/rope.hip reduces pos * inv_freq to a quarter turn with the 1.5 * 2^52
  // rounding trick, exact while the number of quarter turns stays well below 2^51.
  constexpr double kMaxQuarterTurns = 1125899906842624.0;  // 2^50
  const double max_position = static_cast<double>(config.max_position);
  for (size_t i = 0; i < freqs.inv_freq.size(); ++i) {
    const double inv_freq = freqs.inv_freq[i];
    if (!(std::isfinite(inv_freq) && inv_freq > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RopeConfig gives inv_freq[", i, "] = ", Num(inv_freq),
          ", which is not finite and > 0 (check theta, scaling.factor and the factor lists)"));
    }
    if (max_position * inv_freq * (2.0 / kPi) >= kMaxQuarterTurns) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RopeConfig gives inv_freq[", i, "] = ", Num(inv_freq), ": max_position ",
          config.max_position, " times it is past the phase range the kernels reduce exactly ",
          "(2^50 quarter turns); check theta"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateConfig(const RopeConfig& config) {
  return ComputeFrequencies(config).status();
}

absl::StatusOr<RopeFrequencies> ComputeFrequencies(const RopeConfig& config) {
  if (absl::Status status = ValidateFields(config); !status.ok()) return status;
  const RopeScaling& s = config.scaling;
  const int dim = config.SegmentDim();

  RopeFrequencies result;
  switch (s.type) {
    case ScalingType::kDefault:
      result.inv_freq = DefaultInvFreq(config.theta, dim);
      break;
    case ScalingType::kLinear:
      result.inv_freq = DefaultInvFreq(config.theta, dim);
      for (double& inv_freq : result.inv_freq) inv_freq /= s.factor;
      break;
    case ScalingType::kDynamic: {
      // HF evaluates NTK at the current sequence length; the table is built once, so
      // that length is max_position. At or below the original context it is a no-op.
      double base = config.theta;
      const double original = static_cast<double>(s.original_max_position_embeddings);
      const double seq_len = static_cast<double>(config.max_position);
      if (config.max_position > s.original_max_position_embeddings) {
        base *= std::pow(s.factor * seq_len / original - (s.factor - 1.0),
                         static_cast<double>(dim) / (dim - 2));
      }
      result.inv_freq = DefaultInvFreq(base, dim);
      break;
    }
    case ScalingType::kYarn:
      result = ComputeYarn(config);
      break;
    case ScalingType::kLlama3:
      result = ComputeLlama3(config);
      break;
    case ScalingType::kLongrope:
      result = ComputeLongrope(config, LongropeFactors::kForMaxPosition);
      break;
  }
  if (absl::Status status = ValidateFrequencies(config, result); !status.ok()) return status;
  return result;
}

LongropeFactors LongropeFactorsForSequence(const RopeConfig& config, int64_t seq_len) {
  return seq_len > LongropeOriginal(config) ? LongropeFactors::kLong : LongropeFactors::kShort;
}

absl::StatusOr<RopeFrequencies> ComputeFrequencies(const RopeConfig& config,
                                                   LongropeFactors factors) {
  if (config.scaling.type != ScalingType::kLongrope || factors == LongropeFactors::kForMaxPosition) {
    return ComputeFrequencies(config);
  }
  RETURN_IF_ERROR(ValidateConfig(config));
  return ComputeLongrope(config, factors);
}

}  // namespace rope_jit
