#include "jit/baked_tier.h"

#include <string>
#include <utility>
#include <vector>

#include "jit/backends.h"
#include "jit/status_macros.h"

namespace rope_jit {

absl::StatusOr<CacheKey> BakedCacheKey(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Compiler * compiler, CompilerForTarget(spec.target));
  return MakeCacheKey(spec, kBakedCompilerIdentity, compiler->Options(spec.target));
}

const BakedEntry* FindBaked(const BakedTier& tier, const KernelSpec& spec) {
  absl::StatusOr<Vendor> vendor = VendorOfTarget(spec.target);
  if (!vendor.ok()) return nullptr;
  std::vector<std::string> targets = {spec.target};
  if (*vendor == Vendor::kAmd && AmdProcessor(spec.target) != spec.target) {
    targets.emplace_back(AmdProcessor(spec.target));
  }
  KernelSpec candidate = spec;
  for (std::string& target : targets) {
    candidate.target = std::move(target);
    absl::StatusOr<CacheKey> key = BakedCacheKey(candidate);
    if (!key.ok()) continue;
    if (const BakedEntry* entry = tier.Find(*key)) return entry;
  }
  return nullptr;
}

StaticBakedTier::StaticBakedTier(absl::Span<const BakedEntry> entries,
                                 absl::Span<const BakedSdk> sdks)
    : entries_(entries), sdks_(sdks) {
  for (const BakedEntry& entry : entries_) by_hex_.emplace(entry.key_hex, &entry);
}

const BakedEntry* StaticBakedTier::Find(const CacheKey& key) const {
  auto it = by_hex_.find(key.hex);
  // The full text guards against a hash collision handing out the wrong kernel.
  if (it == by_hex_.end() || it->second->key_text != key.text) return nullptr;
  return it->second;
}

bool StaticBakedTier::HasSdk(Vendor vendor) const {
  for (const BakedSdk& sdk : sdks_) {
    if (sdk.vendor == vendor) return true;
  }
  return false;
}

}  // namespace rope_jit
