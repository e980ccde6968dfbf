// The kernel sources, embedded at build time as complete, self-contained texts with a
// build-time hash. They are the single source of truth for JIT and AOT builds.
//
//   ASSIGN_OR_RETURN(const EmbeddedKernelSource* rope, FindKernelSource("rope"));
//   spec.source = rope->text;
//   spec.source_hash = rope->hash;
#ifndef ROPE_JIT_KERNELS_EMBEDDED_H_
#define ROPE_JIT_KERNELS_EMBEDDED_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rope_jit {

struct EmbeddedKernelSource {
  const char* name;        // "rope", "position_embeddings", "rope_kv_cache"
  absl::string_view text;  // includes inlined
  const char* hash;        // XXH3-128 of text, 32 hex chars
};

absl::Span<const EmbeddedKernelSource> EmbeddedKernelSources();

// NotFound listing the known names.
absl::StatusOr<const EmbeddedKernelSource*> FindKernelSource(absl::string_view name);

}  // namespace rope_jit

#endif  // ROPE_JIT_KERNELS_EMBEDDED_H_
