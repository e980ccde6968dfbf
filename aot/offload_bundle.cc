#include "aot/offload_bundle.h"

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rope_jit {
namespace {

constexpr absl::string_view kMagic = "__CLANG_OFFLOAD_BUNDLE__";
constexpr absl::string_view kCompressedMagic = "CCOB";

// Reads a little-endian u64 at `*pos`, advancing it; false when past the end.
bool ReadU64(absl::string_view bytes, size_t* pos, uint64_t* value) {
  if (bytes.size() < 8 || *pos > bytes.size() - 8) return false;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[*pos + i]);
  *value = v;
  *pos += 8;
  return true;
}

}  // namespace

absl::StatusOr<std::vector<OffloadBundleEntry>> ParseOffloadBundle(absl::string_view bundle) {
  if (absl::StartsWith(bundle, kCompressedMagic)) {
    return absl::UnimplementedError(
        "compressed offload bundle (CCOB); build without --offload-compress");
  }
  if (!absl::StartsWith(bundle, kMagic)) {
    return absl::InvalidArgumentError("not a clang offload bundle (no __CLANG_OFFLOAD_BUNDLE__)");
  }
  size_t pos = kMagic.size();
  uint64_t count = 0;
  if (!ReadU64(bundle, &pos, &count)) {
    return absl::InvalidArgumentError("offload bundle truncated in its entry count");
  }
  // Each entry header takes at least 24 bytes: a count beyond that is damage.
  if (count > (bundle.size() - pos) / 24) {
    return absl::InvalidArgumentError(absl::StrCat("offload bundle claims ", count, " entries"));
  }
  std::vector<OffloadBundleEntry> entries;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t offset = 0, size = 0, triple_size = 0;
    if (!ReadU64(bundle, &pos, &offset) || !ReadU64(bundle, &pos, &size) ||
        !ReadU64(bundle, &pos, &triple_size) || triple_size > bundle.size() - pos) {
      return absl::InvalidArgumentError(absl::StrCat("offload bundle entry ", i, " truncated"));
    }
    absl::string_view triple = bundle.substr(pos, triple_size);
    pos += triple_size;
    if (offset > bundle.size() || size > bundle.size() - offset) {
      return absl::InvalidArgumentError(
          absl::StrCat("offload bundle entry ", i, " (", triple, ") points past the end: offset ",
                       offset, ", size ", size, ", bundle ", bundle.size(), " bytes"));
    }
    entries.push_back({triple, bundle.substr(offset, size)});
  }
  return entries;
}

absl::StatusOr<absl::string_view> AmdCodeObjectFromBundle(absl::string_view bundle,
                                                          absl::string_view target) {
  absl::StatusOr<std::vector<OffloadBundleEntry>> entries = ParseOffloadBundle(bundle);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> triples;
  for (const OffloadBundleEntry& entry : *entries) {
    for (const char* kind : {"hipv4", "hip"}) {
      if (entry.triple == absl::StrCat(kind, "-amdgcn-amd-amdhsa--", target)) return entry.payload;
    }
    triples.emplace_back(entry.triple);
  }
  return absl::NotFoundError(absl::StrCat("offload bundle has no code object for ", target,
                                          "; it holds: ", absl::StrJoin(triples, ", ")));
}

}  // namespace rope_jit
