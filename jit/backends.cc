#include "jit/backends.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "jit/cuda/cuda_runtime.h"
#include "jit/cuda/nvrtc_compiler.h"
#include "jit/host/host_compiler.h"
#include "jit/host/host_runtime.h"
#include "jit/rocm/clang_compiler.h"
#include "jit/rocm/hip_runtime.h"
#include "jit/rocm/hiprtc_compiler.h"
#include "base/status_macros.h"

namespace rope_jit {

// The backends live for the whole process and are never destroyed: code objects, contexts
// and vendor libraries must outlive every user, including static destructors elsewhere.
// Constructing one loads nothing; each loads its vendor library on first use.

Compiler& CompilerForVendor(Vendor vendor) {
  static Compiler* const nvrtc = new NvrtcCompiler();
  static Compiler* const hiprtc = new HiprtcCompiler();
  static Compiler* const host = new HostCompiler();
  switch (vendor) {
    case Vendor::kNvidia: return *nvrtc;
    case Vendor::kAmd: return *hiprtc;
    case Vendor::kHost: return *host;
  }
  return *host;
}

Compiler& AmdClangCompiler() {
  static Compiler* const clang = new ClangCompiler();
  return *clang;
}

std::vector<Compiler*> CompilersForVendor(Vendor vendor) {
  if (vendor != Vendor::kAmd) return {&CompilerForVendor(vendor)};
  return {&CompilerForVendor(Vendor::kAmd), &AmdClangCompiler()};
}

absl::StatusOr<AmdCompilerChoice> ParseAmdCompilerChoice(absl::string_view text) {
  if (text.empty() || text == "auto") return AmdCompilerChoice::kAuto;
  if (text == "hiprtc") return AmdCompilerChoice::kHiprtc;
  if (text == "clang") return AmdCompilerChoice::kClang;
  return absl::InvalidArgumentError(
      absl::StrCat("ROPE_JIT_AMD_COMPILER='", text, "': expected hiprtc, clang or auto"));
}

Compiler* ChooseAmdCompiler(AmdCompilerChoice choice, absl::string_view target, Compiler& hiprtc,
                            Compiler& clang) {
  switch (choice) {
    case AmdCompilerChoice::kHiprtc:
      return &hiprtc;
    case AmdCompilerChoice::kClang:
      return &clang;
    case AmdCompilerChoice::kAuto:
      break;
  }
  if (hiprtc.ValidateTarget(target).ok()) return &hiprtc;
  if (clang.ValidateTarget(target).ok()) return &clang;
  return &hiprtc;
}

absl::StatusOr<Compiler*> CompilerForTarget(absl::string_view target) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  if (vendor != Vendor::kAmd) return &CompilerForVendor(vendor);
  static const absl::StatusOr<AmdCompilerChoice>* const choice = [] {
    const char* text = std::getenv("ROPE_JIT_AMD_COMPILER");
    return new absl::StatusOr<AmdCompilerChoice>(
        ParseAmdCompilerChoice(text != nullptr ? text : ""));
  }();
  if (!choice->ok()) return choice->status();
  return ChooseAmdCompiler(**choice, target, CompilerForVendor(Vendor::kAmd), AmdClangCompiler());
}

DeviceRuntime& RuntimeForVendor(Vendor vendor) {
  static DeviceRuntime* const cuda = new CudaRuntime();
  static DeviceRuntime* const hip = new HipRuntime();
  static DeviceRuntime* const host = [] {
    static HostRuntime* const runtime = new HostRuntime();
    std::atexit([] { runtime->StopWorkers(); });  // see HostRuntime::StopWorkers
    return runtime;
  }();
  switch (vendor) {
    case Vendor::kNvidia: return *cuda;
    case Vendor::kAmd: return *hip;
    case Vendor::kHost: return *host;
  }
  return *host;
}

// Never the host runtime: a server that finds no GPU must say so, not run on the CPU.
absl::StatusOr<DeviceRuntime*> AnyDeviceRuntime() {
  std::string answers;
  for (Vendor vendor : {Vendor::kNvidia, Vendor::kAmd}) {
    DeviceRuntime& runtime = RuntimeForVendor(vendor);
    absl::StatusOr<int> count = runtime.DeviceCount();
    if (count.ok() && *count > 0) return &runtime;
    absl::StrAppend(&answers, answers.empty() ? "" : "; ", VendorName(vendor), ": ",
                    count.ok() ? "no device" : count.status().ToString());
  }
  return absl::UnavailableError(absl::StrCat("no GPU runtime reports a device (", answers, ")"));
}

}  // namespace rope_jit
