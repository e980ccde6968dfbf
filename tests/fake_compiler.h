// A Compiler double for tests about the kernel service's tiers rather than about a real
// compiler: it accepts any sm_*/gfx* target, "compiles" in no time (or, for timing
// tests, blocks in a hook), and returns a small ELF-looking code object that names the
// kernel's functions, so that FakeRuntime (tests/fake_runtime.h) loads it and finds them.
//
//   FakeCompiler compiler;
//   ServiceOptions options;
//   options.compiler_for_target = compiler.AsLookup();
//   KernelService service(options);
#ifndef ROPE_JIT_TESTS_FAKE_COMPILER_H_
#define ROPE_JIT_TESTS_FAKE_COMPILER_H_

#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "jit/compiler.h"
#include "rope/kernel_specs.h"

namespace rope_jit {

class FakeCompiler final : public Compiler {
 public:
  explicit FakeCompiler(std::string identity = "fake-compiler-1")
      : identity_(std::move(identity)) {}

  // Called at the start of every Compile, on the compiling thread (e.g. to block until
  // another thread has entered too). Set before the first compile.
  void set_on_compile(std::function<void()> hook) { on_compile_ = std::move(hook); }

  // The lookup ServiceOptions::compiler_for_target takes; `this` must outlive it.
  std::function<absl::StatusOr<Compiler*>(absl::string_view)> AsLookup() {
    return [this](absl::string_view) -> absl::StatusOr<Compiler*> { return this; };
  }

  int compiles() const { return compiles_.load(); }

  Vendor vendor() const override { return Vendor::kNvidia; }
  absl::StatusOr<std::string> Identity() override { return identity_; }
  absl::StatusOr<std::vector<std::string>> SupportedTargets() override {
    return std::vector<std::string>{"sm_80", "sm_90", "gfx90a"};
  }
  absl::Status ValidateTarget(absl::string_view target) override {
    if (absl::StartsWith(target, "sm_") || absl::StartsWith(target, "gfx")) {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat("fake compiler: bad target \"", target, "\""));
  }
  std::vector<std::string> Options(absl::string_view) const override { return {"-O3"}; }

  absl::StatusOr<std::string> Compile(const CompileRequest& request) override {
    compiles_.fetch_add(1);
    if (on_compile_) on_compile_();
    std::string functions;
    absl::StatusOr<RopeKernel> kernel = ParseRopeKernel(request.source_name);
    if (kernel.ok()) {
      functions = absl::StrCat(AlignedFunctionName(*kernel), " ", UnalignedFunctionName(*kernel),
                               " ", AlignedEarlyFunctionName(*kernel));
    }
    // Distinct per request (the bytes differ whenever the key does), and an ELF to
    // FakeRuntime.
    return absl::StrCat("\x7f" "ELF fake code object: ", request.target, " ",
                        request.source_name, " ", absl::StrJoin(request.defines, " "), " ",
                        std::to_string(request.source.size()), " functions: ", functions);
  }

 private:
  const std::string identity_;
  std::function<void()> on_compile_;
  std::atomic<int> compiles_{0};
};

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_FAKE_COMPILER_H_
