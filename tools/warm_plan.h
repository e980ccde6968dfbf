// What tools/jit_warm compiles: its flags, its manifest format, the choice of GPU targets
// and the list of specializations. Pure logic (no compiler, no GPU, no files), so that the
// parsing rules are unit-tested apart from the binary.
//
//   ASSIGN_OR_RETURN(WarmFlags flags, ParseWarmFlags({"--arch=sm_90", "--head_dim=128"}));
//   ASSIGN_OR_RETURN(TargetChoice targets,
//                    ChooseTargets(flags.arch, /*device_targets=*/{}, validate));
//   ASSIGN_OR_RETURN(std::vector<WarmItem> items, BuildItems(flags, targets, nullptr, ""));
//   for (const WarmItem& item : items) puts(DescribeItem(item).c_str());
//   // arch=sm_90 kernel=rope head_dim=128 rotary_dim=128 dtype=f16 style=neox
//   // ...
//
// Every usage error is InvalidArgument with a message fit to print as is (jit_warm exits
// 2 on it). DescribeItem prints an item in the manifest syntax, so a --dry_run listing
// can be pasted into a manifest.
//
// Manifest format: one specialization a line, `key=value` tokens separated by blanks,
// `#` starts a comment, blank lines are skipped:
//
//   # Llama-3-8B and a GLM-4 model on H100 and MI250
//   arch=sm_90 kernel=rope head_dim=128 dtype=bf16 style=neox
//   head_dim=128 rotary_dim=64 dtype=bf16 style=interleaved
//
// Keys: arch, kernel, head_dim, rotary_dim, position_columns, dtype, style, and for MRoPE
// mrope_section (e.g. 16/24/24, with position_columns=3) and mrope_interleaved. A key a
// line leaves out takes the values of the matching flag (or its default), so a line
// without arch is compiled for this machine's targets and one manifest serves a mixed fleet.
//
// --hf_config=FILE[,FILE...] replaces the shape flags: each Hugging Face config.json gives
// its model's RopeConfig (rope/hf_config.h; every layer type of per-layer-type models),
// for each --dtype or, without --dtype, the model's own torch_dtype.
#ifndef ROPE_JIT_TOOLS_WARM_PLAN_H_
#define ROPE_JIT_TOOLS_WARM_PLAN_H_

#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rope/config.h"
#include "rope/kernel_specs.h"

namespace rope_jit {

struct WarmFlags {
  // Empty: the targets of the GPUs present, else kDefaultWarmTargets (see ChooseTargets).
  std::vector<std::string> arch;
  std::vector<int> head_dims = {64, 128};
  // Empty: each head_dim itself (the whole head is rotated).
  std::vector<int> rotary_dims;
  std::vector<int> position_columns = {1};
  std::vector<DType> dtypes = {DType::kF16, DType::kBF16, DType::kF32};
  std::vector<RopeStyle> styles = {RopeStyle::kNeox, RopeStyle::kInterleaved};
  std::vector<RopeKernel> kernels = {std::begin(kAllRopeKernels), std::end(kAllRopeKernels)};
  // Unset: DiskCacheOptions::FromEnvironment().
  std::optional<std::string> cache_dir;
  int jobs = 0;          // 0: one per hardware thread
  std::string manifest;  // empty: the cross product of the lists above
  // Hugging Face config.json files: exactly the specializations those models need.
  std::vector<std::string> hf_configs;
  bool dtypes_given = false;  // --dtype was passed (else --hf_config uses each model's dtype)
  bool dry_run = false;
  bool verify = false;
  bool stats = false;
  bool help = false;  // the caller prints WarmUsage() and exits 0
};

// `args` without the program name. Accepts --name=value, --name value and -name for
// every flag; a boolean flag also takes =true/false/1/0/yes/no or the --noname form.
// InvalidArgument for an unknown flag, a missing or bad value, or a positional argument.
absl::StatusOr<WarmFlags> ParseWarmFlags(const std::vector<std::string>& args);

// The --help text; `default_jobs` is shown as the --jobs default.
std::string WarmUsage(int default_jobs);

// The targets jit_warm compiles for on a machine without a GPU when no --arch is given:
// the common data-center GPUs (MI200, MI300, A100, H100/H200).
inline constexpr const char* kDefaultWarmTargets[] = {"gfx90a", "gfx942", "sm_80", "sm_90"};

// OK when the local compiler can build for `target`; otherwise why not
// (Compiler::ValidateTarget, or the compiler's Unavailable status).
using TargetValidator = std::function<absl::Status(absl::string_view target)>;

struct TargetChoice {
  std::vector<std::string> usable;
  // Targets that were chosen (a GPU present, the default list) but that no local compiler
  // can build, with the reason; their items are counted as unsupported, not failed.
  std::vector<std::pair<std::string, std::string>> unsupported;
  // Where the targets came from: "--arch", "the GPUs present", "the default targets".
  std::string source;
};

// `requested` (from --arch) wins: each must be well formed and buildable here, else
// InvalidArgument naming it and what the compiler supports. Otherwise the deduplicated
// `device_targets`, else kDefaultWarmTargets, in both cases dropping (into `unsupported`)
// what the compilers cannot build; FailedPrecondition when nothing usable is left.
absl::StatusOr<TargetChoice> ChooseTargets(const std::vector<std::string>& requested,
                                           const std::vector<std::string>& device_targets,
                                           const TargetValidator& validate);

// One manifest line. Unset fields take the flags' values.
struct ManifestEntry {
  int line = 0;
  std::optional<std::string> arch;
  std::optional<RopeKernel> kernel;
  std::optional<int> head_dim;
  std::optional<int> rotary_dim;
  std::optional<int> position_columns;
  std::optional<DType> dtype;
  std::optional<RopeStyle> style;
  std::optional<std::vector<int>> mrope_section;
  std::optional<bool> mrope_interleaved;
};

// InvalidArgument "<file_name>:<line>: ..." for a token that is not key=value, an unknown
// or repeated key, a bad value, or a malformed arch. Which targets the local compilers
// support and whether the combination is a valid RopeConfig are checked by BuildItems.
absl::StatusOr<std::vector<ManifestEntry>> ParseManifest(absl::string_view text,
                                                         absl::string_view file_name);

struct WarmItem {
  std::string target;
  RopeKernel kernel = RopeKernel::kRope;
  RopeConfig config;  // head_dim, rotary_dim (never 0), position_columns, dtype, style
  // Why no local compiler can build `target`; empty when one can.
  std::string unsupported;
};

// "arch=sm_90 kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=neox"
// (position_columns=N is added when it is not 1, mrope_section=a/b/c and
// mrope_interleaved=true for MRoPE). Manifest syntax.
std::string DescribeItem(const WarmItem& item);

// The specializations to warm, deduplicated, in a stable order (grouped by target).
// Without a manifest: the cross product of `targets` (usable and unsupported) and the
// flags' lists. With one: each entry's own values, the flags' lists for the keys it
// omits, and `targets` when it omits arch; an entry's own arch is checked with `validate`
// (unsupported there is not an error: manifests travel between machines).
// InvalidArgument for a combination that ValidateConfig rejects, naming the values (or
// "<manifest_name>:<line>").
absl::StatusOr<std::vector<WarmItem>> BuildItems(const WarmFlags& flags,
                                                 const TargetChoice& targets,
                                                 const std::vector<ManifestEntry>* manifest,
                                                 absl::string_view manifest_name,
                                                 const TargetValidator& validate);

// One --hf_config file: the name to report and its text.
struct HfConfigFile {
  std::string name;
  std::string text;
};

// The specializations the models of `files` need, like BuildItems (deduplicated, grouped
// by target): flags.kernels x `targets` x each model's RopeConfig, for flags.dtypes when
// flags.dtypes_given, else the model's torch_dtype, and for every layer type with its own
// RoPE parameters. InvalidArgument "<name>: ..." for a file RopeConfigFromHfConfig rejects
// or one that names no dtype the kernels support while --dtype was not given.
absl::StatusOr<std::vector<WarmItem>> BuildItemsFromHfConfigs(
    const WarmFlags& flags, const TargetChoice& targets, const std::vector<HfConfigFile>& files);

// The order to work on `items`: round-robin over their targets, so that parallel jobs
// keep both vendors' compilers busy (hipRTC compiles are serialized in a process).
std::vector<size_t> InterleaveByTarget(const std::vector<WarmItem>& items);

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_WARM_PLAN_H_
