// The float64 CPU oracle for RoPE: the exact semantics the GPU kernels implement,
// computed more precisely than any GPU path can. Accuracy tests compare device output
// with this, never with our own GPU code.
//
//   ASSIGN_OR_RETURN(RopeFrequencies freqs, ComputeFrequencies(config));
//   std::vector<double> expected =
//       ReferenceApply(config, freqs, x, tokens, heads, positions);
//
// Semantics, per token t and head h of x[tokens, heads, head_dim] (contiguous), with
// positions token-major [tokens, position_columns]:
//   for each segment c in [0, config.Segments()), with S = config.SegmentDim():
//     the segment is dims [c*S, (c+1)*S);
//     for each pair j in [0, S/2):
//       p = positions[t * position_columns + k], k = c, or for MRoPE the column HF's
//         apply_multimodal_rotary_pos_emb / apply_interleaved_mrope give frequency j
//       (a, b) = NeoX: (c*S + j, c*S + j + S/2); interleaved: (c*S + 2j, c*S + 2j + 1)
//       cos = attention_factor * cos(p * inv_freq[j]);  sin likewise
//       out[a] = x[a]*cos - x[b]*sin;  out[b] = x[b]*cos + x[a]*sin
//   dims >= rotary_dim are copied unchanged.
//
// The phase p * inv_freq[j] is formed exactly (see reference.cc) and reduced by the C
// library's long double sinl/cosl, so the cos/sin error is ~1e-19 even at p ~ 2^31.
#ifndef ROPE_JIT_ROPE_REFERENCE_H_
#define ROPE_JIT_ROPE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "rope/config.h"

namespace rope_jit {

// Returns the rotated copy of x. It does not call ValidateConfig (so tests may use tiny
// head_dims); it returns an empty vector when the shapes disagree: x.size() !=
// tokens*heads*head_dim, positions.size() != tokens*position_columns, rotary_dim not a
// multiple of 2*Segments() or > head_dim, fewer than S/2 inv_freq entries, or an MRoPE
// config without 3 sections and 3 columns.
std::vector<double> ReferenceApply(const RopeConfig& config, const RopeFrequencies& freqs,
                                   absl::Span<const double> x, int tokens, int heads,
                                   absl::Span<const int64_t> positions);

// cos and sin of position * inv_freq[pair], both times attention_factor. NaN when pair
// is outside inv_freq.
void ReferenceCosSin(const RopeFrequencies& freqs, int64_t position, int pair, double* cos,
                     double* sin);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_REFERENCE_H_
