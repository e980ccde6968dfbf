// Status propagation helpers. Abseil 20220623 (Debian 12) ships none.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(std::string code, compiler.Compile(request));
#ifndef ROPE_JIT_BASE_STATUS_MACROS_H_
#define ROPE_JIT_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ROPE_JIT_CONCAT_INNER(a, b) a##b
#define ROPE_JIT_CONCAT(a, b) ROPE_JIT_CONCAT_INNER(a, b)

// The switch guard makes the macro one statement that is safe after an unbraced if.
#define RETURN_IF_ERROR(expr)                                              \
  switch (0)                                                               \
  case 0:                                                                  \
  default:                                                                 \
    if (::absl::Status rope_jit_status_ = (expr); !rope_jit_status_.ok()) \
      return rope_jit_status_;                                             \
    else                                                                   \
      ;

#define ASSIGN_OR_RETURN(lhs, expr) \
  ROPE_JIT_ASSIGN_OR_RETURN_IMPL(ROPE_JIT_CONCAT(rope_jit_statusor_, __LINE__), lhs, expr)

#define ROPE_JIT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()

#endif  // ROPE_JIT_BASE_STATUS_MACROS_H_
