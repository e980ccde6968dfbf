// What LLVM's AMDGPU backend says in a compile log, shared by the two AMD compilers (hipRTC
// and clang run the same backend, of different LLVM versions).
//
//   if (MentionsResourceExhaustion(log)) return absl::ResourceExhaustedError(message);
#ifndef ROPE_JIT_JIT_ROCM_AMDGPU_LOG_H_
#define ROPE_JIT_JIT_ROCM_AMDGPU_LOG_H_

#include "absl/strings/string_view.h"

namespace rope_jit {

// True when the log reports that the kernel does not fit the hardware (registers, scratch).
bool MentionsResourceExhaustion(absl::string_view log);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_ROCM_AMDGPU_LOG_H_
