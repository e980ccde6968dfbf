// REQUIRE_COMPILER(compiler): the first statement of a test (or SetUp) that needs a real
// compiler. It skips the test when the compiler is not installed here (Identity() is
// Unavailable, with the loader's reason) and fails it on any other Identity() error: an
// installed compiler that cannot say who it is is a bug, not a missing dependency.
//
//   REQUIRE_COMPILER(CompilerForVendor(Vendor::kNvidia));
#ifndef ROPE_JIT_TESTS_REQUIRE_COMPILER_H_
#define ROPE_JIT_TESTS_REQUIRE_COMPILER_H_

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "jit/compiler.h"

#define REQUIRE_COMPILER(compiler)                                                     \
  do {                                                                                 \
    const absl::Status identity_status = (compiler).Identity().status();               \
    if (identity_status.code() == absl::StatusCode::kUnavailable) {                    \
      GTEST_SKIP() << "compiler not installed here: " << identity_status;              \
    }                                                                                  \
    ASSERT_TRUE(identity_status.ok()) << "compiler identity failed: " << identity_status; \
  } while (0)

#endif  // ROPE_JIT_TESTS_REQUIRE_COMPILER_H_
