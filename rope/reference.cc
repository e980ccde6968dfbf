#include "rope/reference.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace rope_jit {
namespace {

struct CosSin {
  long double cos;
  long double sin;
};

// Splits a double into a head with at most 27 significant bits and the exact remainder
// (at most 26 bits), by clearing the low 26 stored significand bits.
void SplitDouble(double value, double* head, double* tail) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  bits &= ~((uint64_t{1} << 26) - 1);
  std::memcpy(head, &bits, sizeof(bits));
  *tail = value - *head;  // exact: the cleared bits
}

// attention_factor * (cos, sin) of position * inv_freq.
//
// A plain long double product position * inv_freq keeps 64 significant bits of an up to
// 84-bit result: about 1e-10 rad of phase error at position 2^31. Splitting inv_freq
// makes both partial products exact in the 64-bit significand for |position| < 2^37,
// and the angle-addition formula combines them without ever forming the rounded sum.
CosSin PhaseCosSin(int64_t position, double inv_freq, double attention_factor) {
  double head, tail;
  SplitDouble(inv_freq, &head, &tail);
  const long double p = static_cast<long double>(position);
  const long double big = p * head;    // exact
  const long double small = p * tail;  // exact, |small| <= |big| * 2^-26
  const long double cos_big = cosl(big), sin_big = sinl(big);
  const long double cos_small = cosl(small), sin_small = sinl(small);
  const long double scale = attention_factor;
  return {scale * (cos_big * cos_small - sin_big * sin_small),
          scale * (sin_big * cos_small + cos_big * sin_small)};
}

// The position column of each frequency, built the way Hugging Face builds it (rather than
// by RopeConfig::MropeColumn's closed form, which the kernels mirror):
// apply_multimodal_rotary_pos_emb splits the frequencies into chunks of mrope_section and
// takes chunk i from column i; apply_interleaved_mrope starts from column 0 everywhere and
// overwrites freqs[..., offset : 3 * section[dim] : 3] with column dim (offset = dim) for
// dim 1 and 2.
std::vector<int> HfMropeColumns(const RopeConfig& config, int pairs) {
  std::vector<int> columns(pairs, 0);
  if (!config.IsMrope()) return columns;
  const std::vector<int>& section = config.mrope_section;
  if (config.mrope_interleaved) {
    for (int dim = 1; dim <= 2 && dim < static_cast<int>(section.size()); ++dim) {
      for (int j = dim; j < 3 * section[dim] && j < pairs; j += 3) columns[j] = dim;
    }
    return columns;
  }
  int j = 0;
  for (int chunk = 0; chunk < static_cast<int>(section.size()); ++chunk) {
    for (int k = 0; k < section[chunk] && j < pairs; ++k) columns[j++] = chunk;
  }
  return columns;
}

}  // namespace

void ReferenceCosSin(const RopeFrequencies& freqs, int64_t position, int pair, double* cos,
                     double* sin) {
  if (pair < 0 || pair >= static_cast<int>(freqs.inv_freq.size())) {
    *cos = *sin = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  const CosSin cs = PhaseCosSin(position, freqs.inv_freq[pair], freqs.attention_factor);
  *cos = static_cast<double>(cs.cos);
  *sin = static_cast<double>(cs.sin);
}

std::vector<double> ReferenceApply(const RopeConfig& config, const RopeFrequencies& freqs,
                                   absl::Span<const double> x, int tokens, int heads,
                                   absl::Span<const int64_t> positions) {
  const int head_dim = config.head_dim;
  const int columns = config.position_columns;
  const int segments = config.Segments();
  const int rotary = config.EffectiveRotaryDim();
  if (tokens < 0 || heads < 0 || head_dim <= 0 || columns < 1 || segments < 1 || rotary <= 0 ||
      rotary > head_dim || rotary % (2 * segments) != 0) {
    return {};
  }
  if (config.IsMrope() && (config.mrope_section.size() != 3 || columns != 3)) return {};
  const int segment = config.SegmentDim();
  const int pairs = segment / 2;
  if (x.size() != static_cast<size_t>(tokens) * heads * head_dim ||
      positions.size() != static_cast<size_t>(tokens) * columns ||
      freqs.inv_freq.size() < static_cast<size_t>(pairs)) {
    return {};
  }

  const std::vector<int> mrope_columns = HfMropeColumns(config, pairs);
  std::vector<double> out(x.begin(), x.end());  // pass-through dims stay bit-identical
  for (int t = 0; t < tokens; ++t) {
    for (int c = 0; c < segments; ++c) {
      for (int j = 0; j < pairs; ++j) {
        const int column = config.IsMrope() ? mrope_columns[j] : c;
        const int64_t position = positions[static_cast<size_t>(t) * columns + column];
        const CosSin cs = PhaseCosSin(position, freqs.inv_freq[j], freqs.attention_factor);
        const int a = c * segment + (config.style == RopeStyle::kNeox ? j : 2 * j);
        const int b = config.style == RopeStyle::kNeox ? a + pairs : a + 1;
        for (int h = 0; h < heads; ++h) {
          const size_t row = (static_cast<size_t>(t) * heads + h) * head_dim;
          const long double xa = x[row + a];
          const long double xb = x[row + b];
          out[row + a] = static_cast<double>(xa * cs.cos - xb * cs.sin);
          out[row + b] = static_cast<double>(xb * cs.cos + xa * cs.sin);
        }
      }
    }
  }
  return out;
}

int64_t ReferenceCacheIndex(KvLayout layout, int64_t block_size, int64_t kv_heads, int64_t head_dim,
                            int64_t block, int64_t offset, int64_t head, int64_t dim) {
  if (layout == KvLayout::kNHD) return ((block * block_size + offset) * kv_heads + head) * head_dim + dim;
  return ((block * kv_heads + head) * block_size + offset) * head_dim + dim;
}

ReferenceKvCache ReferenceApplyAndCacheKv(const RopeConfig& config, const RopeFrequencies& freqs,
                                          absl::Span<const double> q, absl::Span<const double> k,
                                          absl::Span<const double> v, int tokens, int q_heads,
                                          int kv_heads, absl::Span<const int64_t> positions,
                                          absl::Span<const int64_t> slots, int64_t num_blocks,
                                          int64_t block_size, KvLayout layout) {
  ReferenceKvCache result;
  const int64_t head_dim = config.head_dim;
  if (num_blocks < 0 || block_size < 1 || kv_heads < 0 || slots.size() != static_cast<size_t>(tokens) ||
      v.size() != k.size()) {
    return result;
  }
  std::vector<double> q_rotated = ReferenceApply(config, freqs, q, tokens, q_heads, positions);
  std::vector<double> k_rotated = ReferenceApply(config, freqs, k, tokens, kv_heads, positions);
  if (q_rotated.size() != q.size() || k_rotated.size() != k.size()) return result;

  const size_t cache_elements = static_cast<size_t>(num_blocks * block_size * kv_heads * head_dim);
  result.q = std::move(q_rotated);
  result.k_cache.assign(cache_elements, 0.0);
  result.v_cache.assign(cache_elements, 0.0);
  result.written.assign(cache_elements, false);
  for (int t = 0; t < tokens; ++t) {
    const int64_t slot = slots[t];
    if (slot < 0 || slot >= num_blocks * block_size) continue;
    for (int h = 0; h < kv_heads; ++h) {
      for (int64_t d = 0; d < head_dim; ++d) {
        const size_t at = static_cast<size_t>(ReferenceCacheIndex(
            layout, block_size, kv_heads, head_dim, slot / block_size, slot % block_size, h, d));
        const size_t from = (static_cast<size_t>(t) * kv_heads + h) * head_dim + d;
        result.k_cache[at] = k_rotated[from];
        result.v_cache[at] = v[from];
        result.written[at] = true;
      }
    }
  }
  return result;
}

}  // namespace rope_jit
