// RopeConfig straight from a Hugging Face config.json, with transformers' semantics, so
// that integrators do not re-derive rotary_dim, the scaling variant or the pairing style
// by hand.
//
//   ASSIGN_OR_RETURN(std::string text, ReadFile(model_dir + "/config.json"));
//   ASSIGN_OR_RETURN(RopeConfig config, RopeConfigFromHfConfig(text, DType::kBF16));
//   ASSIGN_OR_RETURN(std::unique_ptr<Rope> rope, Rope::Create(config, runtime, 0));
//
//   // Gemma-3: full and sliding layers have their own RoPE parameters.
//   for (const std::string& type : HfConfigLayerTypes(text).value())   // full_attention, ...
//     RopeConfigFromHfConfig(text, DType::kBF16, type);
//
// What is read (transformers 4 and 5 spellings; a VLM's `text_config` is read when present):
// - head_dim: `head_dim`, else hidden_size / num_attention_heads (GPT-J: n_embd / n_head;
//   ChatGLM: kv_channels; DeepSeek-V2/V3: qk_rope_head_dim, the rotated slice of MLA).
// - rotary_dim: `rotary_dim` (GPT-J), else int(head_dim * partial_rotary_factor) (also
//   inside rope_parameters; GPT-NeoX: rotary_pct); ChatGLM-2/3, GLM-4: head_dim / 2.
// - theta: rope_parameters.rope_theta, rope_theta (GPT-NeoX: rotary_emb_base; ChatGLM:
//   10000 * rope_ratio; Gemma-3 sliding layers: rope_local_base_freq); default 10000.
// - max_position: max_position_embeddings (ChatGLM: seq_length, ChatGLM-6B v1:
//   max_sequence_length; GPT-J: n_positions). Set config.max_position afterwards to serve
//   another length; dynamic NTK is evaluated at it (rope/config.h).
// - scaling: rope_parameters (transformers 5) or rope_scaling (4), `rope_type` or legacy
//   `type`: default, linear, dynamic, yarn, longrope ("su" is its old name), llama3, and
//   "mrope" (= default; Qwen2-VL). yarn and longrope without `factor` take
//   max_position_embeddings / original_max_position_embeddings, as transformers does
//   (transformers 4.45-4.5x also replaced a given yarn factor by that ratio; the two agree
//   for DeepSeek-V3, 163840 / 4096 = 40). longrope reads original_max_position_embeddings
//   from the block or, as Phi-3 writes it, the top level.
// - MRoPE: mrope_section (and mrope_interleaved, Qwen3-VL) inside the scaling block.
// - ChatGLM-6B v1 (`position_encoding_2d`): RopeConfig::ChatGlmV1's 2D positions.
//
// Pairing style by model_type (a file without one, as ChatGLM2/3's, is "chatglm" when an
// architecture name starts with ChatGLM), from each model's Hugging Face modeling code: interleaved
// pairs (x[2i], x[2i+1]) for gptj and codegen (rotate_every_two), chatglm (ChatGLM-2/3,
// GLM-4 remote code: x.reshape(..., rot_dim // 2, 2)), glm and glm4 (interleaved
// rotate_half), deepseek_v2 and deepseek_v3 (q/k_pe viewed as (d/2, 2) pairs), llama4 and
// llama4_text (view_as_complex over pairs), cohere and cohere2 (x[..., ::2] / x[..., 1::2]);
// ChatGLM-6B v1 rotates NeoX-style within each half. Every other model_type, including
// llama, mistral, qwen2/3(-VL), phi/phi3, gemma/gemma3, gpt_neox: NeoX rotate-half
// (x[i], x[i + rotary_dim/2]).
//
// Every error is InvalidArgument naming the field: not JSON or not an object (with the
// parser's position), a missing required field, a field of the wrong JSON type, an
// unknown rope type, contradictory fields (rope_type vs type, rope_theta vs
// rotary_emb_base, rotary_dim vs partial_rotary_factor, ...), and whatever ValidateConfig
// rejects in the result. Nothing throws.
#ifndef ROPE_JIT_ROPE_HF_CONFIG_H_
#define ROPE_JIT_ROPE_HF_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rope/config.h"

namespace rope_jit {

// `layer_type` picks the parameters of one layer type ("full_attention",
// "sliding_attention") of a config that has per-layer-type RoPE (transformers 5
// rope_parameters keyed by layer type; Gemma-3's rope_local_base_freq); such a config
// without one is an error listing the types. Ignored when the config has one set.
absl::StatusOr<RopeConfig> RopeConfigFromHfConfig(absl::string_view config_json, DType dtype,
                                                  absl::string_view layer_type = "");

// The layer types with RoPE parameters of their own, in a stable order; empty when one
// set serves every layer.
absl::StatusOr<std::vector<std::string>> HfConfigLayerTypes(absl::string_view config_json);

// The model's storage dtype (`torch_dtype`, or `dtype` in transformers 5) when it is one
// the kernels support; nullopt when absent or another type (e.g. float8).
absl::StatusOr<std::optional<DType>> HfConfigDType(absl::string_view config_json);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_HF_CONFIG_H_
