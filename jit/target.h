// Target ids: which vendor a target string belongs to, and its canonical form.
//
//   ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget("gfx90a:sramecc+:xnack-"));
//
// `host` is the CPU backend (jit/host): the kernels compiled by the system C++ compiler
// and run on CPU threads, for CI and engine tests without a GPU.
//
// The full target id (features and the `a` of sm_90a included) is what the cache key
// holds: gfx1030 and gfx1032, or sm_90 and sm_90a, produce different code.
#ifndef ROPE_JIT_JIT_TARGET_H_
#define ROPE_JIT_JIT_TARGET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

enum class Vendor { kAmd, kNvidia, kHost };

// The target id of the host backend.
inline constexpr absl::string_view kHostTarget = "host";

absl::string_view VendorName(Vendor vendor);

// InvalidArgument for a string that is neither a gfx target id, an sm_XX[a] name nor
// `host`.
absl::StatusOr<Vendor> VendorOfTarget(absl::string_view target);

// The processor part of an AMD target id: "gfx90a:sramecc+:xnack-" -> "gfx90a".
absl::string_view AmdProcessor(absl::string_view target);

// The feature names of an AMD target id, in order: "gfx942:sramecc+:xnack-" ->
// {"sramecc", "xnack"}; none for a bare processor. InvalidArgument for a string that is not an
// AMD target id, and for repeated features or features out of alphabetical order: LLVM and
// comgr spell each target one way, and the cache key holds the id as written, so
// "gfx90a:xnack-:sramecc+" would otherwise be a second key for the same code.
absl::StatusOr<std::vector<std::string>> AmdFeatureNames(absl::string_view target);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_TARGET_H_
