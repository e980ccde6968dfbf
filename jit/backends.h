// The process-wide vendor backends: compilers and device runtimes.
//
//   ASSIGN_OR_RETURN(Compiler * nvrtc, CompilerForTarget("sm_90"));
//   ASSIGN_OR_RETURN(DeviceRuntime * runtime, AnyDeviceRuntime());
//   DeviceRuntime& cpu = RuntimeForVendor(Vendor::kHost);  // always has device 0, "host"
//
// Vendor libraries are loaded lazily on first use; where one is missing the object
// still exists and its calls return Unavailable.
#ifndef ROPE_JIT_JIT_BACKENDS_H_
#define ROPE_JIT_JIT_BACKENDS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/compiler.h"
#include "jit/device_runtime.h"
#include "jit/target.h"

namespace rope_jit {

// hipRTC for gfx*, NVRTC for sm_*, the system C++ compiler for host (jit/host);
// InvalidArgument for a malformed target.
absl::StatusOr<Compiler*> CompilerForTarget(absl::string_view target);
Compiler& CompilerForVendor(Vendor vendor);

DeviceRuntime& RuntimeForVendor(Vendor vendor);

// The first GPU runtime that reports at least one device (NVIDIA first, then AMD);
// Unavailable, naming what each vendor said, when there is none. Never the host runtime:
// a caller asking for a device must not silently fall back to the CPU.
absl::StatusOr<DeviceRuntime*> AnyDeviceRuntime();

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_BACKENDS_H_
