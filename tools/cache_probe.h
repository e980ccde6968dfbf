// A read-only look at one entry of the disk cache, for jit_warm's --dry_run and --verify.
//
//   ASSIGN_OR_RETURN(CacheKey key, service.KeyFor(spec));
//   EntryProbe probe = ProbeEntry(cache_dir, key, /*check_contents=*/true);
//   if (probe.state == EntryState::kDamaged) printf("damaged: %s\n", probe.detail.c_str());
//
// Unlike DiskCache::Read it changes nothing: it creates no directory, removes no damaged
// entry and does not refresh the entry's mtime (the LRU clock). A dry run must leave
// the cache exactly as it was, and constructing a DiskCache already creates its
// directory. The file name is DiskCache::EntryFileName, and reads are capped at
// DiskCache::kMaxEntryBytes (a bigger file is reported damaged, never read).
#ifndef ROPE_JIT_TOOLS_CACHE_PROBE_H_
#define ROPE_JIT_TOOLS_CACHE_PROBE_H_

#include <string>

#include "jit/cache_entry.h"

namespace rope_jit {

enum class EntryState {
  kMissing,  // no file (or no directory)
  kPresent,  // a regular file of a plausible size; contents not checked
  kValid,    // contents checked: DecodeCacheEntry accepted it for this key
  kDamaged,  // not a regular file, too short, or (contents checked) failed validation
};

struct EntryProbe {
  EntryState state = EntryState::kMissing;
  std::string detail;   // why kDamaged, or why a file could not be read
  std::string payload;  // the code object, for kValid
};

// The entry file's path in `dir`.
std::string CacheEntryPath(const std::string& dir, const CacheKey& key);

// Without `check_contents` only lstat()s the file (cheap: a warm run over hundreds of
// entries reads none of them); with it reads the file and validates magic, version,
// echoed key, length and checksum. An unreadable file is kDamaged.
EntryProbe ProbeEntry(const std::string& dir, const CacheKey& key, bool check_contents);

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_CACHE_PROBE_H_
