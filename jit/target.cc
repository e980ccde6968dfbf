#include "jit/target.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rope_jit {
namespace {

bool IsAmdFeature(absl::string_view feature) {
  return (absl::EndsWith(feature, "+") || absl::EndsWith(feature, "-")) && feature.size() > 1;
}

bool AllAlnum(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) return false;
  }
  return !s.empty();
}

bool AllDigits(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return !s.empty();
}

}  // namespace

absl::string_view VendorName(Vendor vendor) {
  switch (vendor) {
    case Vendor::kAmd: return "amd";
    case Vendor::kNvidia: return "nvidia";
    case Vendor::kHost: return "host";
  }
  return "unknown";
}

absl::StatusOr<Vendor> VendorOfTarget(absl::string_view target) {
  if (target == kHostTarget) return Vendor::kHost;
  if (absl::StartsWith(target, "gfx")) {
    std::vector<absl::string_view> parts = absl::StrSplit(target, ':');
    bool ok = AllAlnum(parts[0].substr(3));
    for (size_t i = 1; ok && i < parts.size(); ++i) ok = IsAmdFeature(parts[i]);
    if (ok) return Vendor::kAmd;
  } else if (absl::StartsWith(target, "sm_")) {
    absl::string_view digits = target.substr(3);
    if (absl::EndsWith(digits, "a") || absl::EndsWith(digits, "f")) digits.remove_suffix(1);
    if (AllDigits(digits) && digits.size() >= 2) return Vendor::kNvidia;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", target, "' is not a target id; expected an AMD target such as gfx90a or ",
      "gfx90a:sramecc+:xnack-, an NVIDIA one such as sm_80, sm_90 or sm_90a, or host"));
}

absl::string_view AmdProcessor(absl::string_view target) {
  return target.substr(0, target.find(':'));
}

absl::StatusOr<std::vector<std::string>> AmdFeatureNames(absl::string_view target) {
  absl::StatusOr<Vendor> vendor = VendorOfTarget(target);
  if (!vendor.ok()) return vendor.status();
  if (*vendor != Vendor::kAmd) {
    return absl::InvalidArgumentError(absl::StrCat("'", target, "' is not an AMD target id"));
  }
  std::vector<absl::string_view> features = absl::StrSplit(target, ':');
  features.erase(features.begin());
  std::vector<std::string> names;
  for (absl::string_view feature : features) {
    names.emplace_back(feature.substr(0, feature.size() - 1));
  }
  for (size_t i = 1; i < names.size(); ++i) {
    if (names[i] <= names[i - 1]) {
      std::sort(features.begin(), features.end());
      return absl::InvalidArgumentError(absl::StrCat(
          "'", target, "': features must appear once each, in alphabetical order (",
          AmdProcessor(target), ":", absl::StrJoin(features, ":"), ")"));
    }
  }
  return names;
}

}  // namespace rope_jit
