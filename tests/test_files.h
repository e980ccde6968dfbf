// Files and directories for tests: unique scratch paths under Bazel's TEST_TMPDIR, and
// whole-file reads and writes. One home for what every file-touching suite needs.
#ifndef ROPE_JIT_TESTS_TEST_FILES_H_
#define ROPE_JIT_TESTS_TEST_FILES_H_

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

// ThreadSanitizer's runtime maps the shadow of read-only memory from a file it writes in
// the temp directory at start-up (TMPDIR, else /tmp: tsan.rodata.PID). A process started
// under a small RLIMIT_FSIZE, or with TMPDIR on a full or missing file system, therefore
// faults (SIGBUS) on its first instrumented read of a constant: tests that start one skip
// that case under TSan.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kUnderThreadSanitizer = true;
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif

// TEST_TMPDIR (Bazel's per-test scratch directory), else /tmp when run by hand.
inline std::string TestTempRoot() {
  const char* root = std::getenv("TEST_TMPDIR");
  return root != nullptr ? root : "/tmp";
}

// A file of this workspace in the test's runfiles, e.g. RunfilePath("tests/service_child").
inline std::string RunfilePath(absl::string_view path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"), "/", path);
}

// A path no other call in this process (or another process: the pid is in it) returns.
// Nothing is created. Safe to call from several threads.
inline std::string TempPath(absl::string_view name) {
  static std::atomic<int> counter{0};
  return absl::StrCat(TestTempRoot(), "/", name, "_", getpid(), "_", counter++);
}

// A new empty directory only its owner can use (the disk cache refuses anything looser).
inline std::string FreshDir(absl::string_view name) {
  namespace fs = std::filesystem;
  const std::string dir = TempPath(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);
  return dir;
}

// The whole file, or "" when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Replaces the file's contents; returns whether every byte was written.
inline bool WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  return static_cast<bool>(out);
}

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_TEST_FILES_H_
