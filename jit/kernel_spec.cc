#include "jit/kernel_spec.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "xxhash.h"

namespace rope_jit {

std::string HexHash128(absl::string_view bytes) {
  XXH128_hash_t hash = XXH3_128bits(bytes.data(), bytes.size());
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(hash.high64),
                static_cast<unsigned long long>(hash.low64));
  return hex;
}

CacheKey MakeCacheKey(const KernelSpec& spec, absl::string_view compiler_identity,
                      const std::vector<std::string>& options) {
  // One field per line; values never contain newlines we did not put there, and every
  // list is length-prefixed so that no two different specs can produce the same text.
  std::string text = absl::StrCat("rope_jit cache key\nformat ", kCacheFormatVersion,
                                  "\nkernel ", spec.kernel, "\nsource ", spec.source_hash,
                                  "\ntarget ", spec.target, "\ncompiler ", compiler_identity,
                                  "\ndefines ", spec.defines.size(), "\n");
  for (const std::string& define : spec.defines) absl::StrAppend(&text, "  ", define, "\n");
  absl::StrAppend(&text, "options ", options.size(), "\n");
  for (const std::string& option : options) absl::StrAppend(&text, "  ", option, "\n");
  std::string hex = HexHash128(text);
  return CacheKey{std::move(text), std::move(hex)};
}

}  // namespace rope_jit
