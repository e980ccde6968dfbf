#include "jit/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/dynamic_library.h"

namespace rope_jit {
namespace {

using std::chrono::milliseconds;

std::string Shell() {
  absl::StatusOr<std::string> sh = FindOnPath("sh");
  EXPECT_TRUE(sh.ok()) << sh.status();
  return sh.ok() ? *sh : "/bin/sh";
}

SpawnOptions ShellScript(const std::string& script) {
  SpawnOptions options;
  options.argv = {Shell(), "-c", script};
  options.env = {"PATH=/usr/bin:/bin"};
  return options;
}

// True when `pid` is gone or a zombie (dead, waiting for its parent to reap it).
bool IsDead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// Waits up to 5 s: an orphan killed by the group SIGKILL is reaped by whoever adopted it.
bool BecomesDead(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (IsDead(pid)) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

std::vector<pid_t> Pids(const std::string& output) {
  std::vector<pid_t> pids;
  for (absl::string_view word : absl::StrSplit(output, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(word, &pid)) pids.push_back(pid);
  }
  return pids;
}

TEST(SpawnTest, ReportsExitCode) {
  absl::StatusOr<SpawnResult> result = RunProcess(ShellScript("exit 3"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->term_signal, 0);
  EXPECT_FALSE(result->timed_out);
}

TEST(SpawnTest, ReportsSignal) {
  absl::StatusOr<SpawnResult> result = RunProcess(ShellScript("kill -TERM $$"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->term_signal, SIGTERM);
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_FALSE(result->timed_out);
}

TEST(SpawnTest, InterleavesStdoutAndStderr) {
  absl::StatusOr<SpawnResult> result = RunProcess(ShellScript("echo out; echo err >&2; echo end"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output, "out\nerr\nend\n");
}

TEST(SpawnTest, StdinIsEmpty) {
  absl::StatusOr<SpawnResult> result = RunProcess(ShellScript("cat; echo done"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output, "done\n");
}

TEST(SpawnTest, PassesExactlyTheGivenEnvironment) {
  absl::StatusOr<std::string> env = FindOnPath("env");
  ASSERT_TRUE(env.ok()) << env.status();
  SpawnOptions options;
  options.argv = {*env};
  options.env = {"ROPE_A=1", "ROPE_B=two words"};
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output, "ROPE_A=1\nROPE_B=two words\n");
}

TEST(SpawnTest, PassesArgumentsWithoutAShell) {
  SpawnOptions options = ShellScript("printf '[%s]' \"$@\"");
  options.argv.insert(options.argv.end(), {"name", "a b", "$HOME", "*", ""});
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output, "[a b][$HOME][*][]");
}

TEST(SpawnTest, RunsInWorkingDir) {
  absl::StatusOr<std::string> dir = MakePrivateTempDir("rope_spawn_test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  SpawnOptions options = ShellScript("pwd -P; echo x > made_here");
  options.working_dir = *dir;
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  ASSERT_TRUE(result.ok()) << result.status();
  char real[PATH_MAX];
  ASSERT_NE(realpath(dir->c_str(), real), nullptr);
  EXPECT_EQ(result->output, std::string(real) + "\n");
  EXPECT_EQ(access((*dir + "/made_here").c_str(), F_OK), 0);
  EXPECT_TRUE(RemoveTree(*dir).ok());
}

TEST(SpawnTest, TimeoutKillsTheWholeGroupAndLeavesNothingRunning) {
  // The shell and a background child both print their pid, then outlive the limit.
  SpawnOptions options = ShellScript("echo $$; sleep 60 & echo $!; wait");
  options.timeout = milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->timed_out);
  EXPECT_EQ(result->term_signal, SIGKILL);
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  std::vector<pid_t> pids = Pids(result->output);
  ASSERT_EQ(pids.size(), 2u) << result->output;
  for (pid_t pid : pids) EXPECT_TRUE(BecomesDead(pid)) << pid;
}

TEST(SpawnTest, ExitKillsWhatTheProgramLeftBehind) {
  // The background sleep holds the output pipe open; the runner must not wait for it.
  SpawnOptions options = ShellScript("sleep 60 & echo $!");
  options.timeout = milliseconds(30000);
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->timed_out);
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  std::vector<pid_t> pids = Pids(result->output);
  ASSERT_EQ(pids.size(), 1u) << result->output;
  EXPECT_TRUE(BecomesDead(pids[0]));
}

TEST(SpawnTest, CapsOutputAndDrainsTheRest) {
  // 4 MiB through the pipe: the child must not block once the cap is reached.
  SpawnOptions options = ShellScript("head -c 4194304 /dev/zero | tr '\\0' a; echo tail >&2");
  options.max_output_bytes = 1000;
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->timed_out);
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->output, std::string(1000, 'a'));
}

TEST(SpawnTest, ChildInheritsNoDescriptorButItsOutput) {
  // Descriptors without close-on-exec, as a careless caller would leave them.
  int leaked_file = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked_file, 0);
  int high = fcntl(leaked_file, F_DUPFD, 100);
  ASSERT_GE(high, 100);
  int leaked_pipe[2];
  ASSERT_EQ(pipe(leaked_pipe), 0);
  absl::StatusOr<std::string> ls = FindOnPath("ls");
  ASSERT_TRUE(ls.ok()) << ls.status();
  SpawnOptions options;
  options.argv = {*ls, "/proc/self/fd"};
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  close(leaked_file);
  close(high);
  close(leaked_pipe[0]);
  close(leaked_pipe[1]);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->exit_code, 0) << result->output;
  // 0, 1 and 2, plus the descriptor ls opened to read the directory (the lowest free: 3).
  EXPECT_EQ(result->output, "0\n1\n2\n3\n");
}

TEST(SpawnTest, MissingProgramIsNotFound) {
  SpawnOptions options;
  options.argv = {"/nonexistent/rope_jit_no_such_program"};
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
  EXPECT_NE(result.status().message().find("/nonexistent/rope_jit_no_such_program"),
            std::string::npos);
}

TEST(SpawnTest, NonExecutableProgramIsPermissionDenied) {
  absl::StatusOr<std::string> dir = MakePrivateTempDir("rope_spawn_test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::string script = *dir + "/not_executable";
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  SpawnOptions options;
  options.argv = {script};
  absl::StatusOr<SpawnResult> result = RunProcess(options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied) << result.status();
  EXPECT_TRUE(RemoveTree(*dir).ok());
}

TEST(SpawnTest, RejectsEmptyArgvAndRelativeProgram) {
  EXPECT_EQ(RunProcess(SpawnOptions{}).status().code(), absl::StatusCode::kInvalidArgument);
  SpawnOptions relative;
  relative.argv = {"sh", "-c", "true"};
  EXPECT_EQ(RunProcess(relative).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SpawnTest, ManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<std::string> outputs(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([i, &outputs] {
      absl::StatusOr<SpawnResult> result =
          RunProcess(ShellScript("echo " + std::to_string(i)));
      if (result.ok()) outputs[i] = result->output;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(outputs[i], std::to_string(i) + "\n");
}

TEST(FindOnPathTest, FindsAbsolutePathOrNotFound) {
  absl::StatusOr<std::string> sh = FindOnPath("sh");
  ASSERT_TRUE(sh.ok()) << sh.status();
  EXPECT_EQ((*sh)[0], '/');
  EXPECT_EQ(access(sh->c_str(), X_OK), 0);
  EXPECT_EQ(FindOnPath(*sh).value_or(""), *sh);
  absl::StatusOr<std::string> missing = FindOnPath("rope_jit_no_such_program");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("rope_jit_no_such_program"), std::string::npos);
  EXPECT_EQ(FindOnPath("/nonexistent/x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FindOnPath("/tmp").status().code(), absl::StatusCode::kNotFound);  // a directory
}

TEST(TempDirTest, PrivateDirRemovedWithoutFollowingLinks) {
  absl::StatusOr<std::string> outside = MakePrivateTempDir("rope_spawn_outside");
  absl::StatusOr<std::string> dir = MakePrivateTempDir("rope_spawn_test");
  ASSERT_TRUE(outside.ok()) << outside.status();
  ASSERT_TRUE(dir.ok()) << dir.status();
  struct stat info;
  ASSERT_EQ(stat(dir->c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  std::ofstream(*outside + "/keep") << "keep";
  ASSERT_EQ(mkdir((*dir + "/a").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((*dir + "/a/b").c_str(), 0700), 0);
  std::ofstream(*dir + "/a/b/file") << "x";
  ASSERT_EQ(symlink(outside->c_str(), (*dir + "/a/link").c_str()), 0);
  EXPECT_TRUE(RemoveTree(*dir).ok());
  EXPECT_NE(access(dir->c_str(), F_OK), 0);
  EXPECT_EQ(access((*outside + "/keep").c_str(), F_OK), 0);
  EXPECT_TRUE(RemoveTree(*dir).ok());  // already gone
  EXPECT_TRUE(RemoveTree(*outside).ok());
  EXPECT_EQ(MakePrivateTempDir("a/b").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HashFileTest, HashesContent) {
  absl::StatusOr<std::string> dir = MakePrivateTempDir("rope_spawn_test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::ofstream(*dir + "/one") << "one";
  std::ofstream(*dir + "/also_one") << "one";
  std::ofstream(*dir + "/two") << "two";
  absl::StatusOr<std::string> one = HashFile(*dir + "/one");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(*one, HashFile(*dir + "/also_one").value_or(""));
  EXPECT_NE(*one, HashFile(*dir + "/two").value_or(""));
  EXPECT_EQ(*one, FileContentHash(*dir + "/one").value_or(""));
  EXPECT_FALSE(HashFile(*dir + "/missing").ok());
  EXPECT_TRUE(RemoveTree(*dir).ok());
}

}  // namespace
}  // namespace rope_jit
