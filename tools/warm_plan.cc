#include "tools/warm_plan.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "jit/target.h"
#include "rope/hf_config.h"

namespace rope_jit {
namespace {

absl::Status Usage(absl::string_view message) { return absl::InvalidArgumentError(message); }

absl::StatusOr<int> ParseInt(absl::string_view text) {
  int value = 0;
  // SimpleAtoi accepts surrounding blanks and a '+'; an integer flag should not.
  if (text.empty() ||
      !(absl::ascii_isdigit(static_cast<unsigned char>(text[0])) || text[0] == '-') ||
      !absl::SimpleAtoi(text, &value)) {
    return Usage(absl::StrCat("'", text, "' is not an integer"));
  }
  return value;
}

absl::StatusOr<bool> ParseBool(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return Usage(absl::StrCat("'", text, "' is not a boolean (true or false)"));
}

absl::StatusOr<RopeKernel> ParseKernel(absl::string_view text) {
  absl::StatusOr<RopeKernel> kernel = ParseRopeKernel(text);
  if (!kernel.ok()) return Usage(kernel.status().message());
  return kernel;
}

// A comma list of `parse`d values, duplicates dropped, order kept. "all" (when
// `all_values` is given) stands for the whole list.
template <typename T, typename Parse>
absl::StatusOr<std::vector<T>> ParseList(absl::string_view flag, absl::string_view text,
                                         Parse parse, const std::vector<T>* all_values = nullptr) {
  std::vector<T> values;
  for (absl::string_view piece : absl::StrSplit(text, ',')) {
    piece = absl::StripAsciiWhitespace(piece);
    if (piece.empty()) {
      return Usage(absl::StrCat("--", flag, "=", text, ": empty list element"));
    }
    if (all_values != nullptr && piece == "all") {
      for (const T& value : *all_values) {
        if (std::find(values.begin(), values.end(), value) == values.end()) values.push_back(value);
      }
      continue;
    }
    absl::StatusOr<T> value = parse(piece);
    if (!value.ok()) {
      return Usage(absl::StrCat("--", flag, "=", text, ": ", value.status().message()));
    }
    if (std::find(values.begin(), values.end(), *value) == values.end()) values.push_back(*value);
  }
  return values;
}

absl::StatusOr<std::string> ParseArch(absl::string_view text) {
  absl::StatusOr<Vendor> vendor = VendorOfTarget(text);
  if (!vendor.ok()) return Usage(vendor.status().message());
  return std::string(text);
}

const std::vector<RopeKernel>& AllKernels() {
  static const auto* const kernels =
      new std::vector<RopeKernel>(std::begin(kAllRopeKernels), std::end(kAllRopeKernels));
  return *kernels;
}

const std::vector<DType>& AllDTypes() {
  static const auto* const dtypes = new std::vector<DType>{DType::kF16, DType::kBF16, DType::kF32};
  return *dtypes;
}

const std::vector<RopeStyle>& AllStyles() {
  static const auto* const styles =
      new std::vector<RopeStyle>{RopeStyle::kNeox, RopeStyle::kInterleaved};
  return *styles;
}

enum class FlagKind { kValue, kBool };

struct FlagInfo {
  const char* name;
  FlagKind kind;
};

constexpr FlagInfo kFlags[] = {
    {"arch", FlagKind::kValue},       {"head_dim", FlagKind::kValue},
    {"rotary_dim", FlagKind::kValue}, {"position_columns", FlagKind::kValue},
    {"dtype", FlagKind::kValue},      {"style", FlagKind::kValue},
    {"kernels", FlagKind::kValue},    {"cache_dir", FlagKind::kValue},
    {"jobs", FlagKind::kValue},       {"manifest", FlagKind::kValue},
    {"dry_run", FlagKind::kBool},     {"verify", FlagKind::kBool},
    {"stats", FlagKind::kBool},       {"help", FlagKind::kBool},
    {"hf_config", FlagKind::kValue},
};

const FlagInfo* FindFlag(absl::string_view name) {
  for (const FlagInfo& flag : kFlags) {
    if (name == flag.name) return &flag;
  }
  return nullptr;
}

absl::Status SetValueFlag(absl::string_view name, absl::string_view value, WarmFlags* flags) {
  if (name == "arch") {
    ASSIGN_OR_RETURN(flags->arch, ParseList<std::string>(name, value, ParseArch));
  } else if (name == "head_dim") {
    ASSIGN_OR_RETURN(flags->head_dims, ParseList<int>(name, value, ParseInt));
  } else if (name == "rotary_dim") {
    ASSIGN_OR_RETURN(flags->rotary_dims, ParseList<int>(name, value, ParseInt));
  } else if (name == "position_columns") {
    ASSIGN_OR_RETURN(flags->position_columns, ParseList<int>(name, value, ParseInt));
  } else if (name == "dtype") {
    ASSIGN_OR_RETURN(flags->dtypes, ParseList<DType>(name, value, ParseDType, &AllDTypes()));
    flags->dtypes_given = true;
  } else if (name == "style") {
    ASSIGN_OR_RETURN(flags->styles, ParseList<RopeStyle>(name, value, ParseStyle, &AllStyles()));
  } else if (name == "kernels") {
    ASSIGN_OR_RETURN(flags->kernels,
                     ParseList<RopeKernel>(name, value, ParseKernel, &AllKernels()));
  } else if (name == "cache_dir") {
    if (value.empty()) {
      return Usage(
          "--cache_dir needs a directory (to keep nothing on disk, set ROPE_JIT_CACHE_DISABLE=1)");
    }
    flags->cache_dir = std::string(value);
  } else if (name == "jobs") {
    absl::StatusOr<int> jobs = ParseInt(value);
    if (!jobs.ok() || *jobs < 1) {
      return Usage(absl::StrCat("--jobs=", value, ": want a positive number of parallel compiles"));
    }
    flags->jobs = *jobs;
  } else if (name == "manifest") {
    if (value.empty()) return Usage("--manifest needs a file name");
    flags->manifest = std::string(value);
  } else if (name == "hf_config") {
    ASSIGN_OR_RETURN(flags->hf_configs,
                     ParseList<std::string>(name, value, [](absl::string_view file) {
                       return absl::StatusOr<std::string>(std::string(file));
                     }));
  }
  return absl::OkStatus();
}

void SetBoolFlag(absl::string_view name, bool value, WarmFlags* flags) {
  if (name == "dry_run") flags->dry_run = value;
  if (name == "verify") flags->verify = value;
  if (name == "stats") flags->stats = value;
  if (name == "help") flags->help = value;
}

std::string FlagNames() {
  std::vector<std::string> names;
  for (const FlagInfo& flag : kFlags) names.push_back(absl::StrCat("--", flag.name));
  return absl::StrJoin(names, " ");
}

// Keys of a manifest line, in the order DescribeItem prints them.
constexpr const char* kManifestKeys[] = {"arch",       "kernel",           "head_dim",
                                         "rotary_dim", "position_columns", "dtype",
                                         "style",      "mrope_section",    "mrope_interleaved"};

// "16/24/24": MRoPE pairs per position column.
absl::StatusOr<std::vector<int>> ParseSection(absl::string_view text) {
  std::vector<int> section;
  for (absl::string_view piece : absl::StrSplit(text, '/')) {
    ASSIGN_OR_RETURN(int value, ParseInt(piece));
    section.push_back(value);
  }
  return section;
}

absl::Status SetManifestValue(absl::string_view key, absl::string_view value,
                              ManifestEntry* entry) {
  if (key == "arch") {
    ASSIGN_OR_RETURN(entry->arch, ParseArch(value));
  } else if (key == "kernel") {
    ASSIGN_OR_RETURN(entry->kernel, ParseKernel(value));
  } else if (key == "head_dim") {
    ASSIGN_OR_RETURN(entry->head_dim, ParseInt(value));
  } else if (key == "rotary_dim") {
    ASSIGN_OR_RETURN(entry->rotary_dim, ParseInt(value));
  } else if (key == "position_columns") {
    ASSIGN_OR_RETURN(entry->position_columns, ParseInt(value));
  } else if (key == "dtype") {
    ASSIGN_OR_RETURN(entry->dtype, ParseDType(value));
  } else if (key == "style") {
    ASSIGN_OR_RETURN(entry->style, ParseStyle(value));
  } else if (key == "mrope_section") {
    ASSIGN_OR_RETURN(entry->mrope_section, ParseSection(value));
  } else if (key == "mrope_interleaved") {
    ASSIGN_OR_RETURN(entry->mrope_interleaved, ParseBool(value));
  }
  return absl::OkStatus();
}

absl::Status SetManifestKey(absl::string_view key, absl::string_view value, ManifestEntry* entry) {
  if (absl::StrContains(value, ',')) {
    return Usage(absl::StrCat(key, "=", value, ": one value per key (one specialization a line)"));
  }
  if (std::find(std::begin(kManifestKeys), std::end(kManifestKeys), key) ==
      std::end(kManifestKeys)) {
    return Usage(
        absl::StrCat("unknown key '", key, "'; keys: ", absl::StrJoin(kManifestKeys, ", ")));
  }
  absl::Status status = SetManifestValue(key, value, entry);
  if (!status.ok()) return Usage(absl::StrCat(key, "=", value, ": ", status.message()));
  return absl::OkStatus();
}

// The values one dimension takes for one manifest entry: its own, else the flags'.
template <typename T>
std::vector<T> Either(const std::optional<T>& own, const std::vector<T>& from_flags) {
  return own.has_value() ? std::vector<T>{*own} : from_flags;
}

// Adds the cross product of the given lists to `items`. Every combination must be a
// valid RopeConfig, checked even when `targets` is empty (so that a bad value is a usage
// error on any machine); `where` prefixes the error ("file:line" for a manifest).
absl::Status AddCrossProduct(const std::vector<std::pair<std::string, std::string>>& targets,
                             const std::vector<RopeKernel>& kernels,
                             const std::vector<int>& head_dims,
                             const std::vector<int>& rotary_dims,  // empty: = head_dim
                             const std::vector<int>& position_columns,
                             const std::vector<DType>& dtypes, const std::vector<RopeStyle>& styles,
                             const std::vector<int>& mrope_section,  // empty: no MRoPE
                             bool mrope_interleaved, absl::string_view where,
                             std::vector<WarmItem>* items) {
  for (RopeKernel kernel : kernels) {
    for (int head_dim : head_dims) {
      const std::vector<int> rotaries =
          rotary_dims.empty() ? std::vector<int>{head_dim} : rotary_dims;
      for (int rotary_dim : rotaries) {
        for (int columns : position_columns) {
          for (DType dtype : dtypes) {
            for (RopeStyle style : styles) {
              RopeConfig config;
              config.head_dim = head_dim;
              config.rotary_dim = rotary_dim;
              config.position_columns = columns;
              config.dtype = dtype;
              config.style = style;
              config.mrope_section = mrope_section;
              config.mrope_interleaved = mrope_interleaved;
              // RopeKernelSpec validates exactly what the library will bake.
              absl::Status valid = RopeKernelSpec(config, kernel, "").status();
              if (!valid.ok()) {
                return Usage(
                    absl::StrCat(where.empty() ? "invalid specialization" : where,
                                 ": head_dim=", head_dim, " rotary_dim=", rotary_dim,
                                 columns == 1 ? "" : absl::StrCat(" position_columns=", columns),
                                 ": ", valid.message()));
              }
              config.rotary_dim = config.EffectiveRotaryDim();  // 0 and head_dim are one spec
              for (const auto& [target, unsupported] : targets) {
                WarmItem item;
                item.target = target;
                item.kernel = kernel;
                item.config = config;
                item.unsupported = unsupported;
                items->push_back(std::move(item));
              }
            }
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

// Dedupe (a manifest may repeat itself, or overlap a line without arch; two models may
// share shapes), then group by target in first-seen order so that listings read naturally.
std::vector<WarmItem> GroupByTarget(std::vector<WarmItem> items) {
  std::vector<std::string> target_order;
  std::map<std::string, std::vector<WarmItem>> by_target;
  absl::flat_hash_set<std::string> seen;
  for (WarmItem& item : items) {
    if (!seen.insert(DescribeItem(item)).second) continue;
    if (by_target.find(item.target) == by_target.end()) target_order.push_back(item.target);
    by_target[item.target].push_back(std::move(item));
  }
  std::vector<WarmItem> result;
  for (const std::string& target : target_order) {
    for (WarmItem& item : by_target[target]) result.push_back(std::move(item));
  }
  return result;
}

}  // namespace

absl::StatusOr<WarmFlags> ParseWarmFlags(const std::vector<std::string>& args) {
  WarmFlags flags;
  std::set<std::string> given;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      if (i + 1 < args.size())
        return Usage(absl::StrCat("unexpected argument '", args[i + 1], "'"));
      break;
    }
    if (arg == "-h") {
      flags.help = true;
      continue;
    }
    // absl and gflags accept one or two dashes; so does this parser.
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) {
      return Usage(
          absl::StrCat("unexpected argument '", arg, "' (flags start with --; see --help)"));
    }
    absl::string_view name = arg;
    std::optional<absl::string_view> value;
    if (const size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const FlagInfo* flag = FindFlag(name);
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      const FlagInfo* positive = FindFlag(name.substr(2));
      if (positive != nullptr && positive->kind == FlagKind::kBool && !value.has_value()) {
        flag = positive;
        negated = true;
      }
    }
    if (flag == nullptr) {
      return Usage(absl::StrCat("unknown flag '", args[i], "'; known flags: ", FlagNames()));
    }
    const absl::string_view flag_name = flag->name;
    if (flag->kind == FlagKind::kBool) {
      bool on = !negated;
      if (value.has_value()) {
        absl::StatusOr<bool> parsed = ParseBool(*value);
        if (!parsed.ok())
          return Usage(absl::StrCat("--", flag_name, ": ", parsed.status().message()));
        on = *parsed;
      }
      SetBoolFlag(flag_name, on, &flags);
      continue;
    }
    if (!value.has_value()) {
      // "--head_dim --dtype=bf16" forgot the value; no value of ours starts with "--".
      if (i + 1 >= args.size() || absl::StartsWith(args[i + 1], "--")) {
        return Usage(absl::StrCat("--", flag_name, " needs a value"));
      }
      value = args[++i];
    }
    RETURN_IF_ERROR(SetValueFlag(flag_name, *value, &flags));
    given.insert(std::string(flag_name));
  }
  if (!flags.hf_configs.empty()) {
    for (const char* shape : {"manifest", "head_dim", "rotary_dim", "position_columns", "style"}) {
      if (given.count(shape) != 0) {
        return Usage(absl::StrCat("--hf_config takes the shapes from the models; drop --", shape));
      }
    }
  }
  return flags;
}

std::string WarmUsage(int default_jobs) {
  return absl::StrCat(
      R"(Usage: jit_warm [flags]          (from the source tree: bazel run //tools:jit_warm -- [flags])

Compiles RoPE kernel specializations into the rope_jit disk cache, so that a server never
compiles while serving. Entries already in the cache are left as they are.

What to compile (comma lists; the cross product is compiled):
  --arch=LIST              GPU targets, e.g. sm_90,gfx90a:sramecc+:xnack-. Default: the
                           GPUs present; with none, gfx90a,gfx942,sm_80,sm_90, skipping
                           those no local compiler supports
  --kernels=LIST           rope, position_embeddings, rope_kv_cache or all (default all)
  --head_dim=LIST          default 64,128
  --rotary_dim=LIST        default: the head_dim (the whole head rotates)
  --position_columns=LIST  1, or 2 for ChatGLM-6B 2D positions (default 1)
  --dtype=LIST             f16, bf16, f32 or all (default all)
  --style=LIST             neox (rotate-half), interleaved (GPT-J) or all (default all)
  --manifest=FILE          one specialization a line instead of the cross product:
                             arch=sm_90 kernel=rope head_dim=128 rotary_dim=64 dtype=bf16 style=neox
                           '#' starts a comment; a key a line leaves out takes the flag's
                           values (leave out arch to compile for this machine's targets)
  --hf_config=FILE[,FILE]  Hugging Face config.json files instead of the shape flags: exactly
                           what those models need (every layer type), for --dtype or, without
                           it, each model's torch_dtype; --arch and --kernels still apply

How:
  --cache_dir=DIR          default: $ROPE_JIT_CACHE_DIR, else $XDG_CACHE_HOME/rope_jit, else
                           ~/.cache/rope_jit (as the library)
  --jobs=N                 parallel compiles (default )",
      default_jobs, R"(, the hardware threads)
  --dry_run                list what would be compiled and what is cached; write nothing
  --verify                 also read and check every cached entry in scope (and load it
                           on a GPU of its target, if present); recompile bad ones
  --stats                  print the kernel service's counters at the end
  --help                   this text

Exit status: 0 when every supported specialization is in the cache; 1 when some failed
to compile (each is printed with its compiler log); 2 for bad usage; 3 when all compiled
but some are not in the cache at the end (evicted by ROPE_JIT_CACHE_MAX_BYTES, or not
written: disk full, RLIMIT_FSIZE, ...), each named with the reason on stderr. With the
disk cache off or unusable from the start (warned), nothing is checked.
)");
}

absl::StatusOr<TargetChoice> ChooseTargets(const std::vector<std::string>& requested,
                                           const std::vector<std::string>& device_targets,
                                           const TargetValidator& validate) {
  TargetChoice choice;
  if (!requested.empty()) {
    // Named on the command line for this machine: one it cannot build is a usage error.
    choice.source = "--arch";
    for (const std::string& target : requested) {
      absl::Status valid = VendorOfTarget(target).status();
      if (valid.ok()) valid = validate(target);
      if (!valid.ok()) return Usage(absl::StrCat("--arch=", target, ": ", valid.message()));
      if (std::find(choice.usable.begin(), choice.usable.end(), target) == choice.usable.end()) {
        choice.usable.push_back(target);
      }
    }
    return choice;
  }
  std::vector<std::string> candidates;
  if (!device_targets.empty()) {
    choice.source = "the GPUs present";
    candidates = device_targets;
  } else {
    choice.source = "the default targets";
    candidates.assign(std::begin(kDefaultWarmTargets), std::end(kDefaultWarmTargets));
  }
  std::set<std::string> seen;
  for (const std::string& target : candidates) {
    if (!seen.insert(target).second) continue;
    absl::Status valid = VendorOfTarget(target).status();
    if (valid.ok()) valid = validate(target);
    if (valid.ok()) {
      choice.usable.push_back(target);
    } else {
      choice.unsupported.emplace_back(target, std::string(valid.message()));
    }
  }
  if (choice.usable.empty()) {
    std::vector<std::string> reasons;
    for (const auto& [target, why] : choice.unsupported)
      reasons.push_back(absl::StrCat(target, ": ", why));
    return absl::FailedPreconditionError(
        absl::StrCat("no local compiler can build any of ", choice.source, " (",
                     absl::StrJoin(reasons, "; "), "); name targets with --arch"));
  }
  return choice;
}

absl::StatusOr<std::vector<ManifestEntry>> ParseManifest(absl::string_view text,
                                                         absl::string_view file_name) {
  std::vector<ManifestEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos)
      line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);  // also a CR left by an editor
    if (line.empty()) continue;
    ManifestEntry entry;
    entry.line = line_number;
    std::set<std::string> seen;
    for (absl::string_view token :
         absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty())) {
      const size_t eq = token.find('=');
      absl::Status status;
      if (eq == absl::string_view::npos || eq == 0 || eq + 1 == token.size()) {
        status = Usage(absl::StrCat("'", token, "' is not key=value"));
      } else if (!seen.insert(std::string(token.substr(0, eq))).second) {
        status = Usage(absl::StrCat("key '", token.substr(0, eq), "' given twice"));
      } else {
        status = SetManifestKey(token.substr(0, eq), token.substr(eq + 1), &entry);
      }
      if (!status.ok()) {
        return Usage(absl::StrCat(file_name, ":", line_number, ": ", status.message()));
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::string DescribeItem(const WarmItem& item) {
  return absl::StrCat(
      "arch=", item.target, " kernel=", RopeKernelName(item.kernel),
      " head_dim=", item.config.head_dim, " rotary_dim=", item.config.EffectiveRotaryDim(),
      item.config.position_columns == 1
          ? ""
          : absl::StrCat(" position_columns=", item.config.position_columns),
      " dtype=", DTypeName(item.config.dtype), " style=", StyleName(item.config.style),
      item.config.IsMrope()
          ? absl::StrCat(" mrope_section=", absl::StrJoin(item.config.mrope_section, "/"))
          : "",
      item.config.mrope_interleaved ? " mrope_interleaved=true" : "");
}

absl::StatusOr<std::vector<WarmItem>> BuildItems(const WarmFlags& flags,
                                                 const TargetChoice& targets,
                                                 const std::vector<ManifestEntry>* manifest,
                                                 absl::string_view manifest_name,
                                                 const TargetValidator& validate) {
  std::vector<std::pair<std::string, std::string>> chosen;  // (target, why unsupported)
  for (const std::string& target : targets.usable) chosen.emplace_back(target, "");
  for (const auto& unsupported : targets.unsupported) chosen.push_back(unsupported);

  std::vector<WarmItem> items;
  if (manifest == nullptr) {
    RETURN_IF_ERROR(AddCrossProduct(chosen, flags.kernels, flags.head_dims, flags.rotary_dims,
                                    flags.position_columns, flags.dtypes, flags.styles, {}, false,
                                    "", &items));
  } else {
    absl::flat_hash_map<std::string, std::string> support;  // target -> why unsupported
    for (const ManifestEntry& entry : *manifest) {
      std::vector<std::pair<std::string, std::string>> entry_targets = chosen;
      if (entry.arch.has_value()) {
        auto it = support.find(*entry.arch);
        if (it == support.end()) {
          absl::Status valid = validate(*entry.arch);
          it = support.emplace(*entry.arch, valid.ok() ? "" : std::string(valid.message())).first;
        }
        entry_targets = {{*entry.arch, it->second}};
      }
      const std::vector<int> rotary_dims =
          entry.rotary_dim.has_value() ? std::vector<int>{*entry.rotary_dim} : flags.rotary_dims;
      RETURN_IF_ERROR(AddCrossProduct(
          entry_targets, Either(entry.kernel, flags.kernels),
          Either(entry.head_dim, flags.head_dims), rotary_dims,
          Either(entry.position_columns, flags.position_columns), Either(entry.dtype, flags.dtypes),
          Either(entry.style, flags.styles), entry.mrope_section.value_or(std::vector<int>{}),
          entry.mrope_interleaved.value_or(false), absl::StrCat(manifest_name, ":", entry.line),
          &items));
    }
  }

  return GroupByTarget(std::move(items));
}

absl::StatusOr<std::vector<WarmItem>> BuildItemsFromHfConfigs(
    const WarmFlags& flags, const TargetChoice& targets, const std::vector<HfConfigFile>& files) {
  std::vector<std::pair<std::string, std::string>> chosen;  // (target, why unsupported)
  for (const std::string& target : targets.usable) chosen.emplace_back(target, "");
  for (const auto& unsupported : targets.unsupported) chosen.push_back(unsupported);
  std::vector<WarmItem> items;
  for (const HfConfigFile& file : files) {
    auto in_file = [&file](const absl::Status& status) {
      return Usage(absl::StrCat(file.name, ": ", status.message()));
    };
    std::vector<DType> dtypes = flags.dtypes;
    if (!flags.dtypes_given) {
      absl::StatusOr<std::optional<DType>> own = HfConfigDType(file.text);
      if (!own.ok()) return in_file(own.status());
      if (!own->has_value()) {
        return Usage(absl::StrCat(file.name,
                                  ": names no torch_dtype the kernels support (f16, "
                                  "bf16, f32); pass --dtype"));
      }
      dtypes = {**own};
    }
    absl::StatusOr<std::vector<std::string>> layer_types = HfConfigLayerTypes(file.text);
    if (!layer_types.ok()) return in_file(layer_types.status());
    if (layer_types->empty()) layer_types->push_back("");
    for (DType dtype : dtypes) {
      for (const std::string& layer_type : *layer_types) {
        absl::StatusOr<RopeConfig> config = RopeConfigFromHfConfig(file.text, dtype, layer_type);
        if (!config.ok()) return in_file(config.status());
        config->rotary_dim = config->EffectiveRotaryDim();  // 0 and head_dim are one spec
        for (RopeKernel kernel : flags.kernels) {
          for (const auto& [target, unsupported] : chosen) {
            WarmItem item;
            item.target = target;
            item.kernel = kernel;
            item.config = *config;
            item.unsupported = unsupported;
            items.push_back(std::move(item));
          }
        }
      }
    }
  }
  return GroupByTarget(std::move(items));
}

std::vector<size_t> InterleaveByTarget(const std::vector<WarmItem>& items) {
  std::vector<std::string> target_order;
  std::map<std::string, std::vector<size_t>> by_target;
  for (size_t i = 0; i < items.size(); ++i) {
    auto& indices = by_target[items[i].target];
    if (indices.empty()) target_order.push_back(items[i].target);
    indices.push_back(i);
  }
  std::vector<size_t> order;
  for (size_t round = 0; order.size() < items.size(); ++round) {
    for (const std::string& target : target_order) {
      const std::vector<size_t>& indices = by_target[target];
      if (round < indices.size()) order.push_back(indices[round]);
    }
  }
  return order;
}

}  // namespace rope_jit
