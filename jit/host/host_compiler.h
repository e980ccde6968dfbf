// The system C++ compiler behind the Compiler interface: the unmodified kernels/*.hip,
// compiled with ROPE_HOST defined (the prelude's host section), into a shared object that
// jit/host/host_runtime.h loads and runs on CPU threads. The target id is `host`.
//
//   HostCompiler cxx;  // usually CompilerForVendor(Vendor::kHost), jit/backends.h
//   ASSIGN_OR_RETURN(std::string so, cxx.Compile({source, "rope", {"ROPE_HEAD_DIM=128"}, "host"}));
//
// The compiler is $ROPE_JIT_HOST_CXX when set, else `c++` on PATH, resolved once, on
// first use. Its identity is the content hash of the resolved file (realpath) plus the
// first line of its `--version`. It runs as a child process (jit/spawn.h: no shell, in a
// private temporary directory, inheriting no descriptor) with a time limit of
// $ROPE_JIT_HOST_COMPILE_TIMEOUT_S seconds (default 120); past it the compile is
// DeadlineExceeded and nothing is left running. No compiler: Unavailable, naming what
// was looked for. A failed compile: Internal with the compiler's output.
//
// Options (all in the cache key): -std=c++17 -O2 -fPIC -shared, and
//   -fno-strict-aliasing  the kernels reinterpret element memory as 32-bit words and
//                         16-byte vectors (RopePacked, RopeRaw); GPU compilers allow it,
//                         strict aliasing would let g++ reorder those accesses;
//   -ffp-contract=off     no FMA contraction: results do not depend on whether the CPU
//                         or the compiler fuses a*b+c (the explicit fma() calls stay);
//   no -march             the object runs on any CPU of the architecture, so a disk cache
//                         can be shared between machines;
//   -fsanitize=<list>     when $ROPE_JIT_HOST_SANITIZE is set (e.g. address,undefined, as
//                         the asan config sets it), so that an out-of-bounds access inside
//                         a kernel fails the test like one in the library, with -O1 in
//                         place of -O2 (compile time). Only for a process built with the
//                         same sanitizers.
// Compiles run concurrently (each in its own directory and process).
#ifndef ROPE_JIT_JIT_HOST_HOST_COMPILER_H_
#define ROPE_JIT_JIT_HOST_HOST_COMPILER_H_

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/compiler.h"
#include "jit/target.h"

namespace rope_jit {

struct HostCompilerOptions {
  std::string cxx;  // program name (looked up on PATH) or path; "c++" by default
  std::chrono::milliseconds timeout{120000};
  std::string sanitize;  // -fsanitize= list; empty: none
  static constexpr size_t kMaxObjectBytes = 64 << 20;  // a larger output is refused

  // ROPE_JIT_HOST_CXX, ROPE_JIT_HOST_COMPILE_TIMEOUT_S, ROPE_JIT_HOST_SANITIZE.
  static HostCompilerOptions FromEnvironment();
};

class HostCompiler final : public Compiler {
 public:
  explicit HostCompiler(HostCompilerOptions options = HostCompilerOptions::FromEnvironment());

  Vendor vendor() const override { return Vendor::kHost; }

  // "host-cxx x86_64-linux-gnu-g++-12 xxh3-128:...; c++ (Debian 12.2.0-14) 12.2.0".
  // Unavailable when no compiler is found or it does not answer --version.
  absl::StatusOr<std::string> Identity() override;

  // {"host"}.
  absl::StatusOr<std::vector<std::string>> SupportedTargets() override;

  // OK for "host"; InvalidArgument for a malformed id, Unimplemented for a GPU target.
  absl::Status ValidateTarget(absl::string_view target) override;

  std::vector<std::string> Options(absl::string_view target) const override;

  // Returns the shared object (an ELF image for HostRuntime::LoadModule).
  absl::StatusOr<std::string> Compile(const CompileRequest& request) override;

 private:
  struct Resolved {
    std::string path;  // absolute, symbolic links resolved
    std::string identity;
  };
  absl::StatusOr<Resolved> Resolve();

  const HostCompilerOptions options_;
  std::once_flag resolve_once_;
  absl::StatusOr<Resolved> resolved_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_HOST_HOST_COMPILER_H_
