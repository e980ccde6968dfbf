#include "aot/aot_options.h"

#include "absl/strings/str_cat.h"

namespace rope_jit {
namespace {

// nvcc -cubin compiles device code only into a cubin, as NVRTC does; -x cu because the
// sources are .hip files.
const std::vector<std::string>& NvccModeFlags() {
  static const auto* flags = new std::vector<std::string>{"-cubin", "-x", "cu"};
  return *flags;
}

// hipcc --genco compiles device code only into an offload bundle (aot_tool extracts the
// code object). --hipcc-func-supp stops hipcc adding its own -mllvm inlining options,
// which hipRTC does not use. hipRTC pre-includes its built-in hiprtc_runtime.h
// (__global__, blockIdx, atomicOr, ...); hipcc gets the same from hip_runtime.h.
const std::vector<std::string>& HipccModeFlags() {
  static const auto* flags =
      new std::vector<std::string>{"--genco", "--hipcc-func-supp", "-include", "hip/hip_runtime.h"};
  return *flags;
}

}  // namespace

absl::StatusOr<AotCompiler> ParseAotCompiler(absl::string_view name) {
  if (name == "nvcc") return AotCompiler::kNvcc;
  if (name == "hipcc") return AotCompiler::kHipcc;
  if (name == "clang") return AotCompiler::kClang;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown AOT compiler '", name, "': nvcc, hipcc or clang"));
}

absl::StatusOr<std::vector<std::string>> AotCompilerArgs(
    Vendor vendor, const std::vector<std::string>& jit_options,
    const std::vector<std::string>& defines) {
  return AotCompilerArgs(vendor == Vendor::kNvidia ? AotCompiler::kNvcc : AotCompiler::kHipcc,
                         jit_options, defines);
}

absl::StatusOr<std::vector<std::string>> AotCompilerArgs(
    AotCompiler compiler, const std::vector<std::string>& jit_options,
    const std::vector<std::string>& defines) {
  std::vector<std::string> args;
  if (compiler == AotCompiler::kNvcc) args = NvccModeFlags();
  if (compiler == AotCompiler::kHipcc) args = HipccModeFlags();
  for (size_t i = 0; i < jit_options.size(); ++i) {
    const std::string& option = jit_options[i];
    // NVRTC: "treat functions without an execution space as __device__". nvcc has no such
    // flag; every function in kernels/ carries ROPE_DEVICE or __global__, so it changes
    // nothing there.
    if (compiler == AotCompiler::kNvcc && option == "-default-device") continue;
    // hipRTC: turns off its pre-link -O3 so that only the -O3 after device-library linking
    // runs, which is hipcc's single -O3 (jit/rocm/hiprtc_compiler.cc). Passed to hipcc it
    // would turn off all optimization.
    if (compiler == AotCompiler::kHipcc && option == "-Xclang" && i + 1 < jit_options.size() &&
        jit_options[i + 1] == "-disable-llvm-passes") {
      ++i;
      continue;
    }
    args.push_back(option);
  }
  for (const std::string& define : defines) {
    if (define.empty() || define[0] == '=' || define[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("malformed define '", define, "'"));
    }
    args.push_back(absl::StrCat("-D", define));
  }
  return args;
}

}  // namespace rope_jit
