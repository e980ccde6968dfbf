// Command line of tools/rope_bench: what to measure and how long to spend on it.
//
//   BenchOptions options;
//   absl::Status parsed = ParseBenchFlags(argc, argv, &options);  // InvalidArgument: usage error
//   if (options.help) { std::fputs(BenchUsage().c_str(), stdout); ... }
//
// Kept apart from the measuring code so that parsing can be exercised on a machine with
// no GPU (the binary's --help and its usage errors).
#ifndef ROPE_JIT_TOOLS_ROPE_BENCH_FLAGS_H_
#define ROPE_JIT_TOOLS_ROPE_BENCH_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "rope/config.h"

namespace rope_jit {

struct HeadCounts {
  int q = 32;
  int kv = 8;
};

struct BenchOptions {
  bool help = false;

  // What runs. The default is everything; the service part needs only the compiler.
  bool quick = false;         // a small matrix and fewer repeats
  bool service_only = false;  // only the kernel-service latencies (works without a GPU)
  bool skip_service = false;
  bool skip_host = false;
  bool skip_kernels = false;
  bool skip_accuracy = false;
  bool skip_kv_cache = false;  // part 5: the fused RoPE + KV-cache rows
  bool graph = true;           // CUDA-graph replay figure for decode shapes

  // The kernel matrix: the product of these lists.
  std::vector<int64_t> tokens;
  std::vector<HeadCounts> heads;
  std::vector<int> head_dims;
  std::vector<DType> dtypes;
  std::vector<RopeStyle> styles;

  // Output and provenance.
  std::string json_path;  // empty: no JSON file
  std::string commit;     // empty: $ROPE_JIT_COMMIT, else "unknown"

  int device = 0;
  // Target the service part compiles for when no GPU is present (--service_only).
  std::string target = "sm_90";

  // Timing.
  double min_batch_ms = 1.0;  // a timed batch of launches lasts at least this long
  int batches = 7;            // median over this many batches
  // Working set the timed launches rotate through: larger than the L2 cache (50 MB on an
  // H100, 60 MB on an H200) so that repeated launches read from memory, not from L2.
  // At least 4x the L2 size the device reports is used whatever this says.
  int64_t rotate_bytes = int64_t{256} << 20;
  int graph_applies = 100;  // applies captured in one graph
  int service_rounds = 3;   // fresh cache directories for the cold/disk numbers
  std::string tmp_dir;  // where the service part makes its fresh cache dirs; "" = $TMPDIR or /tmp
};

// Fills *options from argv (argv[0] is skipped); InvalidArgument naming the flag on any
// error. Applies --quick's defaults to the lists the command line left unset.
absl::Status ParseBenchFlags(int argc, char** argv, BenchOptions* options);

std::string BenchUsage();

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_ROPE_BENCH_FLAGS_H_
