#include "jit/spawn.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "jit/dynamic_library.h"

namespace rope_jit {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status ErrnoStatus(int error, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(error)));
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Starts the child: its own process group, stdin /dev/null, stdout and stderr into
// `output_fd`, no other descriptor, default signal dispositions and an empty signal mask
// (the caller may ignore SIGPIPE or block signals; the compiler must not inherit that).
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options, int output_fd) {
  posix_spawn_file_actions_t actions;
  if (int error = posix_spawn_file_actions_init(&actions)) {
    return ErrnoStatus(error, "posix_spawn_file_actions_init");
  }
  absl::Cleanup destroy_actions = [&] { posix_spawn_file_actions_destroy(&actions); };
  posix_spawnattr_t attributes;
  if (int error = posix_spawnattr_init(&attributes)) {
    return ErrnoStatus(error, "posix_spawnattr_init");
  }
  absl::Cleanup destroy_attributes = [&] { posix_spawnattr_destroy(&attributes); };

  int error = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!error) error = posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO);
  if (!error) error = posix_spawn_file_actions_adddup2(&actions, output_fd, STDERR_FILENO);
  if (!error) error = posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  if (!error && !options.working_dir.empty()) {
    error = posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }
  if (error) return ErrnoStatus(error, "posix_spawn_file_actions");

  sigset_t empty_mask, all_signals;
  sigemptyset(&empty_mask);
  sigfillset(&all_signals);
  error = posix_spawnattr_setflags(
      &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (!error) error = posix_spawnattr_setpgroup(&attributes, 0);
  if (!error) error = posix_spawnattr_setsigmask(&attributes, &empty_mask);
  if (!error) error = posix_spawnattr_setsigdefault(&attributes, &all_signals);
  if (error) return ErrnoStatus(error, "posix_spawnattr");

  std::vector<char*> argv = CStrings(options.argv);
  std::vector<char*> env = CStrings(options.env);
  pid_t pid = -1;
  error = posix_spawn(&pid, options.argv[0].c_str(), &actions, &attributes, argv.data(),
                      env.data());
  if (error == ENOENT || error == ENOTDIR) {
    return absl::NotFoundError(absl::StrCat("cannot run ", options.argv[0], ": ",
                                            std::strerror(error)));
  }
  if (error == EACCES) {
    return absl::PermissionDeniedError(absl::StrCat("cannot run ", options.argv[0], ": ",
                                                    std::strerror(error)));
  }
  if (error) return ErrnoStatus(error, absl::StrCat("posix_spawn ", options.argv[0]));
  return pid;
}

// True once the child has exited; it stays a zombie (not reaped), so its pid and process
// group id cannot be reused while we still signal the group.
bool HasExited(pid_t pid) {
  siginfo_t info;
  info.si_pid = 0;
  while (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != EINTR) return true;  // ECHILD: someone else reaped it (SIGCHLD ignored)
  }
  return info.si_pid == pid;
}

void Reap(pid_t pid, SpawnResult* result) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return;
  }
  if (WIFEXITED(status)) result->exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result->term_signal = WTERMSIG(status);
}

// Keeps up to `limit` bytes; reads and drops the rest so that the child never blocks on
// a full pipe. False at end of file (every writer gone) or on a read error.
bool ReadSome(int fd, size_t limit, std::string* output) {
  char buffer[16384];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      size_t keep = std::min(static_cast<size_t>(n), limit - std::min(limit, output->size()));
      output->append(buffer, keep);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

}  // namespace

absl::StatusOr<SpawnResult> RunProcess(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("RunProcess: empty argv");
  if (options.argv[0].empty() || options.argv[0][0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("RunProcess: argv[0] must be an absolute path, got '", options.argv[0], "'"));
  }
  // Close-on-exec, so that a program spawned by another thread at the same moment does not
  // inherit our pipe (closefrom covers our own child).
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  int read_fd = pipe_fds[0];
  absl::Cleanup close_read = [read_fd] { close(read_fd); };
  // Non-blocking on our end only: the child's stdout must block when the pipe is full (a
  // program seeing EAGAIN on a write would fail), while we drain and watch the deadline.
  if (fcntl(read_fd, F_SETFL, O_NONBLOCK) != 0) {
    close(pipe_fds[1]);
    return ErrnoStatus(errno, "fcntl O_NONBLOCK");
  }
  absl::StatusOr<pid_t> spawned = Spawn(options, pipe_fds[1]);
  close(pipe_fds[1]);
  if (!spawned.ok()) return spawned.status();
  const pid_t pid = *spawned;

  // A pidfd wakes the poll the moment the child exits; without one (an old kernel or a
  // seccomp filter) the loop checks every few milliseconds.
  // (The syscall directly: Debian 12's <sys/pidfd.h> lacks the extern "C" for C++.)
  int exit_fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  absl::Cleanup close_exit = [exit_fd] {
    if (exit_fd >= 0) close(exit_fd);
  };
  const Clock::time_point deadline = Clock::now() + options.timeout;
  SpawnResult result;
  bool output_open = true;
  bool exited = false;
  while (!exited || output_open) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      result.timed_out = true;
      break;
    }
    auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd fds[2] = {{output_open ? read_fd : -1, POLLIN, 0},
                     {exited ? -1 : exit_fd, POLLIN, 0}};
    int wait_ms = static_cast<int>(std::min<long long>(remaining, exit_fd >= 0 ? 1000 : 5));
    if (poll(fds, 2, wait_ms) < 0 && errno != EINTR) {
      kill(-pid, SIGKILL);
      Reap(pid, &result);
      return ErrnoStatus(errno, "poll");
    }
    if (output_open && (fds[0].revents != 0)) {
      output_open = ReadSome(read_fd, options.max_output_bytes, &result.output);
    }
    if (!exited && HasExited(pid)) {
      exited = true;
      // Whatever it left behind in its group (and which may hold the pipe open) goes too.
      kill(-pid, SIGKILL);
    }
  }
  if (result.timed_out) kill(-pid, SIGKILL);
  Reap(pid, &result);
  return result;
}

absl::StatusOr<std::string> FindOnPath(absl::string_view name) {
  auto is_executable_file = [](const std::string& path) {
    struct stat info;
    return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
           access(path.c_str(), X_OK) == 0;
  };
  if (name.empty()) return absl::InvalidArgumentError("FindOnPath: empty program name");
  if (name.find('/') != absl::string_view::npos) {
    std::string path(name);
    if (is_executable_file(path)) return path;
    return absl::NotFoundError(absl::StrCat("no executable file ", name));
  }
  const char* path_variable = std::getenv("PATH");
  std::string searched = path_variable != nullptr ? path_variable : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view dir : absl::StrSplit(searched, ':', absl::SkipEmpty())) {
    if (dir[0] != '/') continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (is_executable_file(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("no executable '", name, "' in PATH=", searched));
}

absl::StatusOr<std::string> MakePrivateTempDir(absl::string_view prefix) {
  if (prefix.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("temp dir prefix '", prefix, "' has a '/'"));
  }
  const char* tmpdir = std::getenv("TMPDIR");
  std::string base = tmpdir != nullptr && tmpdir[0] == '/' ? tmpdir : "/tmp";
  std::string path = absl::StrCat(base, "/", prefix, "XXXXXX");
  if (mkdtemp(path.data()) == nullptr) {  // mkdtemp creates it 0700
    return ErrnoStatus(errno, absl::StrCat("mkdtemp ", path));
  }
  return path;
}

namespace {

// Removes `name` in the directory `parent_fd`; directories are opened with O_NOFOLLOW and
// walked by descriptor, so a symbolic link is removed, never followed.
absl::Status RemoveAt(int parent_fd, const char* name, const std::string& path) {
  struct stat info;
  if (fstatat(parent_fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISDIR(info.st_mode)) {
    if (unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("unlink ", path));
    }
    return absl::OkStatus();
  }
  int dir_fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return ErrnoStatus(errno, absl::StrCat("fdopendir ", path));
  }
  absl::Status status;
  {
    absl::Cleanup close_dir = [dir] { closedir(dir); };
    while (dirent* entry = readdir(dir)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      status.Update(RemoveAt(dirfd(dir), entry->d_name, absl::StrCat(path, "/", entry->d_name)));
    }
  }
  if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    status.Update(ErrnoStatus(errno, absl::StrCat("rmdir ", path)));
  }
  return status;
}

}  // namespace

absl::Status RemoveTree(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("RemoveTree: empty path");
  return RemoveAt(AT_FDCWD, dir.c_str(), dir);
}

absl::StatusOr<std::string> HashFile(const std::string& path) { return FileContentHash(path); }

}  // namespace rope_jit
