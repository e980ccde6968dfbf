// What to compile: a kernel source, its baked parameters and a target; and the cache key
// that names the result.
//
//   KernelSpec spec{"rope", source->text, source->hash, {"ROPE_HEAD_DIM=128", ...}, "sm_90"};
//   CacheKey key = MakeCacheKey(spec, compiler->Identity().value(), compiler->Options("sm_90"));
//
// The key covers everything that changes the code object's bytes: kernel name, source
// hash, every baked parameter, the full target id, the compiler's identity by content,
// the exact options and the cache format version. It is XXH3-128 of a canonical text,
// so it is the same in every process and on every machine.
#ifndef ROPE_JIT_JIT_KERNEL_SPEC_H_
#define ROPE_JIT_JIT_KERNEL_SPEC_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "jit/cache_entry.h"

namespace rope_jit {

struct KernelSpec {
  std::string kernel;               // "rope", "position_embeddings"
  absl::string_view source;         // complete translation unit; must outlive the spec's use
  std::string source_hash;          // hex; computed at build time for embedded sources
  std::vector<std::string> defines; // baked parameters, "NAME=VALUE", in a fixed order
  std::string target;               // full target id
};

CacheKey MakeCacheKey(const KernelSpec& spec, absl::string_view compiler_identity,
                      const std::vector<std::string>& options);

// XXH3-128 of `bytes` as 32 lowercase hex chars.
std::string HexHash128(absl::string_view bytes);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_KERNEL_SPEC_H_
