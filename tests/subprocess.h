// Child processes of tests run through the shell: start one (or several, to overlap them),
// read all it prints on stdout and wait for it. One home for what the suites that run
// service_child, jit_warm or a vendor tool need.
//
//   ShellRun run = RunShell(RunfilePath("tests/service_child") + " --targets=sm_90");  // test_files.h
//   EXPECT_EQ(run.exit_code, 0) << run.output;
//
// (kernel_service_process_test forks and execs service_child itself: it needs the child's
// pid, its own environment and stderr apart.)
#ifndef ROPE_JIT_TESTS_SUBPROCESS_H_
#define ROPE_JIT_TESTS_SUBPROCESS_H_

#include <sys/wait.h>

#include <cstdio>
#include <string>


namespace rope_jit {

struct ShellRun {
  // The exit status; 128 + the signal for a command killed by one; -1 when it could not
  // be started or waited for.
  int exit_code = -1;
  std::string output;  // everything it wrote to stdout
};

// `command` started under /bin/sh, its stdout piped here; nullptr when it cannot start.
inline FILE* StartShell(const std::string& command) { return popen(command.c_str(), "r"); }

// Reads all a started command prints and waits for it.
inline ShellRun FinishShell(FILE* pipe) {
  ShellRun run;
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.output.append(buffer, got);
  const int status = pclose(pipe);
  if (status != -1) {
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return run;
}

inline ShellRun RunShell(const std::string& command) { return FinishShell(StartShell(command)); }

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_SUBPROCESS_H_
