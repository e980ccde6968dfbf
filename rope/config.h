// What a model's RoPE is: dimensions, pairing style, storage dtype and the frequency
// scaling variant, with Hugging Face `rope_scaling` semantics.
//
//   RopeConfig config;
//   config.head_dim = 128;
//   config.theta = 500000;
//   config.dtype = DType::kBF16;
//   config.max_position = 131072;
//   config.scaling.type = ScalingType::kLlama3;
//   config.scaling.factor = 8;
//   config.scaling.original_max_position_embeddings = 8192;
//   ASSIGN_OR_RETURN(RopeFrequencies freqs, ComputeFrequencies(config));  // float64
#ifndef ROPE_JIT_ROPE_CONFIG_H_
#define ROPE_JIT_ROPE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rope/dtype.h"

namespace rope_jit {

// kNeox pairs (x[i], x[i + rot/2]) (rotate-half); kInterleaved pairs (x[2i], x[2i+1])
// (GPT-J, GLM).
enum class RopeStyle { kNeox = 0, kInterleaved = 1 };
const char* StyleName(RopeStyle style);  // "neox", "interleaved"

// The spellings every tool, manifest and AOT config accepts, case-insensitive: DTypeName's
// and StyleName's, and the common aliases fp16/half/float16, bfloat16, fp32/float/float32,
// rotate_half, gptj. InvalidArgument naming the text and what is accepted otherwise.
absl::StatusOr<DType> ParseDType(absl::string_view text);
absl::StatusOr<RopeStyle> ParseStyle(absl::string_view text);

enum class ScalingType { kDefault, kLinear, kDynamic, kYarn, kLlama3, kLongrope };

// Which longrope factor list a computation or an apply uses. kForMaxPosition: the list HF
// picks for a sequence of RopeConfig::max_position tokens (long when max_position >
// original_max_position_embeddings). kShort / kLong: that list. Ignored by other variants.
enum class LongropeFactors { kForMaxPosition = 0, kShort = 1, kLong = 2 };

// Hugging Face `rope_scaling` parameters. d below is RopeConfig::SegmentDim().
//
// `factor` is used exactly as given. Recent transformers versions recompute it for yarn
// and longrope as max_position_embeddings / original_max_position_embeddings when the
// latter is present; a caller that wants that behaviour passes the ratio as `factor`
// (RopeConfigFromHfConfig in rope/hf_config.h does).
//
// Sequence-length-dependent variants:
// - dynamic (NTK) is evaluated once, at seq_len = RopeConfig::max_position, as vLLM does;
//   HF re-evaluates it as the sequence grows, so outputs match HF for sequences of
//   max_position tokens (and for any length when max_position <= the original context).
// - longrope: HF uses long_factor when the sequence is longer than
//   original_max_position_embeddings, else short_factor. A Rope keeps both tables on the
//   device and each apply picks one (ApplyOptions::longrope in rope/rope.h); the default
//   is the list for seq_len = max_position, as ComputeFrequencies returns.
// original_max_position_embeddings: required (> 0) for dynamic and llama3; for yarn and
// longrope 0 means RopeConfig::max_position, as HF falls back to max_position_embeddings.
struct RopeScaling {
  ScalingType type = ScalingType::kDefault;
  double factor = 1.0;  // linear, dynamic, yarn, llama3, longrope
  // yarn and longrope: overrides the computed attention factor when set.
  std::optional<double> attention_factor;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;
  // dynamic, yarn, llama3, longrope: the model's pre-scaling context length.
  int64_t original_max_position_embeddings = 0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // longrope: SegmentDim()/2 entries each.
  std::vector<double> short_factor;
  std::vector<double> long_factor;
};

struct RopeConfig {
  int head_dim = 128;
  int rotary_dim = 0;  // 0 means head_dim; must be even and <= head_dim
  double theta = 10000.0;
  RopeStyle style = RopeStyle::kNeox;
  DType dtype = DType::kBF16;
  // Positions must be < max_position. Also the sequence length that dynamic NTK and
  // longrope evaluate their formulas at (fixed at Create, as vLLM does).
  int64_t max_position = 8192;
  RopeScaling scaling;
  // Positions per token.
  //  1: one position per token.
  //  2: ChatGLM-6B (v1) 2D positions: the rotary part is split in two halves (segments);
  //     half c is rotated (in `style` pairing within the half) by position column c.
  //  3: MRoPE (mrope_section must be set): one frequency table over the whole rotary part,
  //     each frequency rotated by the position column its section names.
  int position_columns = 1;
  // MRoPE, Hugging Face semantics (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): pairs per position
  // column (temporal, height, width), summing to rotary_dim / 2, e.g. {16, 24, 24} for
  // head_dim 128. Empty: no MRoPE. Frequency j (j in [0, rotary_dim/2)) uses column
  //   contiguous (Qwen2-VL, 2.5-VL; HF apply_multimodal_rotary_pos_emb): 0 for j < s0,
  //     1 for s0 <= j < s0 + s1, 2 after;
  //   interleaved (Qwen3-VL; HF apply_interleaved_mrope): 1 when j % 3 == 1 and
  //     j < 3 * s1, 2 when j % 3 == 2 and j < 3 * s2, else 0.
  // A token whose three positions are equal is rotated exactly as in 1D RoPE.
  std::vector<int> mrope_section;
  bool mrope_interleaved = false;

  int EffectiveRotaryDim() const { return rotary_dim == 0 ? head_dim : rotary_dim; }
  bool IsMrope() const { return !mrope_section.empty(); }
  // Parts of the rotary dims with their own frequency table: ChatGLM-v1's halves; one
  // otherwise (MRoPE too: its columns share one table).
  int Segments() const { return IsMrope() ? 1 : position_columns; }
  // Width of one segment.
  int SegmentDim() const { return EffectiveRotaryDim() / Segments(); }
  // MRoPE: the position column frequency `pair` is rotated by; 0 without MRoPE.
  int MropeColumn(int pair) const;

  // GLM-2/3/4: rotary_dim = head_dim/2, interleaved pairs.
  static RopeConfig Glm(int head_dim, DType dtype, int64_t max_position, double theta = 10000.0);
  // ChatGLM-6B v1: 2D positions, NeoX pairing within each half of the head.
  static RopeConfig ChatGlmV1(int head_dim, DType dtype, int64_t max_position);
};

// InvalidArgument naming the offending field: head_dim even in [32, 512], rotary_dim
// even, > 0, <= head_dim, divisible by 2 * Segments(); position_columns 1, 2 or 3 (3 with
// and only with mrope_section: 3 entries >= 0 summing to rotary_dim / 2); theta > 0;
// max_position in [1, 2^31); scaling parameters in range; longrope factor lists of
// SegmentDim()/2. Then what ComputeFrequencies makes of them: every inv_freq finite and
// > 0 with max_position * inv_freq in the kernels' exact phase range, and an attention
// factor that is a positive normal float.
absl::Status ValidateConfig(const RopeConfig& config);

// The float64 result of the scaling variant: one inverse frequency per pair of a
// segment (SegmentDim()/2 entries), and the factor that scales both cos and sin.
struct RopeFrequencies {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;
};

absl::StatusOr<RopeFrequencies> ComputeFrequencies(const RopeConfig& config);

// HF's longrope rule for a sequence of `seq_len` tokens (its largest position + 1): kLong
// when seq_len > original_max_position_embeddings (0 there: max_position), else kShort.
LongropeFactors LongropeFactorsForSequence(const RopeConfig& config, int64_t seq_len);

// ComputeFrequencies with the longrope list chosen explicitly (the same as
// ComputeFrequencies for other variants and for kForMaxPosition).
absl::StatusOr<RopeFrequencies> ComputeFrequencies(const RopeConfig& config,
                                                   LongropeFactors factors);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_CONFIG_H_
