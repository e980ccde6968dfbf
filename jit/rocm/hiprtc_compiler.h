// hipRTC behind the Compiler interface: HIP C++ source to a code object (HSACO) for one
// AMD target id such as "gfx90a" or "gfx90a:sramecc+:xnack-".
//
//   HiprtcCompiler hiprtc;  // usually CompilerForVendor(Vendor::kAmd), jit/backends.h
//   RETURN_IF_ERROR(hiprtc.ValidateTarget("gfx90a:sramecc+:xnack-"));
//   ASSIGN_OR_RETURN(std::string hsaco,
//                    hiprtc.Compile({source, "rope.hip", {}, "gfx90a:sramecc+:xnack-"}));
//
// hipRTC is loaded on first use from the first of libhiprtc.so.6, libhiprtc.so.5,
// libamdhip64.so.6, libamdhip64.so.5 that exports it (ROCm 5.2, Debian's, ships it inside
// libamdhip64.so.5), and comgr from libamd_comgr.so.3 / .2; both reuse a copy already in the
// process, then the loader's path, $ROCM_PATH/lib and /opt/rocm/lib. No GPU is needed.
//
// Safety: Debian's hipRTC 5.2 corrupts the heap when asked for a processor it does not know
// (gfx940/942, gfx1100, a garbage string). Every target is therefore checked against comgr's
// ISA list (processor, then each feature against that processor's features, then the full id
// through amd_comgr_get_isa_metadata) before any hipRTC call.
//
// Files: comgr compiles through temporary files and ends the process when one cannot be
// written (LLVM's fatal IO error, SIGXFSZ, SIGBUS). Every compile is therefore refused with
// ResourceExhausted, before hipRTC is called, unless RLIMIT_FSIZE and each place comgr will
// write (the system temp directory: TMPDIR, TMP, TEMP, TEMPDIR, else /tmp; the
// AMD_COMGR_REDIRECT_LOGS file; PerfStatsLog.txt with AMD_COMGR_TIME_STATISTICS) leave
// 16 MiB: CheckComgrCanWrite below.
//
// Threads: hipRTC 5.2 keeps global state without documented thread safety, so compiles are
// serialized by one process-wide mutex (about 100-160 ms each for a small kernel).
#ifndef ROPE_JIT_JIT_ROCM_HIPRTC_COMPILER_H_
#define ROPE_JIT_JIT_ROCM_HIPRTC_COMPILER_H_

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

// OK when comgr can write everything one compile writes (see "Files" above); otherwise
// ResourceExhausted naming the limit or the directory and why.
absl::Status CheckComgrCanWrite();

class HiprtcCompiler final : public Compiler {
 public:
  HiprtcCompiler();
  ~HiprtcCompiler() override;

  Vendor vendor() const override { return Vendor::kAmd; }

  // "hiprtc 9.0; libamdhip64.so.5 gnu-build-id:...; libamd_comgr.so.2 gnu-build-id:...;
  // libLLVM-15.so.1 gnu-build-id:..." (comgr's LLVM when it is a separate library, as in
  // Debian; comgr embeds the device libraries, so its identity covers them).
  absl::StatusOr<std::string> Identity() override;

  // The processors comgr reports, e.g. "gfx90a", "gfx1030" (features are accepted as far as
  // the processor supports them: "gfx90a:sramecc+:xnack-").
  absl::StatusOr<std::vector<std::string>> SupportedTargets() override;

  // InvalidArgument for a malformed id, an NVIDIA target, repeated features or features out
  // of canonical (alphabetical) order; Unimplemented for a processor or feature comgr does
  // not support. Never calls hipRTC.
  absl::Status ValidateTarget(absl::string_view target) override;

  // --offload-arch=<target id> -O3 -std=c++17 -ffp-contract=on -mcumode -Xclang
  // -disable-llvm-passes: the target id keeps its features (they change the code: xnack,
  // sramecc); FMA contraction within expressions; denormals kept and no fast math (clang's
  // defaults, which these options leave alone). -disable-llvm-passes skips hipRTC's
  // pre-link optimization only: the -O3 after the device libraries are linked still runs,
  // so the code is what hipcc --genco builds with the same options (AOT/JIT parity).
  std::vector<std::string> Options(absl::string_view target) const override;

  // Returns the code object: an ELF HSACO (e_machine EM_AMDGPU), not an offload bundle,
  // ready for hipModuleLoadData.
  absl::StatusOr<std::string> Compile(const CompileRequest& request) override;

 private:
  struct Library;  // the library holding hipRTC, comgr, their entry points, the ISA list
  absl::StatusOr<const Library*> Load();

  std::once_flag load_once_;
  std::unique_ptr<Library> library_;
  absl::Status load_status_;
  std::once_flag identity_once_;
  absl::StatusOr<std::string> identity_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_ROCM_HIPRTC_COMPILER_H_
