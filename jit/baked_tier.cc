#include "jit/baked_tier.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "jit/backends.h"
#include "base/status_macros.h"

namespace rope_jit {

absl::StatusOr<CacheKey> BakedCacheKey(const KernelSpec& spec, const Compiler& jit) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(spec.target));
  if (vendor != jit.vendor()) {
    return absl::InvalidArgumentError(absl::StrCat("'", spec.target, "' is not a ",
                                                   VendorName(jit.vendor()), " target"));
  }
  return MakeCacheKey(spec, kBakedCompilerIdentity, jit.Options(spec.target));
}

absl::StatusOr<CacheKey> BakedCacheKey(const KernelSpec& spec) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(spec.target));
  return BakedCacheKey(spec, CompilerForVendor(vendor));
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
    for (const Compiler* jit : CompilersForVendor(*vendor)) {
      absl::StatusOr<CacheKey> key = BakedCacheKey(candidate, *jit);
      if (!key.ok()) continue;
      if (const BakedEntry* entry = tier.Find(*key)) return entry;
    }
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

bool StaticBakedTier::HasCompiler(absl::string_view compiler) const {
  for (const BakedSdk& sdk : sdks_) {
    if (sdk.compiler == compiler) return true;
  }
  return false;
}

}  // namespace rope_jit
