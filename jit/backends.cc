#include "jit/backends.h"

#include "absl/strings/str_cat.h"
#include "jit/cuda/cuda_runtime.h"
#include "jit/cuda/nvrtc_compiler.h"
#include "jit/rocm/hip_runtime.h"
#include "jit/rocm/hiprtc_compiler.h"
#include "jit/status_macros.h"

namespace rope_jit {

// The backends live for the whole process and are never destroyed: code objects, contexts
// and vendor libraries must outlive every user, including static destructors elsewhere.
// Constructing one loads nothing; each loads its vendor library on first use.

Compiler& CompilerForVendor(Vendor vendor) {
  static Compiler* const nvrtc = new NvrtcCompiler();
  static Compiler* const hiprtc = new HiprtcCompiler();
  return vendor == Vendor::kNvidia ? *nvrtc : *hiprtc;
}

absl::StatusOr<Compiler*> CompilerForTarget(absl::string_view target) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  return &CompilerForVendor(vendor);
}

DeviceRuntime& RuntimeForVendor(Vendor vendor) {
  static DeviceRuntime* const cuda = new CudaRuntime();
  static DeviceRuntime* const hip = new HipRuntime();
  return vendor == Vendor::kNvidia ? *cuda : *hip;
}

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
