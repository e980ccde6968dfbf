#include "jit/host/host_compiler.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "jit/spawn.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

constexpr std::chrono::milliseconds kVersionTimeout{30000};

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' ? value : fallback;
}

// What the compiler's driver needs to find its own tools (as, ld), and logs in English.
std::vector<std::string> CompilerEnvironment(const std::string& temp_dir) {
  std::vector<std::string> env = {absl::StrCat("PATH=", EnvOr("PATH", "/usr/bin:/bin")),
                                  "LC_ALL=C"};
  if (!temp_dir.empty()) env.push_back(absl::StrCat("TMPDIR=", temp_dir));
  return env;
}

absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// The file name the source gets in the compiler's log: `source_name` with anything but
// [A-Za-z0-9_.-] replaced.
std::string SourceFileName(absl::string_view source_name) {
  std::string name;
  for (char c : source_name.substr(0, 64)) {
    const bool plain = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                       c == '-' || (c == '.' && !name.empty());
    name.push_back(plain ? c : '_');
  }
  return absl::StrCat(name.empty() ? "kernel" : name, ".cc");
}

absl::Status WriteFile(const std::string& path, absl::string_view bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", path));
  absl::Cleanup close_fd = [fd] { close(fd); };
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("cannot write ", path));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// The compiler's output, refused when larger than `max_bytes` (bounded before reading).
absl::StatusOr<std::string> ReadOutput(const std::string& path, size_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return absl::InternalError(absl::StrCat("the compiler wrote no ", path));
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat info;
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    return absl::InternalError(absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the compiled object is ", info.st_size,
                                                     " bytes; the limit is ", max_bytes));
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("cannot read ", path));
    done += static_cast<size_t>(n);
  }
  if (bytes.size() < 4 || bytes.compare(0, 4, "\x7f" "ELF") != 0) {
    return absl::InternalError(absl::StrCat("the compiler's output ", path,
                                            " is not an ELF shared object"));
  }
  return bytes;
}

std::string DescribeFailure(const SpawnResult& result) {
  if (result.term_signal != 0) return absl::StrCat("was killed by signal ", result.term_signal);
  return absl::StrCat("exited with status ", result.exit_code);
}

}  // namespace

HostCompilerOptions HostCompilerOptions::FromEnvironment() {
  HostCompilerOptions options;
  options.cxx = EnvOr("ROPE_JIT_HOST_CXX", "c++");
  int seconds = 0;
  if (absl::SimpleAtoi(EnvOr("ROPE_JIT_HOST_COMPILE_TIMEOUT_S", ""), &seconds) && seconds > 0) {
    options.timeout = std::chrono::seconds(seconds);
  }
  options.sanitize = EnvOr("ROPE_JIT_HOST_SANITIZE", "");
  return options;
}

HostCompiler::HostCompiler(HostCompilerOptions options)
    : options_(std::move(options)), resolved_(absl::UnknownError("not resolved")) {}

absl::StatusOr<HostCompiler::Resolved> HostCompiler::Resolve() {
  std::call_once(resolve_once_, [this] {
    resolved_ = [this]() -> absl::StatusOr<Resolved> {
      absl::StatusOr<std::string> found = FindOnPath(options_.cxx);
      if (!found.ok()) {
        return absl::UnavailableError(absl::StrCat(
            "no host C++ compiler: looked for '", options_.cxx,
            "' ($ROPE_JIT_HOST_CXX, else c++ on PATH): ", found.status().message()));
      }
      char real[PATH_MAX];
      if (realpath(found->c_str(), real) == nullptr) {
        return absl::UnavailableError(absl::StrCat("cannot resolve the host compiler ", *found));
      }
      Resolved resolved;
      resolved.path = real;
      absl::StatusOr<std::string> hash = HashFile(resolved.path);
      if (!hash.ok()) {
        return absl::UnavailableError(absl::StrCat("cannot read the host compiler ",
                                                   resolved.path, ": ", hash.status().message()));
      }
      SpawnOptions version;
      version.argv = {resolved.path, "--version"};
      version.env = CompilerEnvironment("");
      version.timeout = std::min(options_.timeout, kVersionTimeout);
      version.max_output_bytes = 4096;
      absl::StatusOr<SpawnResult> answer = RunProcess(version);
      if (!answer.ok() || answer->exit_code != 0) {
        return absl::UnavailableError(absl::StrCat(
            "the host compiler ", resolved.path, " does not answer --version: ",
            answer.ok() ? DescribeFailure(*answer) + ": " + answer->output
                        : answer.status().ToString()));
      }
      const std::string first_line = answer->output.substr(0, answer->output.find('\n'));
      resolved.identity =
          absl::StrCat("host-cxx ", Basename(resolved.path), " ", *hash, "; ", first_line);
      return resolved;
    }();
  });
  return resolved_;
}

absl::StatusOr<std::string> HostCompiler::Identity() {
  ASSIGN_OR_RETURN(Resolved resolved, Resolve());
  return resolved.identity;
}

absl::StatusOr<std::vector<std::string>> HostCompiler::SupportedTargets() {
  return std::vector<std::string>{std::string(kHostTarget)};
}

absl::Status HostCompiler::ValidateTarget(absl::string_view target) {
  if (target == kHostTarget) return absl::OkStatus();
  absl::StatusOr<Vendor> vendor = VendorOfTarget(target);
  if (!vendor.ok()) return vendor.status();
  return absl::UnimplementedError(absl::StrCat("the host compiler builds only for '",
                                               kHostTarget, "', not ", target));
}

std::vector<std::string> HostCompiler::Options(absl::string_view target) const {
  // Sanitized objects are for finding bad accesses, not for speed: -O1 halves their
  // compile time (ASan+UBSan at -O2 cost 5-8 s a spec here).
  std::vector<std::string> options = {"-std=c++17",
                                      options_.sanitize.empty() ? "-O2" : "-O1",
                                      "-fPIC",
                                      "-shared",
                                      "-fno-strict-aliasing",
                                      "-ffp-contract=off",
                                      "-DROPE_HOST=1"};
  if (!options_.sanitize.empty()) {
    options.push_back(absl::StrCat("-fsanitize=", options_.sanitize));
    options.push_back("-fno-sanitize-recover=all");
    options.push_back("-fno-omit-frame-pointer");
  }
  return options;
}

absl::StatusOr<std::string> HostCompiler::Compile(const CompileRequest& request) {
  RETURN_IF_ERROR(ValidateTarget(request.target));
  ASSIGN_OR_RETURN(Resolved resolved, Resolve());
  for (char c : options_.sanitize) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != ',' && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("ROPE_JIT_HOST_SANITIZE='", options_.sanitize, "' is not a sanitizer list"));
    }
  }
  SpawnOptions spawn;
  spawn.argv.push_back(resolved.path);
  ASSIGN_OR_RETURN(std::vector<std::string> arguments, CompileArguments(*this, request));
  for (std::string& argument : arguments) spawn.argv.push_back(std::move(argument));
  const std::string source_file = SourceFileName(request.source_name);
  spawn.argv.insert(spawn.argv.end(), {"-x", "c++", source_file, "-o", "kernel.so"});

  ASSIGN_OR_RETURN(std::string dir, MakePrivateTempDir("rope_jit_host_"));
  absl::Cleanup remove_dir = [&dir] { RemoveTree(dir).IgnoreError(); };
  RETURN_IF_ERROR(WriteFile(absl::StrCat(dir, "/", source_file), request.source));
  spawn.env = CompilerEnvironment(dir);
  spawn.working_dir = dir;
  spawn.timeout = options_.timeout;
  ASSIGN_OR_RETURN(SpawnResult result, RunProcess(spawn));
  if (result.timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "host compile of ", source_file, " with ", resolved.path, " took longer than ",
        options_.timeout.count(), " ms and was killed; output so far:\n", result.output));
  }
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("host compile of ", source_file, " failed: ",
                                            resolved.path, " ", DescribeFailure(result), "\n",
                                            result.output));
  }
  return ReadOutput(absl::StrCat(dir, "/kernel.so"), HostCompilerOptions::kMaxObjectBytes);
}

}  // namespace rope_jit
