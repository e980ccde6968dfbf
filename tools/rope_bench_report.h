// What tools/rope_bench measured, and how it is shown: the result records, the project's
// targets, the stdout tables with PASS/MISS, and the JSON report.
//
//   Report report;
//   report.kernels.push_back(row);
//   PrintKernelRow(row);
//   PrintTargets(EvaluateTargets(report));
//   WriteJson(report, options);
#ifndef ROPE_JIT_TOOLS_ROPE_BENCH_REPORT_H_
#define ROPE_JIT_TOOLS_ROPE_BENCH_REPORT_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rope/config.h"
#include "rope/kv_cache.h"
#include "tools/rope_bench_cuda.h"
#include "tools/rope_bench_flags.h"
#include "tools/rope_bench_util.h"

namespace rope_jit {

// Positions of the timed applies are drawn from [0, kBenchMaxPosition).
constexpr int64_t kBenchMaxPosition = 131072;
// A token count at or below this is "decode": graph replay is measured for it.
constexpr int64_t kMaxDecodeTokens = 64;
constexpr int64_t kPrefillMinTokens = 4096;

// Targets (the issue's): printed beside the numbers as PASS/MISS.
constexpr double kHeadlineRatio = 1.05;  // 32768 tokens, 32q/8kv, hd 128, bf16
constexpr double kPrefillRatio = 1.15;   // every prefill shape/dtype
constexpr double kDecodeKernelUs = 2.5;  // 1 token, 32q/8kv
constexpr double kHostOverBareUs = 0.5;  // apply vs bare launch
constexpr double kMemoryHitNs = 200;
constexpr double kDiskHitMs = 2;

struct Timing {
  double median_us = kNaN;  // per op
  double min_us = kNaN;
  double max_us = kNaN;
  int ops_per_batch = 0;
  int batches = 0;
  // Batches whose host enqueue outlasted the spin in front of them while the host was
  // slower per op than the GPU: the GPU may have idled between launches. When that is
  // most batches (host_bound), the median may include host launch gaps.
  int host_bound_batches = 0;
  bool host_bound = false;
};

struct KernelRow {
  int64_t tokens = 0;
  HeadCounts heads;
  int head_dim = 0;
  DType dtype = DType::kBF16;
  RopeStyle style = RopeStyle::kNeox;
  int64_t qk_bytes = 0;      // Q + K, once
  int64_t kernel_bytes = 0;  // Q + K read and written, plus positions and inv_freq table
  int64_t copy_bytes = 0;    // Q + K read and written
  int64_t sets = 0;          // buffer sets the launches rotate through
  Timing kernel, copy;
  // The same back-to-back launches with programmatic dependent launch (NVIDIA): each may
  // start while the one before finishes, as SGLang launches its kernel on sm_90.
  std::optional<Timing> kernel_pdl;
  std::optional<Timing> graph;             // per apply
  std::optional<Timing> unaligned_kernel;  // rows <= 4096 tokens: views one element off
  // Rows where Rope takes the narrow kernel (PrefersNarrowKernel): the vector kernel it
  // passed over (ApplyOptions::kernel).
  std::optional<Timing> vector_kernel;
  std::optional<Timing> graph_pdl;         // per apply, launched with programmatic dependent launch
  // The same, each kernel reading its positions before it waits for the one ahead
  // (ApplyOptions::positions_not_written_by_prior_kernel; true here: no kernel writes them).
  std::optional<Timing> graph_pdl_early;
  // That on the kernel Rope did not take for these views (ApplyOptions::kernel: the vector
  // kernel's early entry point, or the narrow kernel), where the early order applies:
  // the other side of the choice for decode steps.
  std::optional<Timing> graph_pdl_early_other_kernel;
  int graph_count = 0;                     // distinct graphs replayed in turn
  std::string graph_note;                  // why there is no graph figure

  bool prefill() const { return tokens >= kPrefillMinTokens; }
  bool headline() const {
    return tokens == 32768 && heads.q == 32 && heads.kv == 8 && head_dim == 128 &&
           dtype == DType::kBF16;
  }
  bool decode_target() const { return tokens == 1 && heads.q == 32 && heads.kv == 8; }
  double ratio() const { return kernel.median_us / copy.median_us; }
};

// Part 5: the fused RoPE + KV-cache write (Rope::ApplyAndCacheKvDevice) on packed QKV into
// an NHD cache of 16-slot blocks, next to a device copy of the QKV bytes (read and written
// once: what the fused call reads, and at least what it writes) and to our own unfused
// path (ApplyPositionEmbeddingsDevice, then WriteKvCacheDevice: two launches, K read twice).
struct KvCacheRow {
  int64_t tokens = 0;
  HeadCounts heads;
  int head_dim = 0;
  DType dtype = DType::kBF16;
  KvDType cache_dtype = KvDType::kSame;
  int64_t qkv_bytes = 0;    // Q + K + V, once
  int64_t fused_bytes = 0;  // Q + K + V read; Q, K cache and V cache written; slots, positions
  int64_t copy_bytes = 0;   // QKV read and written
  int64_t sets = 0;
  Timing fused, copy, unfused;
  // The fused launches back to back with programmatic dependent launch (NVIDIA), as
  // FlashInfer's enable_pdl runs; and that with positions and slots read before the wait
  // (ApplyOptions::positions_not_written_by_prior_kernel; true here: no kernel writes them).
  std::optional<Timing> fused_pdl, fused_pdl_early;

  double copy_ratio() const { return fused.median_us / copy.median_us; }
  double unfused_ratio() const { return fused.median_us / unfused.median_us; }
};

struct HostResult {
  std::string shape;
  double apply_ns = kNaN, bare_ns = kNaN;
  double apply_min_ns = kNaN, bare_min_ns = kNaN;
  int applies_per_batch = 0;
  int batches = 0;
  bool bare_matches_rope = false;
};

struct AccuracyRow {
  DType dtype;
  RopeStyle style;
  int64_t first_position;
  int tokens;
  double max_abs_error;
  double rel_l2_error;
  // The least max abs error any implementation storing `dtype` can have: the float64
  // reference rounded to dtype.
  double rounding_floor;
  int64_t nonfinite;  // outputs that are NaN/Inf (e.g. never written)
};

struct ServiceKernelResult {
  std::string label;
  std::vector<double> cold_ms;     // GetFunction (or GetCodeObject) on a miss, per round
  std::vector<double> compile_ms;  // of which the compiler itself, per round
  std::vector<double> disk_ms;     // GetFunction (or GetCodeObject) in a fresh service, per round
  std::vector<double> memory_ns;   // per call, per round
};

struct ServiceResult {
  bool with_gpu = false;
  std::string target;
  std::string compiler;
  double first_compile_ms = kNaN;  // the first compile of the process (compiler start-up included)
  std::string first_compile_kernel;
  std::vector<ServiceKernelResult> kernels;
};

struct Report {
  std::string commit;
  std::string timestamp;
  std::string host;
  std::string card = "none";
  std::string target;
  std::string vendor;
  CudaDeviceInfo cuda;
  int64_t rotate_bytes = 0;
  bool spin = false;
  std::string spin_note;
  std::optional<ServiceResult> service;
  std::optional<HostResult> host_cost;
  std::vector<AccuracyRow> accuracy;
  std::vector<KernelRow> kernels;
  std::vector<KvCacheRow> kv_cache;
  // An empty kernel (one thread that returns at once), timed like the rows: the floor of
  // every kernel figure in this run, launch and completion included.
  std::optional<Timing> empty_kernel;
  std::string error;  // the failure that ended the run early
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

std::string DescribeShape(int64_t tokens, HeadCounts heads, int head_dim, DType dtype,
                          RopeStyle style);

// The target a kernel row is held to, with its verdict ("PASS <=1.15x copy"), or "".
std::string RowTarget(const KernelRow& row);

struct TargetLine {
  std::string name;
  std::string value;    // what was measured, in words
  std::string verdict;  // PASS, MISS or n/a
};
std::vector<TargetLine> EvaluateTargets(const Report& report);

// stdout tables, flushed so that a run cut short still shows what it measured.
void PrintService(const ServiceResult& service);
void PrintHostCost(const HostResult& host);
void PrintAccuracy(const std::vector<AccuracyRow>& rows);
void PrintKernelHeader();
void PrintKernelRow(const KernelRow& row);
void PrintEmptyKernel(const Timing& timing);
void PrintKvCacheHeader();
void PrintKvCacheRow(const KvCacheRow& row);
void PrintTargets(const std::vector<TargetLine>& lines);

std::string ReportJson(const Report& report, const BenchOptions& options);
// Writes ReportJson to options.json_path (if set) through a temp file and a rename.
// False, having said why on stderr, when it cannot.
bool WriteJson(const Report& report, const BenchOptions& options);

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_ROPE_BENCH_REPORT_H_
