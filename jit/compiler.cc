#include "jit/compiler.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace rope_jit {

absl::StatusOr<std::vector<std::string>> CompileArguments(const Compiler& compiler,
                                                         const CompileRequest& request) {
  std::vector<std::string> arguments = compiler.Options(request.target);
  for (const std::string& define : request.defines) {
    if (define.empty() || define[0] == '=' || define[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("malformed define '", define, "'"));
    }
    arguments.push_back(absl::StrCat("-D", define));
  }
  return arguments;
}

std::vector<const char*> ArgumentPointers(const std::vector<std::string>& arguments) {
  std::vector<const char*> pointers;
  pointers.reserve(arguments.size());
  for (const std::string& argument : arguments) pointers.push_back(argument.c_str());
  return pointers;
}

std::string TrimCompilerLog(std::string log) {
  while (!log.empty() && (log.back() == '\0' || absl::ascii_isspace(log.back()))) log.pop_back();
  return log;
}

}  // namespace rope_jit
