#include "jit/cuda/nvrtc_compiler.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "jit/dynamic_library.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

// The slice of nvrtc.h we use, declared here so that no CUDA header is needed to build.
using nvrtcResult = int;  // enum nvrtcResult
constexpr nvrtcResult NVRTC_SUCCESS = 0;
constexpr nvrtcResult NVRTC_ERROR_COMPILATION = 6;
using nvrtcProgram = struct _nvrtcProgram*;

// One list generates both the function-pointer table and its loader.
#define ROPE_JIT_NVRTC_SYMBOLS(X)                                                        \
  X(nvrtcGetErrorString, const char*, (nvrtcResult))                                     \
  X(nvrtcVersion, nvrtcResult, (int*, int*))                                             \
  X(nvrtcGetNumSupportedArchs, nvrtcResult, (int*))                                      \
  X(nvrtcGetSupportedArchs, nvrtcResult, (int*))                                         \
  X(nvrtcCreateProgram, nvrtcResult,                                                     \
    (nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*)) \
  X(nvrtcDestroyProgram, nvrtcResult, (nvrtcProgram*))                                   \
  X(nvrtcCompileProgram, nvrtcResult, (nvrtcProgram, int, const char* const*))           \
  X(nvrtcGetProgramLogSize, nvrtcResult, (nvrtcProgram, size_t*))                        \
  X(nvrtcGetProgramLog, nvrtcResult, (nvrtcProgram, char*))                              \
  X(nvrtcGetCUBINSize, nvrtcResult, (nvrtcProgram, size_t*))                             \
  X(nvrtcGetCUBIN, nvrtcResult, (nvrtcProgram, char*))

struct NvrtcApi {
#define ROPE_JIT_NVRTC_POINTER(name, result, params) result(*name) params = nullptr;
  ROPE_JIT_NVRTC_SYMBOLS(ROPE_JIT_NVRTC_POINTER)
#undef ROPE_JIT_NVRTC_POINTER
};

absl::Status BindNvrtc(const DynamicLibrary& library, NvrtcApi* api) {
#define ROPE_JIT_NVRTC_BIND(name, result, params) RETURN_IF_ERROR(library.Bind(#name, &api->name));
  ROPE_JIT_NVRTC_SYMBOLS(ROPE_JIT_NVRTC_BIND)
#undef ROPE_JIT_NVRTC_BIND
  return absl::OkStatus();
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Identities name files by basename: the same bytes installed elsewhere are the same compiler.
absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// ptxas reports what does not fit; it spills registers rather than failing on them.
bool MentionsResourceExhaustion(absl::string_view log) {
  const std::string lower = absl::AsciiStrToLower(log);
  for (const char* pattern :
       {"too much shared data", "too much local data", "too many registers",
        "out of registers", "insufficient registers", "too many resources", "exceeds limit"}) {
    if (absl::StrContains(lower, pattern)) return true;
  }
  return false;
}

struct ParsedArch {
  int number = 0;
  char variant = 0;  // 0, 'a' (arch-specific) or 'f' (family-specific)
};

absl::StatusOr<ParsedArch> ParseArch(absl::string_view target) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  if (vendor != Vendor::kNvidia) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", target, "' is an AMD target; NVRTC compiles for sm_XX targets"));
  }
  ParsedArch arch;
  absl::string_view digits = target.substr(3);
  if (absl::EndsWith(digits, "a") || absl::EndsWith(digits, "f")) {
    arch.variant = digits.back();
    digits.remove_suffix(1);
  }
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", target, "' is not a canonical sm_XX name (digits, then a or f)"));
  }
  if (digits[0] == '0') {
    return absl::InvalidArgumentError(
        absl::StrCat("'", target, "' is not a canonical sm_XX name (a leading zero)"));
  }
  // No GPU arch number has more than four digits; longer ones would also overflow int.
  if (digits.size() > 4 || !absl::SimpleAtoi(digits, &arch.number)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", target, "' has an arch number too large for an sm_XX name"));
  }
  return arch;
}

}  // namespace

struct NvrtcCompiler::Library {
  DynamicLibrary nvrtc;
  // libnvrtc-builtins, loaded by us from libnvrtc's directory before NVRTC looks for it, so
  // that the one NVRTC compiles with is the one the identity names.
  absl::StatusOr<DynamicLibrary> builtins;
  NvrtcApi api;
  int major = 0, minor = 0;
  std::vector<int> archs;

  std::string ErrorName(nvrtcResult result) const {
    const char* name = api.nvrtcGetErrorString(result);
    return name != nullptr ? name : absl::StrCat("nvrtcResult ", result);
  }
  absl::Status Check(nvrtcResult result, const char* call) const {
    if (result == NVRTC_SUCCESS) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(call, " failed: ", ErrorName(result)));
  }
};

NvrtcCompiler::NvrtcCompiler() = default;
NvrtcCompiler::~NvrtcCompiler() = default;

absl::StatusOr<const NvrtcCompiler::Library*> NvrtcCompiler::Load() {
  std::call_once(load_once_, [this] {
    LibrarySearch search;
    search.names = {"libnvrtc.so.13", "libnvrtc.so.12"};
    if (const char* cuda_home = std::getenv("CUDA_HOME"); cuda_home != nullptr && *cuda_home) {
      search.directories.push_back(absl::StrCat(cuda_home, "/lib64"));
    }
    search.directories.push_back("/usr/local/cuda/lib64");
    search.required_symbol = "nvrtcCreateProgram";
    auto nvrtc = DynamicLibrary::Open(search);
    if (!nvrtc.ok()) {
      load_status_ = nvrtc.status();
      return;
    }
    auto library = std::unique_ptr<Library>(
        new Library{std::move(*nvrtc), absl::UnavailableError("not searched"), {}, 0, 0, {}});
    if (load_status_ = BindNvrtc(library->nvrtc, &library->api); !load_status_.ok()) return;
    const NvrtcApi& api = library->api;
    load_status_ = library->Check(api.nvrtcVersion(&library->major, &library->minor),
                                  "nvrtcVersion");
    if (!load_status_.ok()) return;
    int count = 0;
    load_status_ = library->Check(api.nvrtcGetNumSupportedArchs(&count),
                                  "nvrtcGetNumSupportedArchs");
    if (!load_status_.ok()) return;
    library->archs.resize(count);
    load_status_ = library->Check(api.nvrtcGetSupportedArchs(library->archs.data()),
                                  "nvrtcGetSupportedArchs");
    if (!load_status_.ok()) return;

    const std::string builtins =
        absl::StrCat("libnvrtc-builtins.so.", library->major, ".", library->minor);
    LibrarySearch builtins_search;
    builtins_search.names = {absl::StrCat(Dirname(library->nvrtc.path()), "/", builtins),
                             builtins};
    library->builtins = DynamicLibrary::Open(builtins_search);
    library_ = std::move(library);
  });
  if (!load_status_.ok()) return load_status_;
  return library_.get();
}

absl::StatusOr<std::string> NvrtcCompiler::Identity() {
  std::call_once(identity_once_, [this] {
    auto library = Load();
    if (!library.ok()) {
      identity_ = library.status();
      return;
    }
    const Library& lib = **library;
    auto nvrtc_id = lib.nvrtc.ContentIdentity();
    if (!nvrtc_id.ok()) {
      identity_ = nvrtc_id.status();
      return;
    }
    std::string identity = absl::StrCat("nvrtc ", lib.major, ".", lib.minor, "; ",
                                        Basename(lib.nvrtc.path()), " ", *nvrtc_id);
    if (lib.builtins.ok()) {
      auto builtins_id = lib.builtins->ContentIdentity();
      if (!builtins_id.ok()) {
        identity_ = builtins_id.status();
        return;
      }
      absl::StrAppend(&identity, "; ", Basename(lib.builtins->path()), " ", *builtins_id);
    } else {
      absl::StrAppend(&identity, "; no libnvrtc-builtins");
    }
    identity_ = std::move(identity);
  });
  return identity_;
}

absl::StatusOr<std::vector<std::string>> NvrtcCompiler::SupportedTargets() {
  ASSIGN_OR_RETURN(const Library* library, Load());
  std::vector<std::string> targets;
  for (int arch : library->archs) targets.push_back(absl::StrCat("sm_", arch));
  return targets;
}

absl::Status NvrtcCompiler::ValidateTarget(absl::string_view target) {
  ASSIGN_OR_RETURN(ParsedArch arch, ParseArch(target));
  ASSIGN_OR_RETURN(const Library* library, Load());
  if (!absl::c_linear_search(library->archs, arch.number)) {
    return absl::UnimplementedError(absl::StrCat(
        "NVRTC ", library->major, ".", library->minor, " cannot compile for ", target,
        "; it supports sm_", absl::StrJoin(library->archs, ", sm_")));
  }
  // Arch-specific targets exist from Hopper, family-specific ones from Blackwell.
  if ((arch.variant == 'a' && arch.number < 90) || (arch.variant == 'f' && arch.number < 100)) {
    return absl::UnimplementedError(absl::StrCat(
        target, " does not exist: '", std::string(1, arch.variant), "' variants start at sm_",
        arch.variant == 'a' ? 90 : 100));
  }
  return absl::OkStatus();
}

std::vector<std::string> NvrtcCompiler::Options(absl::string_view target) const {
  return {absl::StrCat("--gpu-architecture=", target),
          "-std=c++17",
          "--fmad=true",
          "--ftz=false",
          "--prec-div=true",
          "--prec-sqrt=true",
          "-default-device"};
}

absl::StatusOr<std::string> NvrtcCompiler::Compile(const CompileRequest& request) {
  RETURN_IF_ERROR(ValidateTarget(request.target));
  ASSIGN_OR_RETURN(const Library* library, Load());
  const NvrtcApi& api = library->api;

  ASSIGN_OR_RETURN(const std::vector<std::string> options, CompileArguments(*this, request));
  std::vector<const char*> argv = ArgumentPointers(options);

  // NVRTC wants NUL-terminated text.
  const std::string source(request.source);
  const std::string name(request.source_name.empty() ? "source.cu" : request.source_name);
  nvrtcProgram program = nullptr;
  RETURN_IF_ERROR(library->Check(
      api.nvrtcCreateProgram(&program, source.c_str(), name.c_str(), 0, nullptr, nullptr),
      "nvrtcCreateProgram"));
  absl::Cleanup destroy = [&] { api.nvrtcDestroyProgram(&program); };

  const nvrtcResult compiled =
      api.nvrtcCompileProgram(program, static_cast<int>(argv.size()), argv.data());
  std::string log;
  size_t log_size = 0;
  if (api.nvrtcGetProgramLogSize(program, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    log.resize(log_size);
    log = api.nvrtcGetProgramLog(program, &log[0]) == NVRTC_SUCCESS ? TrimCompilerLog(log) : "";
  }
  if (compiled != NVRTC_SUCCESS) {
    std::string message =
        absl::StrCat("NVRTC ", library->major, ".", library->minor, " failed to compile ", name,
                     " for ", request.target, " (", library->ErrorName(compiled), ") with ",
                     absl::StrJoin(options, " "), ":\n", log);
    if (compiled == NVRTC_ERROR_COMPILATION && MentionsResourceExhaustion(log)) {
      return absl::ResourceExhaustedError(message);
    }
    return absl::InternalError(message);
  }

  size_t cubin_size = 0;
  RETURN_IF_ERROR(library->Check(api.nvrtcGetCUBINSize(program, &cubin_size),
                                 "nvrtcGetCUBINSize"));
  if (cubin_size == 0) {
    return absl::InternalError(absl::StrCat("NVRTC produced no cubin for ", request.target));
  }
  std::string cubin(cubin_size, '\0');
  RETURN_IF_ERROR(library->Check(api.nvrtcGetCUBIN(program, &cubin[0]), "nvrtcGetCUBIN"));
  return cubin;
}

}  // namespace rope_jit
