// The on-disk format of one cache entry: a single self-validating file.
//
//   std::string file = EncodeCacheEntry(key, code_object);
//   ...
//   absl::StatusOr<absl::string_view> code = DecodeCacheEntry(file, key);
//   if (!code.ok()) { /* DataLoss: a miss; recompile and rewrite */ }
//
// Layout (integers little-endian):
//
//   offset     size  field
//   0          8     magic "\x89RJC\r\n\x1a\n"
//   8          4     format version (kCacheFormatVersion)
//   12         4     key text length K
//   16         K     key text (the full key, echoed)
//   16+K       8     payload length P
//   24+K       16    XXH3-128 (canonical, big-endian) of bytes [0, 24+K) and the payload
//   40+K       P     payload
//
// Everything a reader needs to reject a bad entry is in the file itself: a torn or
// truncated write, bit rot, an entry of another format version, or another key's entry
// under this key's name (a hash collision or a file copied by hand) are all DataLoss.
#ifndef ROPE_JIT_JIT_CACHE_ENTRY_H_
#define ROPE_JIT_JIT_CACHE_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

// The key as the kernel service computes it. `text` is the canonical, complete
// description of everything that changes the bytes (kernel, source hash, baked
// parameters, target id, compiler identity, options, format version); `hex` is 32
// lowercase hex chars of XXH3-128(text) and names the entry's file.
struct CacheKey {
  std::string text;
  std::string hex;
};

// Bump on any change of the layout above or of what a payload means.
inline constexpr uint32_t kCacheFormatVersion = 1;

// Bytes of an entry that are not payload or key text.
inline constexpr size_t kCacheEntryOverhead = 40;

// The whole file for `payload` under `key`. `key.text` must be shorter than 4 GiB.
std::string EncodeCacheEntry(const CacheKey& key, absl::string_view payload);

// The payload, as a view into `file_bytes`, or DataLoss naming what is wrong: too
// short, bad magic, unsupported version, a length that does not match the file
// (truncated or trailing bytes), checksum mismatch, or another key's entry. Reads only
// inside `file_bytes` whatever the bytes are.
absl::StatusOr<absl::string_view> DecodeCacheEntry(absl::string_view file_bytes,
                                                   const CacheKey& expected);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_CACHE_ENTRY_H_
