#include "kernels/embedded.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace rope_jit {

absl::StatusOr<const EmbeddedKernelSource*> FindKernelSource(absl::string_view name) {
  std::string known;
  for (const EmbeddedKernelSource& source : EmbeddedKernelSources()) {
    if (source.name == name) return &source;
    absl::StrAppend(&known, known.empty() ? "" : ", ", source.name);
  }
  return absl::NotFoundError(absl::StrCat("no kernel named '", name, "'; known: ", known));
}

}  // namespace rope_jit
