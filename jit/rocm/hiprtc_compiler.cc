#include "jit/rocm/hiprtc_compiler.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/base/const_init.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "jit/dynamic_library.h"
#include "jit/rocm/amdgpu_log.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

// The slices of hiprtc.h and amd_comgr.h we use, declared here so that no ROCm header is
// needed to build.
using hiprtcResult = int;  // enum hiprtcResult
constexpr hiprtcResult HIPRTC_SUCCESS = 0;
constexpr hiprtcResult HIPRTC_ERROR_COMPILATION = 6;
using hiprtcProgram = struct _hiprtcProgram*;

using amd_comgr_status_t = int;  // enum amd_comgr_status_s
constexpr amd_comgr_status_t AMD_COMGR_STATUS_SUCCESS = 0;
struct amd_comgr_metadata_node_t {
  uint64_t handle;
};
using amd_comgr_metadata_kind_t = int;  // enum amd_comgr_metadata_kind_s
constexpr amd_comgr_metadata_kind_t AMD_COMGR_METADATA_KIND_STRING = 1;
constexpr amd_comgr_metadata_kind_t AMD_COMGR_METADATA_KIND_MAP = 2;
using MapCallback = amd_comgr_status_t (*)(amd_comgr_metadata_node_t, amd_comgr_metadata_node_t,
                                           void*);

constexpr absl::string_view kIsaPrefix = "amdgcn-amd-amdhsa--";

// One list per library generates both the function-pointer table and its loader.
#define ROPE_JIT_HIPRTC_SYMBOLS(X)                                                  \
  X(hiprtcGetErrorString, const char*, (hiprtcResult))                              \
  X(hiprtcVersion, hiprtcResult, (int*, int*))                                      \
  X(hiprtcCreateProgram, hiprtcResult,                                              \
    (hiprtcProgram*, const char*, const char*, int, const char**, const char**))    \
  X(hiprtcDestroyProgram, hiprtcResult, (hiprtcProgram*))                           \
  X(hiprtcCompileProgram, hiprtcResult, (hiprtcProgram, int, const char**))         \
  X(hiprtcGetProgramLogSize, hiprtcResult, (hiprtcProgram, size_t*))                \
  X(hiprtcGetProgramLog, hiprtcResult, (hiprtcProgram, char*))                      \
  X(hiprtcGetCodeSize, hiprtcResult, (hiprtcProgram, size_t*))                      \
  X(hiprtcGetCode, hiprtcResult, (hiprtcProgram, char*))

#define ROPE_JIT_COMGR_SYMBOLS(X)                                                              \
  X(amd_comgr_get_version, void, (size_t*, size_t*))                                           \
  X(amd_comgr_get_isa_count, amd_comgr_status_t, (size_t*))                                   \
  X(amd_comgr_get_isa_name, amd_comgr_status_t, (size_t, const char**))                        \
  X(amd_comgr_get_isa_metadata, amd_comgr_status_t, (const char*, amd_comgr_metadata_node_t*)) \
  X(amd_comgr_metadata_lookup, amd_comgr_status_t,                                             \
    (amd_comgr_metadata_node_t, const char*, amd_comgr_metadata_node_t*))                      \
  X(amd_comgr_get_metadata_kind, amd_comgr_status_t,                                           \
    (amd_comgr_metadata_node_t, amd_comgr_metadata_kind_t*))                                   \
  X(amd_comgr_get_metadata_string, amd_comgr_status_t,                                         \
    (amd_comgr_metadata_node_t, size_t*, char*))                                               \
  X(amd_comgr_iterate_map_metadata, amd_comgr_status_t,                                        \
    (amd_comgr_metadata_node_t, MapCallback, void*))                                           \
  X(amd_comgr_destroy_metadata, amd_comgr_status_t, (amd_comgr_metadata_node_t))

#define ROPE_JIT_POINTER(name, result, params) result(*name) params = nullptr;
#define ROPE_JIT_BIND(name, result, params) RETURN_IF_ERROR(library.Bind(#name, &api->name));

struct HiprtcApi {
  ROPE_JIT_HIPRTC_SYMBOLS(ROPE_JIT_POINTER)
};
struct ComgrApi {
  ROPE_JIT_COMGR_SYMBOLS(ROPE_JIT_POINTER)
};

absl::Status BindHiprtc(const DynamicLibrary& library, HiprtcApi* api) {
  ROPE_JIT_HIPRTC_SYMBOLS(ROPE_JIT_BIND)
  return absl::OkStatus();
}
absl::Status BindComgr(const DynamicLibrary& library, ComgrApi* api) {
  ROPE_JIT_COMGR_SYMBOLS(ROPE_JIT_BIND)
  return absl::OkStatus();
}

#undef ROPE_JIT_POINTER
#undef ROPE_JIT_BIND

// hipRTC and comgr calls, process-wide: hipRTC 5.2 is not documented as thread-safe.
std::mutex g_hiprtc_mutex;  // constant-initialized

absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

std::vector<std::string> RocmDirectories() {
  std::vector<std::string> directories;
  if (const char* rocm = std::getenv("ROCM_PATH"); rocm != nullptr && *rocm) {
    directories.push_back(absl::StrCat(rocm, "/lib"));
  }
  directories.push_back("/opt/rocm/lib");
  return directories;
}

}  // namespace

struct HiprtcCompiler::Library {
  Library(DynamicLibrary hiprtc_library, DynamicLibrary comgr_library)
      : hiprtc(std::move(hiprtc_library)), comgr(std::move(comgr_library)) {}

  DynamicLibrary hiprtc;
  DynamicLibrary comgr;
  std::vector<DynamicLibrary> llvm;  // comgr's own LLVM, when it is a separate library
  HiprtcApi api;
  ComgrApi comgr_api;
  int major = 0, minor = 0;
  size_t comgr_major = 0, comgr_minor = 0;
  std::vector<std::string> processors;  // in comgr's order, without duplicates

  std::string ErrorName(hiprtcResult result) const {
    const char* name = api.hiprtcGetErrorString(result);
    return name != nullptr ? name : absl::StrCat("hiprtcResult ", result);
  }
  absl::Status Check(hiprtcResult result, const char* call) const {
    if (result == HIPRTC_SUCCESS) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(call, " failed: ", ErrorName(result)));
  }

  // Feature names ("sramecc", "xnack") comgr lists for a processor. Caller holds the mutex.
  absl::StatusOr<std::vector<std::string>> Features(absl::string_view processor) const {
    const std::string isa = absl::StrCat(kIsaPrefix, processor);
    amd_comgr_metadata_node_t metadata{0};
    if (comgr_api.amd_comgr_get_isa_metadata(isa.c_str(), &metadata) !=
        AMD_COMGR_STATUS_SUCCESS) {
      return absl::InternalError(absl::StrCat("amd_comgr_get_isa_metadata(", isa, ") failed"));
    }
    absl::Cleanup destroy_metadata = [&] { comgr_api.amd_comgr_destroy_metadata(metadata); };
    amd_comgr_metadata_node_t features{0};
    if (comgr_api.amd_comgr_metadata_lookup(metadata, "Features", &features) !=
        AMD_COMGR_STATUS_SUCCESS) {
      return std::vector<std::string>();  // an older comgr without the key: no features known
    }
    absl::Cleanup destroy_features = [&] { comgr_api.amd_comgr_destroy_metadata(features); };
    amd_comgr_metadata_kind_t kind = 0;
    if (comgr_api.amd_comgr_get_metadata_kind(features, &kind) != AMD_COMGR_STATUS_SUCCESS ||
        kind != AMD_COMGR_METADATA_KIND_MAP) {
      return std::vector<std::string>();
    }
    struct Collected {
      const ComgrApi* api;
      std::vector<std::string> names;
    } collected{&comgr_api, {}};
    MapCallback collect = [](amd_comgr_metadata_node_t key, amd_comgr_metadata_node_t,
                             void* data) -> amd_comgr_status_t {
      auto* out = static_cast<Collected*>(data);
      amd_comgr_metadata_kind_t key_kind = 0;
      size_t size = 0;
      if (out->api->amd_comgr_get_metadata_kind(key, &key_kind) != AMD_COMGR_STATUS_SUCCESS ||
          key_kind != AMD_COMGR_METADATA_KIND_STRING ||
          out->api->amd_comgr_get_metadata_string(key, &size, nullptr) !=
              AMD_COMGR_STATUS_SUCCESS) {
        return AMD_COMGR_STATUS_SUCCESS;
      }
      std::string name(size, '\0');
      if (out->api->amd_comgr_get_metadata_string(key, &size, &name[0]) ==
          AMD_COMGR_STATUS_SUCCESS) {
        name.resize(std::strlen(name.c_str()));
        out->names.push_back(std::move(name));
      }
      return AMD_COMGR_STATUS_SUCCESS;
    };
    comgr_api.amd_comgr_iterate_map_metadata(features, collect, &collected);
    return collected.names;
  }
};

HiprtcCompiler::HiprtcCompiler() = default;
HiprtcCompiler::~HiprtcCompiler() = default;

absl::StatusOr<const HiprtcCompiler::Library*> HiprtcCompiler::Load() {
  std::call_once(load_once_, [this] {
    std::lock_guard<std::mutex> lock(g_hiprtc_mutex);
    // hipRTC first: loading it may bring in the comgr it uses, which the comgr search then
    // reuses rather than picking another installed version.
    LibrarySearch hiprtc_search;
    hiprtc_search.names = {"libhiprtc.so.6", "libhiprtc.so.5", "libamdhip64.so.6",
                           "libamdhip64.so.5"};
    hiprtc_search.directories = RocmDirectories();
    hiprtc_search.required_symbol = "hiprtcCreateProgram";
    auto hiprtc = DynamicLibrary::Open(hiprtc_search);
    if (!hiprtc.ok()) {
      load_status_ = hiprtc.status();
      return;
    }
    LibrarySearch comgr_search;
    comgr_search.names = {"libamd_comgr.so.3", "libamd_comgr.so.2"};
    comgr_search.directories = RocmDirectories();
    comgr_search.required_symbol = "amd_comgr_get_isa_count";
    auto comgr = DynamicLibrary::Open(comgr_search);
    if (!comgr.ok()) {
      load_status_ = absl::UnavailableError(absl::StrCat(
          "hipRTC needs comgr to validate targets before compiling: ", comgr.status().message()));
      return;
    }
    auto library = std::make_unique<Library>(std::move(*hiprtc), std::move(*comgr));
    if (load_status_ = BindHiprtc(library->hiprtc, &library->api); !load_status_.ok()) return;
    if (load_status_ = BindComgr(library->comgr, &library->comgr_api); !load_status_.ok()) {
      return;
    }
    for (const std::string& needed : library->comgr.NeededLibraries()) {
      if (!absl::StartsWith(needed, "libLLVM")) continue;
      LibrarySearch llvm_search;
      llvm_search.names = {needed};
      if (auto llvm = DynamicLibrary::Open(llvm_search); llvm.ok()) {
        library->llvm.push_back(std::move(*llvm));
      }
    }
    library->comgr_api.amd_comgr_get_version(&library->comgr_major, &library->comgr_minor);
    // hiprtcVersion reports a fixed number; it is part of the identity, not all of it.
    if (load_status_ = library->Check(library->api.hiprtcVersion(&library->major, &library->minor),
                                      "hiprtcVersion");
        !load_status_.ok()) {
      return;
    }
    size_t count = 0;
    if (library->comgr_api.amd_comgr_get_isa_count(&count) != AMD_COMGR_STATUS_SUCCESS) {
      load_status_ = absl::InternalError("amd_comgr_get_isa_count failed");
      return;
    }
    for (size_t i = 0; i < count; ++i) {
      const char* name = nullptr;
      if (library->comgr_api.amd_comgr_get_isa_name(i, &name) != AMD_COMGR_STATUS_SUCCESS ||
          name == nullptr) {
        load_status_ = absl::InternalError(absl::StrCat("amd_comgr_get_isa_name(", i, ") failed"));
        return;
      }
      // "amdgcn-amd-amdhsa--gfx90a" (newer comgr may append ":sramecc+:xnack-").
      absl::string_view isa = name;
      if (!absl::ConsumePrefix(&isa, kIsaPrefix)) continue;
      std::string processor(AmdProcessor(isa));
      // gfx6xx has no flat address space and was never a HIP target: comgr lists it, but
      // hipRTC aborts the process in instruction selection on real kernels.
      if (absl::StartsWith(processor, "gfx6")) continue;
      if (!absl::c_linear_search(library->processors, processor)) {
        library->processors.push_back(std::move(processor));
      }
    }
    library_ = std::move(library);
  });
  if (!load_status_.ok()) return load_status_;
  return library_.get();
}

absl::StatusOr<std::string> HiprtcCompiler::Identity() {
  std::call_once(identity_once_, [this] {
    auto library = Load();
    if (!library.ok()) {
      identity_ = library.status();
      return;
    }
    const Library& lib = **library;
    std::string identity = absl::StrCat("hiprtc ", lib.major, ".", lib.minor, "; comgr ",
                                        lib.comgr_major, ".", lib.comgr_minor);
    std::vector<const DynamicLibrary*> parts = {&lib.hiprtc, &lib.comgr};
    for (const DynamicLibrary& llvm : lib.llvm) parts.push_back(&llvm);
    for (const DynamicLibrary* part : parts) {
      auto id = part->ContentIdentity();
      if (!id.ok()) {
        identity_ = id.status();
        return;
      }
      absl::StrAppend(&identity, "; ", Basename(part->path()), " ", *id);
    }
    identity_ = std::move(identity);
  });
  return identity_;
}

absl::StatusOr<std::vector<std::string>> HiprtcCompiler::SupportedTargets() {
  ASSIGN_OR_RETURN(const Library* library, Load());
  return library->processors;
}

absl::Status HiprtcCompiler::ValidateTarget(absl::string_view target) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  if (vendor != Vendor::kAmd) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", target, "' is an NVIDIA target; hipRTC compiles for gfx targets"));
  }
  ASSIGN_OR_RETURN(const Library* library, Load());
  const absl::string_view processor = AmdProcessor(target);
  if (!absl::c_linear_search(library->processors, processor)) {
    return absl::UnimplementedError(absl::StrCat(
        "hipRTC ", library->major, ".", library->minor, " (comgr ", library->comgr_major, ".",
        library->comgr_minor, ") cannot compile for ", processor, "; it supports ",
        absl::StrJoin(library->processors, ", ")));
  }

  ASSIGN_OR_RETURN(std::vector<std::string> names, AmdFeatureNames(target));
  if (names.empty()) return absl::OkStatus();

  std::lock_guard<std::mutex> lock(g_hiprtc_mutex);
  ASSIGN_OR_RETURN(std::vector<std::string> supported, library->Features(processor));
  for (const std::string& name : names) {
    if (!absl::c_linear_search(supported, name)) {
      return absl::UnimplementedError(absl::StrCat(
          processor, " has no '", name, "' feature (", target, "); its features: ",
          supported.empty() ? "none" : absl::StrJoin(supported, ", ")));
    }
  }
  // Last word to comgr, which parses target ids as the compiler does.
  const std::string isa = absl::StrCat(kIsaPrefix, target);
  amd_comgr_metadata_node_t metadata{0};
  if (library->comgr_api.amd_comgr_get_isa_metadata(isa.c_str(), &metadata) !=
      AMD_COMGR_STATUS_SUCCESS) {
    return absl::UnimplementedError(absl::StrCat("comgr does not accept the target id ", isa));
  }
  library->comgr_api.amd_comgr_destroy_metadata(metadata);
  return absl::OkStatus();
}

namespace {

// comgr (inside hipRTC) compiles through files, and a failed write there ends the process:
// LLVM's output streams call report_fatal_error ("LLVM ERROR: IO failure on output
// stream", exit 1), a write past RLIMIT_FSIZE raises SIGXFSZ, and the linker writes the
// code object through a mapping of a file it sized first, which raises SIGBUS when the disk
// cannot back a page. What it writes (strace of ROCm 5.2's comgr 2.4, one compile):
//   - a fresh directory comgr-XXXXXX in the system temp directory holding
//     include/hiprtc_runtime.h (360 KiB), the source, the bitcode, the object and the
//     linked code object (under 100 KiB each for our kernels); removed afterwards, kept
//     with AMD_COMGR_SAVE_TEMPS;
//   - the file AMD_COMGR_REDIRECT_LOGS names (unless "stdout" or "stderr");
//   - PerfStatsLog.txt in the working directory with AMD_COMGR_TIME_STATISTICS.
// Each place is checked before every compile for this much room, 40 times what one of
// our compiles writes, and RLIMIT_FSIZE for the same: a refusal is ResourceExhausted.
// Another process can still fill the disk between the check and the write; that window is
// what remains.
constexpr uint64_t kComgrBytesNeeded = uint64_t{16} << 20;

// The directory LLVM's sys::path::system_temp_directory(/*ErasedOnReboot=*/true) gives,
// which comgr uses: the first of TMPDIR, TMP, TEMP, TEMPDIR that is set (even when empty:
// then the working directory), else /tmp. `source` says which.
std::string ComgrTempDirectory(std::string* source) {
  for (const char* name : {"TMPDIR", "TMP", "TEMP", "TEMPDIR"}) {
    if (const char* value = std::getenv(name)) {
      *source = name;
      return value[0] == '\0' ? "." : value;
    }
  }
  *source = "the default";
  return "/tmp";
}

// `dir` exists, is a directory this process can create files in, on a writable file
// system with kComgrBytesNeeded free for unprivileged users and a few inodes.
absl::Status CheckComgrCanWriteIn(const std::string& dir, absl::string_view what) {
  const auto refuse = [&](absl::string_view why) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "hipRTC's compiler (comgr) writes ", what, " in ", dir, ", which ", why,
        "; a failed write there would end the process, so nothing was compiled"));
  };
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) {
    return refuse(absl::StrCat("cannot be used (", std::strerror(errno), ")"));
  }
  struct stat info;
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) return refuse("is not a directory");
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return refuse(absl::StrCat("is not writable (", std::strerror(errno), ")"));
  }
  if ((fs.f_flag & ST_RDONLY) != 0) return refuse("is on a read-only file system");
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes < kComgrBytesNeeded) {
    return refuse(absl::StrCat("has ", free_bytes, " bytes free (", kComgrBytesNeeded,
                               " needed)"));
  }
  if (fs.f_files != 0 && fs.f_favail < 64) {
    return refuse(absl::StrCat("has ", fs.f_favail, " inodes free"));
  }
  return absl::OkStatus();
}

// LLVM inside comgr gives the compiling thread an alternate signal stack of its own (79040
// bytes from malloc) when the one the thread has is smaller than it wants. A sanitizer
// runtime that set the thread's stack unmaps it when the thread ends, finds LLVM's there
// instead, and aborts the process (ASan: "unable to unmap"). So the thread's own stack is
// put back after each compile; LLVM's handlers then run on it, as on any other thread.
class ScopedSignalStack final {
 public:
  ScopedSignalStack() { saved_ = sigaltstack(nullptr, &before_) == 0; }
  ~ScopedSignalStack() {
    stack_t now;
    if (saved_ && sigaltstack(nullptr, &now) == 0 && (now.ss_flags & SS_ONSTACK) == 0 &&
        (now.ss_sp != before_.ss_sp || now.ss_flags != before_.ss_flags)) {
      sigaltstack(&before_, nullptr);
    }
  }
  ScopedSignalStack(const ScopedSignalStack&) = delete;
  ScopedSignalStack& operator=(const ScopedSignalStack&) = delete;

 private:
  stack_t before_{};
  bool saved_ = false;
};

}  // namespace

absl::Status CheckComgrCanWrite() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      limit.rlim_cur < kComgrBytesNeeded) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "RLIMIT_FSIZE is ", limit.rlim_cur, " bytes; hipRTC's compiler (comgr) writes its ",
        "temporary files under it and a write past it would end the process (SIGXFSZ), so ",
        "nothing was compiled (", kComgrBytesNeeded, " bytes needed)"));
  }
  std::string source;
  const std::string temp = ComgrTempDirectory(&source);
  RETURN_IF_ERROR(CheckComgrCanWriteIn(
      temp, absl::StrCat("its temporary files (the system temp directory, from ", source, ")")));
  if (const char* log = std::getenv("AMD_COMGR_REDIRECT_LOGS")) {
    const absl::string_view path = log;
    if (!path.empty() && path != "stdout" && path != "stderr") {
      const size_t slash = path.rfind('/');
      const std::string dir = slash == absl::string_view::npos ? "."
                              : slash == 0                     ? "/"
                                                               : std::string(path.substr(0, slash));
      RETURN_IF_ERROR(CheckComgrCanWriteIn(
          dir, absl::StrCat("its log (AMD_COMGR_REDIRECT_LOGS=", path, ")")));
    }
  }
  if (std::getenv("AMD_COMGR_TIME_STATISTICS") != nullptr) {
    RETURN_IF_ERROR(CheckComgrCanWriteIn(
        ".", "PerfStatsLog.txt (AMD_COMGR_TIME_STATISTICS is set) in the working directory"));
  }
  return absl::OkStatus();
}

std::vector<std::string> HiprtcCompiler::Options(absl::string_view target) const {
  // Chosen so that hipcc --genco (the AOT build, aot/aot_options.cc) emits the same
  // instructions (tests/aot_parity_test.cc). hipRTC runs -O3 twice: over the source alone,
  // and again after comgr links the device libraries. -disable-llvm-passes drops the first,
  // leaving hipcc's single -O3 over source + device libraries. comgr's second stage
  // hard-codes -ffp-contract=on, so "on" (fuse within an expression) is what both sides
  // can share; "fast" fused differently in the two pipelines. -mcumode is what hipRTC
  // passes anyway; stating it lets hipcc (WGP mode by default on gfx10+) get it too.
  return {absl::StrCat("--offload-arch=", target), "-O3", "-std=c++17", "-ffp-contract=on",
          "-mcumode", "-Xclang", "-disable-llvm-passes"};
}

absl::StatusOr<std::string> HiprtcCompiler::Compile(const CompileRequest& request) {
  // Before anything reaches hipRTC: an unknown arch corrupts the heap in ROCm 5.2.
  RETURN_IF_ERROR(ValidateTarget(request.target));
  ASSIGN_OR_RETURN(const Library* library, Load());
  const HiprtcApi& api = library->api;

  ASSIGN_OR_RETURN(const std::vector<std::string> options, CompileArguments(*this, request));
  std::vector<const char*> argv = ArgumentPointers(options);

  const std::string source(request.source);
  const std::string name(request.source_name.empty() ? "source.hip" : request.source_name);

  std::lock_guard<std::mutex> lock(g_hiprtc_mutex);
  // Under the lock: compiles run one at a time, so only this one writes there meanwhile.
  RETURN_IF_ERROR(CheckComgrCanWrite());
  const ScopedSignalStack keep_signal_stack;
  hiprtcProgram program = nullptr;
  RETURN_IF_ERROR(library->Check(
      api.hiprtcCreateProgram(&program, source.c_str(), name.c_str(), 0, nullptr, nullptr),
      "hiprtcCreateProgram"));
  absl::Cleanup destroy = [&] { api.hiprtcDestroyProgram(&program); };

  const hiprtcResult compiled =
      api.hiprtcCompileProgram(program, static_cast<int>(argv.size()), argv.data());
  std::string log;
  size_t log_size = 0;
  if (api.hiprtcGetProgramLogSize(program, &log_size) == HIPRTC_SUCCESS && log_size > 1) {
    log.resize(log_size);
    log = api.hiprtcGetProgramLog(program, &log[0]) == HIPRTC_SUCCESS ? TrimCompilerLog(log) : "";
  }
  if (compiled != HIPRTC_SUCCESS) {
    std::string message = absl::StrCat("hipRTC ", library->major, ".", library->minor,
                                       " failed to compile ", name, " for ", request.target, " (",
                                       library->ErrorName(compiled), ") with ",
                                       absl::StrJoin(options, " "), ":\n", log);
    if (compiled == HIPRTC_ERROR_COMPILATION && MentionsResourceExhaustion(log)) {
      return absl::ResourceExhaustedError(message);
    }
    return absl::InternalError(message);
  }

  size_t code_size = 0;
  RETURN_IF_ERROR(library->Check(api.hiprtcGetCodeSize(program, &code_size), "hiprtcGetCodeSize"));
  if (code_size == 0) {
    return absl::InternalError(absl::StrCat("hipRTC produced no code object for ", request.target));
  }
  std::string code(code_size, '\0');
  RETURN_IF_ERROR(library->Check(api.hiprtcGetCode(program, &code[0]), "hiprtcGetCode"));
  return code;
}

}  // namespace rope_jit
