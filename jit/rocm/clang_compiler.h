// clang (LLVM 19, Debian's clang-19 + lld-19) behind the Compiler interface: HIP C++ source to
// a code object (HSACO) for AMD targets that the loaded hipRTC does not know, such as MI300
// (gfx942), RDNA3 (gfx1100) and RDNA4 (gfx1201), with no ROCm installed.
//
//   ClangCompiler clang;  // usually through CompilerForTarget, jit/backends.h
//   RETURN_IF_ERROR(clang.ValidateTarget("gfx942:sramecc+:xnack-"));
//   ASSIGN_OR_RETURN(std::string hsaco,
//                    clang.Compile({source, "rope.hip", {}, "gfx942:sramecc+:xnack-"}));
//
// clang runs as a child process (jit/spawn.h: posix_spawn, no shell, a private environment and
// temporary directory, a time limit, bounded log), device-only, without HIP headers or device
// libraries (-nogpuinc -nogpulib): the source must be self-contained. The kernels are: their
// prelude (kernels/prelude.h) defines what hipRTC's built-in header would, under
// -DROPE_HIP_WITHOUT_RUNTIME=1, which Options() passes.
//
// Which clang: ClangCompilerConfig::FromEnvironment, i.e. $ROPE_JIT_AMD_CLANG if set, else
// clang-19 on $PATH, else /usr/lib/llvm-19/bin/clang. A missing one is Unavailable naming it.
#ifndef ROPE_JIT_JIT_ROCM_CLANG_COMPILER_H_
#define ROPE_JIT_JIT_ROCM_CLANG_COMPILER_H_

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/compiler.h"
#include "jit/target.h"

namespace rope_jit {

struct ClangCompilerConfig {
  // The clang to run: an absolute path, or a name looked up on $PATH.
  std::string clang = "clang-19";
  // A compile (one clang process and the lld it runs) past this is killed: DeadlineExceeded.
  std::chrono::milliseconds timeout{120000};
  // Largest code object accepted (our kernels' are about 20-60 KB); larger is Internal.
  size_t max_code_object_bytes = 64 << 20;
  // Compiler log kept for error messages.
  size_t max_log_bytes = 256 << 10;

  // ROPE_JIT_AMD_CLANG, else clang-19 (on $PATH, else /usr/lib/llvm-19/bin/clang).
  static ClangCompilerConfig FromEnvironment();
};

class ClangCompiler final : public Compiler {
 public:
  explicit ClangCompiler(ClangCompilerConfig config = ClangCompilerConfig::FromEnvironment());

  Vendor vendor() const override { return Vendor::kAmd; }

  // "clang Debian clang version 19.1.7 (3~deb12u1); /usr/lib/llvm-19/bin/clang xxh3-128:...;
  // /usr/lib/llvm-19/lib/libclang-cpp.so.19.1 xxh3-128:...; /usr/lib/x86_64-linux-gnu/
  // libLLVM.so.19.1 xxh3-128:...; /usr/lib/llvm-19/bin/lld xxh3-128:...": its version line and
  // the content of the resolved clang, of the LLVM libraries it loads (as its dynamic loader
  // lists them) and of the lld it links with (ld.lld next to it). Computed once per process
  // (about 0.1 s: the libraries are 200 MB). Unavailable, naming the path, when clang cannot
  // be found or run, or when lld is missing.
  absl::StatusOr<std::string> Identity() override;

  // The gfx processors clang lists for amdgcn-amd-amdhsa, except the generic ones and gfx6
  // (no flat address space, never a HIP target), e.g. "gfx90a", "gfx942", "gfx1201".
  absl::StatusOr<std::vector<std::string>> SupportedTargets() override;

  // InvalidArgument for a malformed id, an NVIDIA target or features out of canonical order;
  // Unimplemented for a processor clang does not list or features it rejects for that
  // processor (asked once per target id, with an empty translation unit).
  absl::Status ValidateTarget(absl::string_view target) override;

  // -x hip --offload-arch=<target id> -nogpuinc -nogpulib --cuda-device-only
  // --no-gpu-bundle-output -O3 -std=c++17 -ffp-contract=on -mcumode -mcode-object-version=5
  // -DROPE_HIP_WITHOUT_RUNTIME=1: device code only, straight to an ELF code object; the
  // language, optimization and contraction settings of hipRTC's (jit/rocm/hiprtc_compiler.h).
  // A pure function: the same on every machine (baked keys depend on it).
  std::vector<std::string> Options(absl::string_view target) const override;

  // Returns the code object: an ELF HSACO (e_machine EM_AMDGPU), ready for hipModuleLoadData.
  // Internal (with clang's log) for a failed compile, ResourceExhausted when the log says
  // registers ran out, DeadlineExceeded past the time limit.
  absl::StatusOr<std::string> Compile(const CompileRequest& request) override;

  const ClangCompilerConfig& config() const { return config_; }

 private:
  struct Installation {
    std::string clang;    // resolved absolute path
    std::string version;  // first line of clang --version
    std::string identity;
    std::vector<std::string> processors;
  };
  absl::StatusOr<const Installation*> Load();
  // Runs the resolved clang in a private directory; the log is in SpawnResult::output.
  struct Run;
  absl::StatusOr<Run> RunClang(const Installation& clang, std::vector<std::string> args,
                               absl::string_view source, absl::string_view source_name,
                               bool want_output);

  const ClangCompilerConfig config_;
  std::once_flag load_once_;
  absl::StatusOr<Installation> installation_;
  std::mutex validated_mu_;
  std::map<std::string, absl::Status> validated_;  // target id -> what clang said
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_ROCM_CLANG_COMPILER_H_
