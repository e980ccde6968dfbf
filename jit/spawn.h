// Running a program (a host compiler) as a child process: no shell, a private environment,
// a time limit, bounded output, and nothing left running afterwards.
//
//   ASSIGN_OR_RETURN(std::string cxx, FindOnPath("c++"));
//   ASSIGN_OR_RETURN(std::string dir, MakePrivateTempDir("rope_jit_host"));
//   absl::Cleanup remove = [&] { RemoveTree(dir).IgnoreError(); };
//   SpawnOptions options;
//   options.argv = {cxx, "-c", "kernel.cc", "-o", "kernel.o"};
//   options.env = {"PATH=/usr/bin:/bin"};
//   options.working_dir = dir;
//   ASSIGN_OR_RETURN(SpawnResult result, RunProcess(options));
//   if (result.exit_code != 0) return absl::InternalError(result.output);
//
// The child is started with posix_spawn in a process group of its own, with stdin from
// /dev/null and stdout and stderr into one pipe; it inherits no other file descriptor
// (so a compiler never holds a caller's socket or lock file open). When the program
// exits, anything it left running in its group is killed too; past the time limit the
// whole group is killed. RunProcess returns only after the child has been reaped.
// Safe to call from several threads at once.
#ifndef ROPE_JIT_JIT_SPAWN_H_
#define ROPE_JIT_JIT_SPAWN_H_

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

struct SpawnOptions {
  std::vector<std::string> argv;         // argv[0]: absolute path of the program
  std::vector<std::string> env;          // "NAME=VALUE": the child's whole environment
  std::string working_dir;               // the child chdirs here first (empty: inherit)
  std::chrono::milliseconds timeout{60000};  // past it the child's process group is SIGKILLed
  size_t max_output_bytes = 1 << 20;     // stdout+stderr kept up to this (rest drained, dropped)
};

struct SpawnResult {
  int exit_code = -1;     // when it exited normally
  int term_signal = 0;    // nonzero when it died of a signal (incl. our timeout kill)
  bool timed_out = false;
  std::string output;     // stdout and stderr interleaved, truncated
};

// A program that ran (whatever its exit status) is OK with the outcome in SpawnResult.
// InvalidArgument for an empty argv or a relative argv[0]; NotFound when argv[0] does not
// exist; PermissionDenied when it is not executable; Internal for other system failures.
absl::StatusOr<SpawnResult> RunProcess(const SpawnOptions& options);

// The absolute path of the first executable regular file `name` in $PATH (relative PATH
// entries are skipped); `name` containing a '/' is checked as given. NotFound, naming
// the directories searched, when there is none.
absl::StatusOr<std::string> FindOnPath(absl::string_view name);

// A new directory `<$TMPDIR or /tmp>/<prefix>XXXXXX`, mode 0700.
absl::StatusOr<std::string> MakePrivateTempDir(absl::string_view prefix);

// Removes `dir` and everything under it without following symbolic links. A `dir` that
// does not exist is OK.
absl::Status RemoveTree(const std::string& dir);

// The content hash of a file, as FileContentHash (jit/dynamic_library.h) gives it:
// "xxh3-128:<32 hex digits>".
absl::StatusOr<std::string> HashFile(const std::string& path);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_SPAWN_H_
