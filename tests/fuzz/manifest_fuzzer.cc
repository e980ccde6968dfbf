// libFuzzer target for jit_warm's manifest parser, ParseManifest (tools/warm_plan.h): the
// input is a manifest file as a user wrote it.
//
//   .ci/fuzz builds it with clang -fsanitize=fuzzer,address,undefined and runs it from
//   tests/fuzz/corpus/manifest; corpus_replay_test replays that corpus under gcc.
//
// Beyond "no crash", it checks the documented contract: an error is InvalidArgument
// naming the file; entries come in line order with real line numbers; and for a short
// manifest, the items BuildItems makes print (DescribeItem) as manifest lines that parse
// back to the same items.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "tools/warm_plan.h"

namespace {

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// Every target is buildable: the fuzzer explores parsing, not the local compilers.
absl::Status AnyTargetBuilds(absl::string_view) { return absl::OkStatus(); }

std::vector<std::string> Describe(const std::vector<rope_jit::WarmItem>& items) {
  std::vector<std::string> lines;
  for (const rope_jit::WarmItem& item : items) lines.push_back(rope_jit::DescribeItem(item));
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<std::vector<rope_jit::ManifestEntry>> entries =
      rope_jit::ParseManifest(text, "fuzz.manifest");
  if (!entries.ok()) {
    FUZZ_CHECK(entries.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(entries.status().message(), "fuzz.manifest:"));
    return 0;
  }
  const int lines = 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  int previous = 0;
  for (const rope_jit::ManifestEntry& entry : *entries) {
    FUZZ_CHECK(entry.line > previous && entry.line <= lines);
    previous = entry.line;
  }

  // Each entry without a key expands to the flags' cross product (up to 24 items), so
  // only short manifests go on to the round trip.
  if (entries->empty() || entries->size() > 4) return 0;
  rope_jit::TargetChoice targets;
  targets.usable = {"sm_90", "gfx90a"};
  targets.source = "the fuzzer";
  const rope_jit::WarmFlags flags;
  const absl::StatusOr<std::vector<rope_jit::WarmItem>> items =
      rope_jit::BuildItems(flags, targets, &*entries, "fuzz.manifest", &AnyTargetBuilds);
  if (!items.ok()) {
    FUZZ_CHECK(items.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  // A --dry_run listing pasted into a manifest means the same items.
  const std::vector<std::string> described = Describe(*items);
  const std::string listing = absl::StrJoin(described, "\n");
  const absl::StatusOr<std::vector<rope_jit::ManifestEntry>> reparsed =
      rope_jit::ParseManifest(listing, "listing");
  FUZZ_CHECK(reparsed.ok());
  const absl::StatusOr<std::vector<rope_jit::WarmItem>> rebuilt =
      rope_jit::BuildItems(flags, targets, &*reparsed, "listing", &AnyTargetBuilds);
  FUZZ_CHECK(rebuilt.ok());
  std::vector<std::string> redescribed = Describe(*rebuilt);
  std::vector<std::string> sorted = described;
  std::sort(redescribed.begin(), redescribed.end());
  std::sort(sorted.begin(), sorted.end());
  FUZZ_CHECK(redescribed == sorted);
  return 0;
}
