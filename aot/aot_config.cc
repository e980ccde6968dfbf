#include "aot/aot_config.h"

#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

absl::StatusOr<int> ParseInt(absl::string_view text, absl::string_view key,
                             absl::string_view value) {
  int number = 0;
  if (!absl::SimpleAtoi(value, &number)) {
    return absl::InvalidArgumentError(
        absl::StrCat("AOT config '", text, "': ", key, "=", value, " is not an integer"));
  }
  return number;
}

}  // namespace

absl::StatusOr<RopeConfig> ParseAotConfig(absl::string_view text) {
  RopeConfig config;
  std::set<std::string> seen;
  for (absl::string_view field : absl::StrSplit(text, ',')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(field, absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first, value = kv.second;
    if (!seen.insert(std::string(key)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("AOT config '", text, "': ", key, " repeated"));
    }
    const auto bad_value = [&](const absl::Status& status) {
      return absl::InvalidArgumentError(absl::StrCat("AOT config '", text, "': ", status.message()));
    };
    if (key == "dtype") {
      absl::StatusOr<DType> dtype = ParseDType(value);
      if (!dtype.ok()) return bad_value(dtype.status());
      config.dtype = *dtype;
    } else if (key == "style") {
      absl::StatusOr<RopeStyle> style = ParseStyle(value);
      if (!style.ok()) return bad_value(style.status());
      config.style = *style;
    } else if (key == "head_dim") {
      ASSIGN_OR_RETURN(config.head_dim, ParseInt(text, key, value));
    } else if (key == "rotary_dim") {
      ASSIGN_OR_RETURN(config.rotary_dim, ParseInt(text, key, value));
    } else if (key == "position_columns") {
      ASSIGN_OR_RETURN(config.position_columns, ParseInt(text, key, value));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("AOT config '", text, "': unknown key '", key,
                       "'; expected dtype, style, head_dim, rotary_dim, position_columns"));
    }
  }
  // A default dtype or style silently baked would be a code object nobody asked for.
  for (const char* required : {"dtype", "style", "head_dim"}) {
    if (seen.count(required) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("AOT config '", text, "': ", required, " missing"));
    }
  }
  if (absl::Status valid = ValidateConfig(config); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("AOT config '", text, "': ", valid.message()));
  }
  return config;
}

}  // namespace rope_jit
