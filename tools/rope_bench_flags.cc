#include "tools/rope_bench_flags.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"

namespace rope_jit {
namespace {

// The issue's matrix: decode (1, 8, 64 tokens) and prefill (4096, 32768 tokens).
const std::vector<int64_t> kDecodeTokens = {1, 8, 64};
const std::vector<int64_t> kPrefillTokens = {4096, 32768};

absl::Status Bad(absl::string_view flag, absl::string_view value, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", value, ": expected ", expected));
}

std::vector<std::string> Items(absl::string_view value) {
  return absl::StrSplit(value, ',', absl::SkipWhitespace());
}

// Appends v unless present: "--shapes=decode,1" must not measure 1 token twice.
template <typename T>
void AddUnique(std::vector<T>* list, const T& v) {
  if (std::find(list->begin(), list->end(), v) == list->end()) list->push_back(v);
}

absl::Status ParseShapes(absl::string_view value, std::vector<int64_t>* tokens) {
  tokens->clear();
  for (const std::string& item : Items(value)) {
    if (item == "decode" || item == "all") {
      for (int64_t t : kDecodeTokens) AddUnique(tokens, t);
    }
    if (item == "prefill" || item == "all") {
      for (int64_t t : kPrefillTokens) AddUnique(tokens, t);
    }
    if (item == "decode" || item == "prefill" || item == "all") continue;
    int64_t count = 0;
    if (!absl::SimpleAtoi(item, &count) || count < 1 || count > (int64_t{1} << 24)) {
      return Bad("shapes", value,
                 "decode, prefill, all or token counts in [1, 2^24], comma-separated");
    }
    AddUnique(tokens, count);
  }
  if (tokens->empty()) return Bad("shapes", value, "at least one shape");
  return absl::OkStatus();
}

absl::Status ParseHeads(absl::string_view value, std::vector<HeadCounts>* heads) {
  heads->clear();
  for (const std::string& item : Items(value)) {
    // "32/8" or "32q8kv"
    std::vector<std::string> parts =
        absl::StrSplit(item, absl::ByAnyChar("/qkv"), absl::SkipEmpty());
    HeadCounts h;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &h.q) ||
        !absl::SimpleAtoi(parts[1], &h.kv) || h.q < 1 || h.kv < 1 || h.q > 1024 || h.kv > 1024) {
      return Bad("heads", value, "Q/KV head counts like 32/8,8/1");
    }
    bool present = false;
    for (const HeadCounts& other : *heads)
      present = present || (other.q == h.q && other.kv == h.kv);
    if (!present) heads->push_back(h);
  }
  if (heads->empty()) return Bad("heads", value, "at least one Q/KV pair");
  return absl::OkStatus();
}

absl::Status ParseHeadDims(absl::string_view value, std::vector<int>* dims) {
  dims->clear();
  for (const std::string& item : Items(value)) {
    int dim = 0;
    if (!absl::SimpleAtoi(item, &dim) || dim < 32 || dim > 512 || dim % 2 != 0) {
      return Bad("head_dims", value, "even head dims in [32, 512], comma-separated");
    }
    AddUnique(dims, dim);
  }
  if (dims->empty()) return Bad("head_dims", value, "at least one head dim");
  return absl::OkStatus();
}

absl::Status ParseDTypes(absl::string_view value, std::vector<DType>* dtypes) {
  dtypes->clear();
  for (const std::string& item : Items(value)) {
    absl::StatusOr<DType> dtype = ParseDType(item);
    if (dtype.ok()) {
      AddUnique(dtypes, *dtype);
    } else if (item == "all") {
      for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) AddUnique(dtypes, d);
    } else {
      return Bad("dtypes", value, "f32, f16, bf16 or all, comma-separated");
    }
  }
  if (dtypes->empty()) return Bad("dtypes", value, "at least one dtype");
  return absl::OkStatus();
}

absl::Status ParseStyles(absl::string_view value, std::vector<RopeStyle>* styles) {
  styles->clear();
  for (const std::string& item : Items(value)) {
    absl::StatusOr<RopeStyle> style = ParseStyle(item);
    if (style.ok()) {
      AddUnique(styles, *style);
    } else if (item == "all" || item == "both") {
      AddUnique(styles, RopeStyle::kNeox);
      AddUnique(styles, RopeStyle::kInterleaved);
    } else {
      return Bad("styles", value, "neox, interleaved or both, comma-separated");
    }
  }
  if (styles->empty()) return Bad("styles", value, "at least one style");
  return absl::OkStatus();
}

template <typename T>
absl::Status ParseNumber(absl::string_view flag, absl::string_view value, T low, T high, T* out) {
  T parsed{};
  bool ok;
  if constexpr (std::is_floating_point_v<T>) {
    ok = absl::SimpleAtod(value, &parsed);
  } else {
    ok = absl::SimpleAtoi(value, &parsed);
  }
  if (!ok || parsed < low || parsed > high) {
    return Bad(flag, value, absl::StrCat("a number in [", low, ", ", high, "]"));
  }
  *out = parsed;
  return absl::OkStatus();
}

}  // namespace

std::string BenchUsage() {
  return R"(rope_bench: RoPE kernel, host-launch and kernel-service benchmark for one GPU.

Measures, in one run on one card (ordered so that nothing earlier warms what a later
part reports cold):
  1. kernel-service latencies: cold compile per kernel (fresh cache dir, driver and Comgr
     caches disabled), disk hit in a fresh service (includes module load), memory hit;
  2. host cost per Rope::ApplyPositionEmbeddingsDevice call vs a bare driver launch of
     the same kernel;
  3. accuracy of the applied kernel against the float64 reference at long positions;
  4. kernel time of ApplyPositionEmbeddingsDevice (in place, int64 positions, random
     inputs, working set rotated past L2) vs a device-to-device copy of the same Q+K
     bytes, per shape, and CUDA-graph replay per apply for decode shapes.
Prints a table with PASS/MISS against the targets, and writes all numbers as JSON.

Usage: rope_bench [flags]

Selection (lists are comma-separated; the default is the full matrix):
  --quick                 small matrix (tokens 1,64,32768; 32/8 heads; head_dim 128;
                          bf16,f32; both styles), fewer repeats: ~5 s on an H200
                          (the full matrix, 180 rows: ~40 s on an H200)
  --shapes=LIST           decode (1,8,64), prefill (4096,32768), all, or token counts
  --heads=LIST            Q/KV head counts, e.g. 32/8,8/1            (default 32/8,8/1)
  --head_dims=LIST        e.g. 64,128,256                         (default 64,128,256)
  --dtypes=LIST           f32,f16,bf16 or all                            (default all)
  --styles=LIST           neox,interleaved or both                      (default both)
  --service_only          only the kernel-service latencies; runs without a GPU
                          (compiles for --target then) and exits 0
  --skip_service --skip_host --skip_accuracy --skip_kernels --skip_kv_cache
                          leave a part out (kv_cache: fused RoPE + KV-cache rows, 1, 64,
                          4096 and 32768 tokens, 32q/8kv, hd128, bf16, same and E4M3 cache)
  --no_graph              no CUDA-graph replay figures

Output:
  --json=PATH             write every number as JSON to PATH
  --commit=SHA            recorded in the JSON (default: $ROPE_JIT_COMMIT, else unknown)

Device and timing:
  --device=N              device ordinal (default 0)
  --target=ID             compile target of --service_only without a GPU (default sm_90)
  --min_batch_ms=MS       a timed batch lasts at least this long (default 1)
  --batches=N             median over N timed batches (default 7; --quick 5)
  --rotate_mib=MIB        working set the launches rotate through; at least 4x the L2
                          size the device reports is used anyway (default 256)
  --graph_applies=N       applies captured per CUDA graph (default 100)
  --service_rounds=N      fresh cache dirs for the cold/disk numbers (default 3; --quick 2)
  --tmp_dir=DIR           parent of those cache dirs (default $TMPDIR, else /tmp)
  --help                  this text

Exit status: 0 done (targets may still MISS: see the table); 1 a GPU, driver or
compiler call failed (the message names it; the JSON holds the numbers so far and the
error); 2 bad command line; 3 no usable GPU (without --service_only).
)";
}

absl::Status ParseBenchFlags(int argc, char** argv, BenchOptions* options) {
  bool tokens_set = false, heads_set = false, dims_set = false, dtypes_set = false,
       styles_set = false, batches_set = false, rounds_set = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", argv[i], "': flags start with --"));
    }
    std::string name, value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    } else {
      name = std::string(arg);
    }
    // Dashes and underscores are the same: --service-only works too.
    std::replace(name.begin(), name.end(), '-', '_');

    // Switches take no value.
    bool* flag = nullptr;
    if (name == "help" || name == "h") flag = &options->help;
    if (name == "quick") flag = &options->quick;
    if (name == "service_only") flag = &options->service_only;
    if (name == "skip_service") flag = &options->skip_service;
    if (name == "skip_host") flag = &options->skip_host;
    if (name == "skip_kernels") flag = &options->skip_kernels;
    if (name == "skip_accuracy") flag = &options->skip_accuracy;
    if (name == "skip_kv_cache") flag = &options->skip_kv_cache;
    if (flag != nullptr || name == "no_graph") {
      if (has_value) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      if (flag != nullptr) *flag = true;
      if (name == "no_graph") options->graph = false;
      continue;
    }

    static const char* const kValueFlags[] = {
        "shapes",     "tokens",        "heads",          "head_dims",    "head_dim",
        "dtypes",     "dtype",         "styles",         "style",        "json",
        "commit",     "device",        "target",         "min_batch_ms", "batches",
        "rotate_mib", "graph_applies", "service_rounds", "tmp_dir"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), name) == std::end(kValueFlags)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!has_value) {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    if (name == "shapes" || name == "tokens") {
      RETURN_IF_ERROR(ParseShapes(value, &options->tokens));
      tokens_set = true;
    } else if (name == "heads") {
      RETURN_IF_ERROR(ParseHeads(value, &options->heads));
      heads_set = true;
    } else if (name == "head_dims" || name == "head_dim") {
      RETURN_IF_ERROR(ParseHeadDims(value, &options->head_dims));
      dims_set = true;
    } else if (name == "dtypes" || name == "dtype") {
      RETURN_IF_ERROR(ParseDTypes(value, &options->dtypes));
      dtypes_set = true;
    } else if (name == "styles" || name == "style") {
      RETURN_IF_ERROR(ParseStyles(value, &options->styles));
      styles_set = true;
    } else if (name == "json") {
      if (value.empty()) return absl::InvalidArgumentError("--json needs a path");
      options->json_path = value;
    } else if (name == "commit") {
      options->commit = value;
    } else if (name == "device") {
      RETURN_IF_ERROR(ParseNumber<int>(name, value, 0, 1023, &options->device));
    } else if (name == "target") {
      if (value.empty())
        return absl::InvalidArgumentError("--target needs a target id, e.g. sm_90");
      options->target = value;
    } else if (name == "min_batch_ms") {
      RETURN_IF_ERROR(ParseNumber<double>(name, value, 0.05, 1000.0, &options->min_batch_ms));
    } else if (name == "batches") {
      RETURN_IF_ERROR(ParseNumber<int>(name, value, 1, 1000, &options->batches));
      batches_set = true;
    } else if (name == "rotate_mib") {
      int64_t mib = 0;
      RETURN_IF_ERROR(ParseNumber<int64_t>(name, value, 1, 1 << 20, &mib));
      options->rotate_bytes = mib << 20;
    } else if (name == "graph_applies") {
      RETURN_IF_ERROR(ParseNumber<int>(name, value, 1, 10000, &options->graph_applies));
    } else if (name == "service_rounds") {
      RETURN_IF_ERROR(ParseNumber<int>(name, value, 1, 100, &options->service_rounds));
      rounds_set = true;
    } else if (name == "tmp_dir") {
      options->tmp_dir = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
  }

  // Defaults of the lists the command line left alone: the full matrix, or --quick's.
  if (!tokens_set)
    options->tokens = options->quick ? std::vector<int64_t>{1, 64, 32768}
                                     : std::vector<int64_t>{1, 8, 64, 4096, 32768};
  if (!heads_set) {
    options->heads = options->quick ? std::vector<HeadCounts>{{32, 8}}
                                    : std::vector<HeadCounts>{{32, 8}, {8, 1}};
  }
  if (!dims_set)
    options->head_dims = options->quick ? std::vector<int>{128} : std::vector<int>{64, 128, 256};
  if (!dtypes_set) {
    options->dtypes = options->quick ? std::vector<DType>{DType::kBF16, DType::kF32}
                                     : std::vector<DType>{DType::kF32, DType::kF16, DType::kBF16};
  }
  if (!styles_set) options->styles = {RopeStyle::kNeox, RopeStyle::kInterleaved};
  if (options->quick && !batches_set) options->batches = 5;
  if (options->quick && !rounds_set) options->service_rounds = 2;
  if (options->commit.empty()) {
    const char* env = std::getenv("ROPE_JIT_COMMIT");
    options->commit = (env != nullptr && *env != '\0') ? env : "unknown";
  }
  if (options->service_only && (options->skip_service)) {
    return absl::InvalidArgumentError("--service_only and --skip_service leave nothing to run");
  }
  return absl::OkStatus();
}

}  // namespace rope_jit
