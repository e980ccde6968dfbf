#include "jit/rocm/clang_compiler.h"

#include <elf.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "jit/rocm/amdgpu_log.h"
#include "jit/spawn.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

constexpr char kDefaultClang[] = "clang-19";
constexpr char kDebianClang19[] = "/usr/lib/llvm-19/bin/clang";

// Questions to clang itself (version, processor list, a target id) are quick.
constexpr std::chrono::milliseconds kQueryTimeout{30000};

// clang's whole environment: it needs nothing of ours, and its temporaries go to the
// private directory. PATH only for what clang might look up by name (it finds lld next to
// itself first).
std::vector<std::string> ChildEnvironment(const std::string& dir) {
  return {"PATH=/usr/bin:/bin", absl::StrCat("TMPDIR=", dir), "LC_ALL=C"};
}

absl::StatusOr<std::string> RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  return std::string(resolved);
}

absl::Status WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The code object clang wrote, bounded before it is read and checked to be an AMDGPU ELF.
absl::StatusOr<std::string> ReadCodeObject(const std::string& path, size_t max_bytes) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InternalError(absl::StrCat("clang exited 0 but wrote no code object ", path));
  }
  if (st.st_size <= 0 || static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InternalError(absl::StrCat("clang's code object is ", st.st_size,
                                            " bytes; accepted: 1 to ", max_bytes));
  }
  std::string code(static_cast<size_t>(st.st_size), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(&code[0], static_cast<std::streamsize>(code.size()));
  if (!in || in.gcount() != static_cast<std::streamsize>(code.size())) {
    return absl::InternalError(absl::StrCat("cannot read ", path));
  }
  Elf64_Ehdr header{};
  if (code.size() >= sizeof(header)) std::memcpy(&header, code.data(), sizeof(header));
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_ident[EI_DATA] != ELFDATA2LSB || header.e_machine != EM_AMDGPU) {
    return absl::InternalError("clang's output is not an AMDGPU ELF code object");
  }
  return code;
}

std::string TrimmedLog(absl::string_view log) {
  return std::string(absl::StripTrailingAsciiWhitespace(log));
}

// The program interpreter (dynamic loader) an ELF64 executable names in PT_INTERP, or "".
std::string ProgramInterpreter(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr header;
  if (!in.read(reinterpret_cast<char*>(&header), sizeof(header)) ||
      std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phnum > 256) {
    return "";
  }
  for (int i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment;
    in.seekg(static_cast<std::streamoff>(header.e_phoff + i * sizeof(segment)));
    if (!in.read(reinterpret_cast<char*>(&segment), sizeof(segment))) return "";
    if (segment.p_type != PT_INTERP) continue;
    if (segment.p_filesz == 0 || segment.p_filesz > PATH_MAX) return "";
    std::string interpreter(segment.p_filesz, '\0');
    in.seekg(static_cast<std::streamoff>(segment.p_offset));
    if (!in.read(&interpreter[0], static_cast<std::streamsize>(interpreter.size()))) return "";
    interpreter.resize(std::strlen(interpreter.c_str()));
    return interpreter;
  }
  return "";
}

// The LLVM libraries (libLLVM*, libclang*: front end, AMDGPU back end) that `clang` loads, as
// its dynamic loader resolves them ("ld.so --list", what ldd prints). Empty for a static clang.
absl::StatusOr<std::vector<std::string>> LlvmLibraries(const std::string& clang) {
  const std::string loader = ProgramInterpreter(clang);
  std::vector<std::string> libraries;
  if (loader.empty() || loader[0] != '/') return libraries;
  SpawnOptions list;
  list.argv = {loader, "--list", clang};
  list.env = {"LC_ALL=C"};
  list.timeout = kQueryTimeout;
  ASSIGN_OR_RETURN(SpawnResult listed, RunProcess(list));
  if (listed.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(loader, " --list ", clang, " failed: ",
                                               TrimmedLog(listed.output)));
  }
  for (absl::string_view line : absl::StrSplit(listed.output, '\n')) {
    // "\tlibLLVM.so.19.1 => /lib/x86_64-linux-gnu/libLLVM.so.19.1 (0x...)"
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::StripAsciiWhitespace(line), ' ', absl::SkipEmpty());
    if (parts.size() < 3 || parts[1] != "=>" || parts[2][0] != '/') continue;
    if (absl::StartsWith(parts[0], "libLLVM") || absl::StartsWith(parts[0], "libclang")) {
      ASSIGN_OR_RETURN(std::string real, RealPath(std::string(parts[2])));
      libraries.push_back(std::move(real));
    }
  }
  return libraries;
}

}  // namespace

ClangCompilerConfig ClangCompilerConfig::FromEnvironment() {
  ClangCompilerConfig config;
  if (const char* clang = std::getenv("ROPE_JIT_AMD_CLANG"); clang != nullptr && *clang) {
    config.clang = clang;
  }
  return config;
}

struct ClangCompiler::Run {
  SpawnResult result;
  std::string code;  // the code object, when asked for and clang succeeded
};

ClangCompiler::ClangCompiler(ClangCompilerConfig config)
    : config_(std::move(config)), installation_(absl::UnavailableError("not loaded")) {}

absl::StatusOr<ClangCompiler::Run> ClangCompiler::RunClang(const Installation& clang,
                                                           std::vector<std::string> args,
                                                           absl::string_view source,
                                                           absl::string_view source_name,
                                                           bool want_output) {
  ASSIGN_OR_RETURN(std::string dir, MakePrivateTempDir("rope_jit_clang_"));
  absl::Cleanup remove = [&] { RemoveTree(dir).IgnoreError(); };
  // A fixed file name: the code must not depend on where the compile ran (with
  // -fuse-cuid=none nothing in the output names the file).
  const std::string source_path = absl::StrCat(dir, "/", source_name);
  const std::string output_path = absl::StrCat(dir, "/kernel.hsaco");
  RETURN_IF_ERROR(WriteFile(source_path, source));

  SpawnOptions options;
  options.argv = {clang.clang};
  for (std::string& arg : args) options.argv.push_back(std::move(arg));
  options.argv.push_back(source_path);
  options.argv.push_back("-o");
  options.argv.push_back(want_output ? output_path : "/dev/null");
  options.env = ChildEnvironment(dir);
  options.working_dir = dir;
  options.timeout = config_.timeout;
  options.max_output_bytes = config_.max_log_bytes;
  ASSIGN_OR_RETURN(SpawnResult result, RunProcess(options));
  Run run{std::move(result), ""};
  if (want_output && run.result.exit_code == 0 && !run.result.timed_out) {
    ASSIGN_OR_RETURN(run.code, ReadCodeObject(output_path, config_.max_code_object_bytes));
  }
  return run;
}

absl::StatusOr<const ClangCompiler::Installation*> ClangCompiler::Load() {
  std::call_once(load_once_, [this] {
    installation_ = [this]() -> absl::StatusOr<Installation> {
      const std::string& wanted = config_.clang;
      absl::StatusOr<std::string> found = FindOnPath(wanted);
      if (!found.ok() && wanted == kDefaultClang && access(kDebianClang19, X_OK) == 0) {
        found = std::string(kDebianClang19);
      }
      if (!found.ok()) {
        return absl::UnavailableError(absl::StrCat(
            "no clang for AMD targets: ", wanted, " (ROPE_JIT_AMD_CLANG names another; Debian: "
            "apt-get install clang-19 lld-19): ", found.status().message()));
      }
      Installation clang;
      ASSIGN_OR_RETURN(clang.clang, RealPath(*found));

      // lld links the code object; clang takes the ld.lld next to itself first.
      const std::string clang_dir = clang.clang.substr(0, clang.clang.rfind('/'));
      absl::StatusOr<std::string> lld = RealPath(absl::StrCat(clang_dir, "/ld.lld"));
      if (!lld.ok()) {
        return absl::UnavailableError(absl::StrCat(
            clang.clang, " has no ld.lld next to it to link AMD code objects (install lld-19): ",
            lld.status().message()));
      }

      SpawnOptions version;
      version.argv = {clang.clang, "--version"};
      version.env = ChildEnvironment("/tmp");
      version.timeout = kQueryTimeout;
      absl::StatusOr<SpawnResult> ran = RunProcess(version);
      if (!ran.ok() || ran->exit_code != 0) {
        return absl::UnavailableError(
            absl::StrCat("cannot run ", clang.clang, " --version: ",
                         ran.ok() ? TrimmedLog(ran->output) : ran.status().ToString()));
      }
      clang.version = std::string(absl::StripAsciiWhitespace(
          absl::string_view(ran->output).substr(0, ran->output.find('\n'))));
      if (!absl::StrContains(clang.version, "clang version")) {
        return absl::UnavailableError(
            absl::StrCat(clang.clang, " does not say it is clang: '", clang.version, "'"));
      }

      // The processors the AMDGPU backend knows.
      SpawnOptions cpus;
      cpus.argv = {clang.clang, "--target=amdgcn-amd-amdhsa", "-nogpulib",
                   "--print-supported-cpus"};
      cpus.env = ChildEnvironment("/tmp");
      cpus.timeout = kQueryTimeout;
      ASSIGN_OR_RETURN(SpawnResult listed, RunProcess(cpus));
      for (absl::string_view line : absl::StrSplit(listed.output, '\n')) {
        line = absl::StripAsciiWhitespace(line);
        // "gfx942"; not "gfx9-generic" (a family target, not a device) nor gfx6xx.
        if (!absl::StartsWith(line, "gfx") || absl::StartsWith(line, "gfx6") ||
            absl::StrContains(line, "-") || absl::StrContains(line, " ")) {
          continue;
        }
        clang.processors.emplace_back(line);
      }
      if (listed.exit_code != 0 || clang.processors.empty()) {
        return absl::UnavailableError(absl::StrCat(clang.clang,
                                                   " lists no AMDGPU processors (is it built "
                                                   "with the AMDGPU target?): ",
                                                   TrimmedLog(listed.output)));
      }

      // What decides the code: clang, the LLVM libraries it runs, lld.
      std::vector<std::string> files = {clang.clang};
      ASSIGN_OR_RETURN(std::vector<std::string> libraries, LlvmLibraries(clang.clang));
      files.insert(files.end(), libraries.begin(), libraries.end());
      files.push_back(*lld);
      clang.identity = absl::StrCat("clang ", clang.version);
      for (const std::string& file : files) {
        ASSIGN_OR_RETURN(std::string hash, HashFile(file));
        absl::StrAppend(&clang.identity, "; ", file, " ", hash);
      }
      return clang;
    }();
  });
  if (!installation_.ok()) return installation_.status();
  return &*installation_;
}

absl::StatusOr<std::string> ClangCompiler::Identity() {
  ASSIGN_OR_RETURN(const Installation* clang, Load());
  return clang->identity;
}

absl::StatusOr<std::vector<std::string>> ClangCompiler::SupportedTargets() {
  ASSIGN_OR_RETURN(const Installation* clang, Load());
  return clang->processors;
}

absl::Status ClangCompiler::ValidateTarget(absl::string_view target) {
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  if (vendor != Vendor::kAmd) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", target, "' is an NVIDIA target; clang compiles gfx targets here"));
  }
  ASSIGN_OR_RETURN(const Installation* clang, Load());
  const absl::string_view processor = AmdProcessor(target);
  if (!absl::c_linear_search(clang->processors, processor)) {
    return absl::UnimplementedError(absl::StrCat(clang->version, " cannot compile for ", processor,
                                                 "; it supports ",
                                                 absl::StrJoin(clang->processors, ", ")));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> features, AmdFeatureNames(target));
  if (features.empty()) return absl::OkStatus();

  // Which features a processor has is clang's knowledge: ask it, once per target id.
  const std::string key(target);
  {
    std::lock_guard<std::mutex> lock(validated_mu_);
    if (auto it = validated_.find(key); it != validated_.end()) return it->second;
  }
  std::vector<std::string> args = Options(target);
  args.push_back("-fsyntax-only");
  ASSIGN_OR_RETURN(Run run, RunClang(*clang, std::move(args), "", "empty.hip", false));
  absl::Status status = absl::OkStatus();
  if (run.result.exit_code != 0) {
    status = absl::UnimplementedError(absl::StrCat(clang->version, " rejects the target id ",
                                                   target, ": ", TrimmedLog(run.result.output)));
  }
  std::lock_guard<std::mutex> lock(validated_mu_);
  validated_.emplace(key, status);
  return status;
}

std::vector<std::string> ClangCompiler::Options(absl::string_view target) const {
  // hipRTC's language and math settings (jit/rocm/hiprtc_compiler.cc): C++17, FMA
  // contraction within expressions only (clang's HIP default would be fast-honor-pragmas),
  // CU mode on gfx10+ (clang's default there is WGP mode); denormals kept, no fast math.
  // -fuse-cuid=none: no per-file id in the output, so the same source gives the same bytes
  // wherever it is compiled (AOT/JIT parity). Code object version 5, which ROCm 6 loads and
  // clang 19 defaults to, stated so that another clang cannot change it silently.
  return {"-x",
          "hip",
          absl::StrCat("--offload-arch=", target),
          "-nogpuinc",
          "-nogpulib",
          "--cuda-device-only",
          "--no-gpu-bundle-output",
          "-O3",
          "-std=c++17",
          "-ffp-contract=on",
          "-mcumode",
          "-mcode-object-version=5",
          "-fuse-cuid=none",
          "-DROPE_HIP_WITHOUT_RUNTIME=1"};
}

absl::StatusOr<std::string> ClangCompiler::Compile(const CompileRequest& request) {
  RETURN_IF_ERROR(ValidateTarget(request.target));
  ASSIGN_OR_RETURN(const Installation* clang, Load());
  ASSIGN_OR_RETURN(std::vector<std::string> args, CompileArguments(*this, request));
  const std::vector<std::string> shown = args;
  ASSIGN_OR_RETURN(Run run, RunClang(*clang, std::move(args), request.source, "kernel.hip", true));
  const std::string name(request.source_name.empty() ? "source.hip" : request.source_name);
  if (run.result.timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        clang->version, " did not finish compiling ", name, " for ", request.target, " within ",
        config_.timeout.count(), " ms (killed)"));
  }
  if (run.result.exit_code != 0) {
    std::string message = absl::StrCat(
        clang->version, " failed to compile ", name, " for ", request.target, " (",
        run.result.term_signal != 0 ? absl::StrCat("signal ", run.result.term_signal)
                                    : absl::StrCat("exit ", run.result.exit_code),
        ") with ", absl::StrJoin(shown, " "), ":\n", TrimmedLog(run.result.output));
    if (MentionsResourceExhaustion(run.result.output)) {
      return absl::ResourceExhaustedError(message);
    }
    return absl::InternalError(message);
  }
  return std::move(run.code);
}

}  // namespace rope_jit
