// NVRTC behind the Compiler interface: CUDA C++ source to a cubin for one sm_XX[a|f].
//
//   NvrtcCompiler nvrtc;  // usually CompilerForVendor(Vendor::kNvidia), jit/backends.h
//   RETURN_IF_ERROR(nvrtc.ValidateTarget("sm_90"));
//   ASSIGN_OR_RETURN(std::string cubin, nvrtc.Compile({source, "rope.cu", {}, "sm_90"}));
//
// libnvrtc.so.13 (then .12) is loaded on first use, reusing one already in the process,
// else from the loader's path, $CUDA_HOME/lib64 and /usr/local/cuda/lib64. No GPU and no
// driver is needed. Compiles run concurrently (NVRTC programs are independent); the first
// compile in a process is slower (NVRTC initializes its builtins).
#ifndef ROPE_JIT_JIT_CUDA_NVRTC_COMPILER_H_
#define ROPE_JIT_JIT_CUDA_NVRTC_COMPILER_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/compiler.h"
#include "jit/target.h"

namespace rope_jit {

class NvrtcCompiler final : public Compiler {
 public:
  NvrtcCompiler();
  ~NvrtcCompiler() override;

  Vendor vendor() const override { return Vendor::kNvidia; }

  // "nvrtc 13.0; libnvrtc.so.13 gnu-build-id:...; libnvrtc-builtins.so.13.0 gnu-build-id:..."
  absl::StatusOr<std::string> Identity() override;

  // "sm_75", "sm_80", ... as nvrtcGetSupportedArchs reports them (plain numbers; the
  // arch-specific sm_90a / family sm_100f variants are accepted for the same numbers).
  absl::StatusOr<std::vector<std::string>> SupportedTargets() override;

  absl::Status ValidateTarget(absl::string_view target) override;

  // --gpu-architecture=<target> -std=c++17 --fmad=true --ftz=false --prec-div=true
  // --prec-sqrt=true -default-device (IEEE-exact division and square root, denormals kept,
  // FMA contraction on as in nvcc's default; never fast math).
  std::vector<std::string> Options(absl::string_view target) const override;

  // Validates the target, compiles with Options(target) plus -D<define> for each define,
  // and returns the cubin (an ELF image for cuModuleLoadData).
  absl::StatusOr<std::string> Compile(const CompileRequest& request) override;

 private:
  struct Library;  // libnvrtc and its entry points
  absl::StatusOr<const Library*> Load();

  std::once_flag load_once_;
  std::unique_ptr<Library> library_;
  absl::Status load_status_;
  std::once_flag identity_once_;
  absl::StatusOr<std::string> identity_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_CUDA_NVRTC_COMPILER_H_
