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
#include "rope/kv_cache.h"

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

// What Rope::ApplyAndCacheKvDevice computes, in float64, before the cache's own rounding:
// Q rotated, and the K (rotated) and V (as given) values each cache element holds.
struct ReferenceKvCache {
  std::vector<double> q;        // [tokens, q_heads, head_dim]
  std::vector<double> k_cache;  // num_blocks * block_size * kv_heads * head_dim, in `layout`
  std::vector<double> v_cache;
  std::vector<bool> written;    // per cache element (K and V alike): addressed by a slot
};

// The element index of (block, offset in block, head, dim) in a cache of `layout`.
int64_t ReferenceCacheIndex(KvLayout layout, int64_t block_size, int64_t kv_heads, int64_t head_dim,
                            int64_t block, int64_t offset, int64_t head, int64_t dim);

// q [tokens, q_heads, head_dim], k and v [tokens, kv_heads, head_dim] (contiguous),
// positions as for ReferenceApply, slots one per token: a slot in [0, num_blocks *
// block_size) receives the token's K and V (if two tokens share one, the later wins),
// any other slot nothing. Cache elements never written are 0 with written = false.
// Empty vectors when the shapes disagree (as ReferenceApply).
ReferenceKvCache ReferenceApplyAndCacheKv(const RopeConfig& config, const RopeFrequencies& freqs,
                                          absl::Span<const double> q, absl::Span<const double> k,
                                          absl::Span<const double> v, int tokens, int q_heads,
                                          int kv_heads, absl::Span<const int64_t> positions,
                                          absl::Span<const int64_t> slots, int64_t num_blocks,
                                          int64_t block_size, KvLayout layout);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_REFERENCE_H_
