// A run-time GPU compiler (hipRTC or NVRTC) behind one interface.
//
//   ASSIGN_OR_RETURN(Compiler * compiler, CompilerForTarget("sm_90"));  // jit/backends.h
//   CompileRequest request{source, "rope.hip", {"ROPE_HEAD_DIM=128"}, "sm_90"};
//   ASSIGN_OR_RETURN(std::string code_object, compiler->Compile(request));
//
// Both compile for a named target without a GPU. The vendor library is loaded at run
// time: a machine without it gets Unavailable, never a link error.
#ifndef ROPE_JIT_JIT_COMPILER_H_
#define ROPE_JIT_JIT_COMPILER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/target.h"

namespace rope_jit {

struct CompileRequest {
  absl::string_view source;       // complete, self-contained translation unit
  absl::string_view source_name;  // shown in compiler logs
  std::vector<std::string> defines;  // "NAME=VALUE", passed as -D
  std::string target;             // full target id: "gfx90a:xnack-", "sm_90a"
};

class Compiler {
 public:
  virtual ~Compiler() = default;

  virtual Vendor vendor() const = 0;

  // Identity of the loaded compiler by content (ELF build id, else a hash of the
  // library file) plus its reported version. Part of every cache key: a version call
  // alone is not enough (hiprtcVersion() returns a fixed number).
  // Unavailable when the compiler library cannot be loaded.
  virtual absl::StatusOr<std::string> Identity() = 0;

  // Target ids this compiler accepts, as it reports them.
  virtual absl::StatusOr<std::vector<std::string>> SupportedTargets() = 0;

  // OK, InvalidArgument for a malformed id, Unimplemented (listing the supported
  // targets) for one this compiler cannot build for. Always called before compiling:
  // Debian's ROCm 5.2 hipRTC corrupts the heap on an unknown arch.
  virtual absl::Status ValidateTarget(absl::string_view target) = 0;

  // The exact options Compile passes for this target (optimization flags pinned).
  // They are part of the cache key, and the AOT build uses the same.
  virtual std::vector<std::string> Options(absl::string_view target) const = 0;

  // Returns the code object (HSACO for AMD, cubin for NVIDIA). A failed compile is
  // Internal (ResourceExhausted for register exhaustion) with the compiler log.
  virtual absl::StatusOr<std::string> Compile(const CompileRequest& request) = 0;
};

// What every Compiler::Compile passes: compiler.Options(request.target), then "-D" + each
// define. InvalidArgument for a define that is empty or starts with '=' (no name) or '-'
// (it would read as another option).
absl::StatusOr<std::vector<std::string>> CompileArguments(const Compiler& compiler,
                                                         const CompileRequest& request);

// Pointers into `arguments`, for the C APIs that take (int count, const char** options).
std::vector<const char*> ArgumentPointers(const std::vector<std::string>& arguments);

// `log` without the NULs and whitespace at its end (a C API's log buffer includes its NUL).
std::string TrimCompilerLog(std::string log);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_COMPILER_H_
