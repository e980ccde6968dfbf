// The command line of a build-time (AOT) compile, derived from the JIT compiler's own
// options so the two cannot drift apart.
//
//   Compiler* jit = *CompilerForTarget("gfx90a");
//   ASSIGN_OR_RETURN(std::vector<std::string> args,
//                    AotCompilerArgs(Vendor::kAmd, jit->Options("gfx90a"), spec.defines));
//   // hipcc <args...> kernel.hip -o kernel.co
//
// Every JIT option is passed through unchanged (nvcc and hipcc take NVRTC's and hipRTC's
// spellings), except the few that only make sense inside the run-time compiler; those are
// listed here with the reason they are dropped. A new JIT option is therefore either
// accepted by the SDK compiler as is, or fails the AOT build: it cannot be silently lost.
// Whether the result is the same code is checked by tests/aot_parity_test.cc.
#ifndef ROPE_JIT_AOT_AOT_OPTIONS_H_
#define ROPE_JIT_AOT_AOT_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/target.h"

namespace rope_jit {

// The build-time compilers, each standing for one JIT compiler.
enum class AotCompiler {
  kNvcc,   // NVRTC
  kHipcc,  // hipRTC
  kClang,  // the clang JIT compiler (jit/rocm/clang_compiler.h): the same program and options
};

// "nvcc", "hipcc", "clang" (as aot.bzl passes them); InvalidArgument otherwise.
absl::StatusOr<AotCompiler> ParseAotCompiler(absl::string_view name);

// The SDK compiler's arguments before the source file and "-o OUT": the mode flags, the
// translated JIT options, then -D<define> for each define.
//   nvcc:   -cubin -x cu <NVRTC options without -default-device> -D...
//   hipcc:  --genco --hipcc-func-supp -include hip/hip_runtime.h
//           <hipRTC options without -Xclang -disable-llvm-passes> -D...
//   clang:  <the clang JIT compiler's options, unchanged> -D...
// InvalidArgument for a malformed define.
absl::StatusOr<std::vector<std::string>> AotCompilerArgs(
    AotCompiler compiler, const std::vector<std::string>& jit_options,
    const std::vector<std::string>& defines);

// nvcc for NVIDIA, hipcc for AMD.
absl::StatusOr<std::vector<std::string>> AotCompilerArgs(
    Vendor vendor, const std::vector<std::string>& jit_options,
    const std::vector<std::string>& defines);

}  // namespace rope_jit

#endif  // ROPE_JIT_AOT_AOT_OPTIONS_H_
