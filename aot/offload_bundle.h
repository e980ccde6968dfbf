// Clang offload bundles: what `hipcc --genco` writes (one host entry, empty, and one code
// object per --offload-arch). The kernel service loads plain code objects, as hipRTC
// returns them, so the AOT build takes the device entry out.
//
//   ASSIGN_OR_RETURN(absl::string_view hsaco, AmdCodeObjectFromBundle(bundle, "gfx90a"));
//
// Layout (little-endian, uncompressed; what clang-offload-bundler -type=o writes):
//   "__CLANG_OFFLOAD_BUNDLE__"  24-byte magic
//   u64 entry count
//   per entry: u64 offset, u64 size, u64 triple length, triple bytes (no NUL)
//   payloads at their offsets (from the start of the bundle)
#ifndef ROPE_JIT_AOT_OFFLOAD_BUNDLE_H_
#define ROPE_JIT_AOT_OFFLOAD_BUNDLE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

struct OffloadBundleEntry {
  absl::string_view triple;   // "hipv4-amdgcn-amd-amdhsa--gfx90a", "host-x86_64-unknown-linux"
  absl::string_view payload;  // views into the bundle
};

// InvalidArgument for anything that is not a well-formed bundle (every offset and size is
// checked against the bundle's length); Unimplemented for a compressed ("CCOB") bundle.
absl::StatusOr<std::vector<OffloadBundleEntry>> ParseOffloadBundle(absl::string_view bundle);

// The AMD GPU code object for `target` (a full target id, "gfx90a" or
// "gfx90a:sramecc+:xnack-"): the entry whose triple is hipv4-, or hip-,
// amdgcn-amd-amdhsa--<target>. NotFound listing the triples present.
absl::StatusOr<absl::string_view> AmdCodeObjectFromBundle(absl::string_view bundle,
                                                          absl::string_view target);

}  // namespace rope_jit

#endif  // ROPE_JIT_AOT_OFFLOAD_BUNDLE_H_
