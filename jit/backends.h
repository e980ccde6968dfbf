// The process-wide vendor backends: compilers and device runtimes.
//
//   ASSIGN_OR_RETURN(Compiler * nvrtc, CompilerForTarget("sm_90"));
//   ASSIGN_OR_RETURN(DeviceRuntime * runtime, AnyDeviceRuntime());
//   DeviceRuntime& cpu = RuntimeForVendor(Vendor::kHost);  // always has device 0, "host"
//
// Vendor libraries are loaded lazily on first use; where one is missing the object
// still exists and its calls return Unavailable.
//
// AMD has two compilers: hipRTC (the ROCm library, loaded at run time) and clang (an LLVM 19
// clang run as a process, jit/rocm/clang_compiler.h), which knows processors that an older
// hipRTC does not (Debian's ROCm 5.2 has no gfx942, gfx1100, gfx1201). ROPE_JIT_AMD_COMPILER
// picks, for every AMD target:
//   auto (default)  hipRTC when it supports the target, else clang when it does, else hipRTC
//                   (whose ValidateTarget then says why the target cannot be built)
//   hiprtc          hipRTC only
//   clang           clang only
#ifndef ROPE_JIT_JIT_BACKENDS_H_
#define ROPE_JIT_JIT_BACKENDS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jit/compiler.h"
#include "jit/device_runtime.h"
#include "jit/target.h"

namespace rope_jit {

enum class AmdCompilerChoice { kAuto, kHiprtc, kClang };

// "auto" (or empty), "hiprtc", "clang"; InvalidArgument naming the value otherwise.
absl::StatusOr<AmdCompilerChoice> ParseAmdCompilerChoice(absl::string_view text);

// The compiler `choice` gives for AMD `target` among the two (see above).
Compiler* ChooseAmdCompiler(AmdCompilerChoice choice, absl::string_view target, Compiler& hiprtc,
                            Compiler& clang);

// NVRTC for sm_*; for gfx* the AMD compiler ROPE_JIT_AMD_COMPILER picks (read once); the
// system C++ compiler for host (jit/host).
// InvalidArgument for a malformed target or a bad ROPE_JIT_AMD_COMPILER.
absl::StatusOr<Compiler*> CompilerForTarget(absl::string_view target);

// The vendor's run-time compiler: NVRTC, hipRTC, the host C++ compiler.
Compiler& CompilerForVendor(Vendor vendor);

// The clang-backed AMD compiler (ClangCompilerConfig::FromEnvironment).
Compiler& AmdClangCompiler();

// Every compiler that may build a vendor's targets, in order of preference: NVRTC; hipRTC,
// clang; the host C++ compiler. A baked entry may come from any of them (jit/baked_tier.h).
std::vector<Compiler*> CompilersForVendor(Vendor vendor);

DeviceRuntime& RuntimeForVendor(Vendor vendor);

// The first GPU runtime that reports at least one device (NVIDIA first, then AMD);
// Unavailable, naming what each vendor said, when there is none. Never the host runtime:
// a caller asking for a device must not silently fall back to the CPU.
absl::StatusOr<DeviceRuntime*> AnyDeviceRuntime();

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_BACKENDS_H_
