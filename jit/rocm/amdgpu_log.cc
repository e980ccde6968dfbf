#include "jit/rocm/amdgpu_log.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace rope_jit {

bool MentionsResourceExhaustion(absl::string_view log) {
  const std::string lower = absl::AsciiStrToLower(log);
  for (const char* pattern : {"ran out of registers", "register allocation failed",
                              "insufficient registers", "exceeds limit", "too many registers",
                              "scratch size"}) {
    if (absl::StrContains(lower, pattern)) return true;
  }
  return false;
}

}  // namespace rope_jit
