// rope_bench: how fast the RoPE apply is on one GPU, next to what bounds it.
//
// One run on one card measures, in this order (so that nothing earlier warms what a later
// part reports cold):
//   1. kernel-service latencies: cold compile (fresh cache dir, driver/Comgr caches off),
//      disk hit in a fresh service (module load included), memory hit;
//   2. host cost of one Rope::ApplyPositionEmbeddingsDevice call vs a bare driver launch
//      of the same kernel with the same arguments;
//   3. accuracy of the applied kernel against the float64 reference at long positions;
//   4. kernel time per shape vs a device-to-device copy of the same Q+K bytes (the bound
//      a memory-bound in-place kernel can approach), and CUDA-graph replay for decode;
//   5. the fused RoPE + KV-cache write vs a copy of the QKV bytes and vs our unfused path.
// It prints a table with PASS/MISS against the project's targets and writes every
// number to --json. See BenchUsage() (tools/rope_bench_flags.cc) for the flags.
//
// Timing method: device events around batches of back-to-back launches after warm-up,
// median over batches; the launches rotate through buffer sets whose total exceeds 4x
// L2, so repeated launches read DRAM, not L2. Before each batch of short launches a spin
// kernel holds the GPU while the host enqueues the batch, so the events time the GPU's
// back-to-back execution, not the host's launch rate (the host cost is part 2's number).
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jit/backends.h"
#include "jit/device_runtime.h"
#include "jit/kernel_service.h"
#include "base/status_macros.h"
#include "kernels/rope_args.h"
#include "rope/config.h"
#include "rope/kernel_specs.h"
#include "rope/kv_cache.h"
#include "rope/reference.h"
#include "rope/rope.h"
#include "tools/rope_bench_cuda.h"
#include "tools/rope_bench_flags.h"
#include "tools/rope_bench_report.h"
#include "tools/rope_bench_util.h"

namespace rope_jit {
namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoGpu = 3;

// Launches per timed batch: at least this many, so one launch's jitter averages out; at
// most this many, so a batch never fills the driver's queue of pending launches (which
// would make the host wait for the GPU and the spin useless).
constexpr int kMinOpsPerBatch = 8;
// Rows up to this many tokens also time the unaligned (one- or two-pair-a-thread) kernel.
constexpr int64_t kMaxNarrowTokens = 4096;
constexpr int kMaxOpsPerBatch = 512;
// Launches shorter than this are timed behind a spin kernel.
constexpr double kSpinBelowUs = 50;
constexpr double kMaxSpinUs = 20000;
// Host time each measurement first spends running its op untimed (TimeOps).
constexpr double kWarmupUs = 20000;

// Set by SIGINT/SIGTERM (e.g. `timeout`): the run stops between measurements and still
// writes the JSON of what it measured.
std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop.store(true); }

absl::Status CheckStop() {
  if (g_stop.load()) return absl::CancelledError("stopped by a signal (SIGINT/SIGTERM)");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// The GPU and the timing loop

struct Gpu {
  DeviceRuntime* runtime = nullptr;
  int device = 0;
  StreamHandle stream = nullptr;
  EventHandle start = nullptr, stop = nullptr;
  FunctionHandle spin = nullptr;  // null: no spin kernel, batches are timed without one
  double spin_cycles_per_us = 2000;
  CudaExtras* cuda = nullptr;  // null: no graph figures
  int64_t rotate_bytes = 0;

  ~Gpu() {
    if (runtime == nullptr) return;
    if (start != nullptr) runtime->DestroyEvent(device, start).IgnoreError();
    if (stop != nullptr) runtime->DestroyEvent(device, stop).IgnoreError();
    if (stream != nullptr) runtime->DestroyStream(device, stream).IgnoreError();
  }
};

// Clock-counting busy loop: holds the GPU while the host enqueues a batch. clock64() is a
// builtin of both NVRTC and hipRTC, so the source needs no header.
constexpr char kSpinSource[] = R"(
extern "C" __global__ void rope_bench_spin(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}
)";

// One spin launch on gpu.stream: `cycles` clock cycles; 0 returns at once (an empty kernel).
absl::Status LaunchSpin(const Gpu& gpu, long long cycles) {
  void* params[] = {&cycles};
  return gpu.runtime->Launch(gpu.device, gpu.spin, Dim3{}, Dim3{}, 0, gpu.stream, params);
}

absl::Status LoadSpinKernel(Gpu& gpu) {
  ASSIGN_OR_RETURN(std::string target, gpu.runtime->DeviceTarget(gpu.device));
  Compiler& compiler = CompilerForVendor(gpu.runtime->vendor());
  RETURN_IF_ERROR(compiler.ValidateTarget(target));  // hipRTC must never see an unknown arch
  CompileRequest request{kSpinSource, "rope_bench_spin", {}, target};
  ASSIGN_OR_RETURN(std::string code, compiler.Compile(request));
  ASSIGN_OR_RETURN(ModuleHandle module, gpu.runtime->LoadModule(gpu.device, code));
  ASSIGN_OR_RETURN(gpu.spin, gpu.runtime->GetFunction(module, "rope_bench_spin"));
  // One spin to check that it runs at all.
  RETURN_IF_ERROR(LaunchSpin(gpu, 1000));
  return gpu.runtime->SynchronizeStream(gpu.device, gpu.stream);
}

absl::Status Spin(const Gpu& gpu, double microseconds) {
  if (gpu.spin == nullptr || microseconds <= 0) return absl::OkStatus();
  return LaunchSpin(
      gpu, static_cast<long long>(std::min(microseconds, kMaxSpinUs) * gpu.spin_cycles_per_us));
}

double MicrosecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
      .count();
}

// CPU time this thread has used, in ns.
double ThreadCpuNanoseconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec * 1e9 + now.tv_nsec;
}

// Enqueues op number i (ops rotate their buffers by i) on gpu.stream.
using Op = std::function<absl::Status(int64_t i)>;

// Times `op` with device events: warm-up, an estimate, then `batches` batches of N
// back-to-back ops (N chosen so that a batch lasts >= min_batch_ms), each batch behind a
// spin when ops are short. Per-op times are divided by `per_op` (applies per op).
absl::StatusOr<Timing> TimeOps(const Gpu& gpu, const BenchOptions& options, const Op& op,
                               int64_t* next, double per_op = 1) {
  DeviceRuntime& rt = *gpu.runtime;
  // Warm-up: first-use costs (module data, TLB) stay out of the numbers. Three launches,
  // or two untimed batches, left the first figure of a row 0.1-0.25 us per decode launch
  // above the same kernel timed later in the row (BENCHMARKS.md, 89c21c5), most likely
  // because the GPU idles, and its clocks drop, while the host sets up the row; 20 ms of
  // the op first brought that to within 0.04-0.12 us (7f7702b).
  const auto warmup_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3 || MicrosecondsSince(warmup_start) < kWarmupUs; ++i) {
    RETURN_IF_ERROR(op((*next)++));
  }
  RETURN_IF_ERROR(rt.SynchronizeStream(gpu.device, gpu.stream));

  // Estimate: device time of a few ops, and the host's enqueue time per op.
  constexpr int kEstimateOps = kMinOpsPerBatch;
  RETURN_IF_ERROR(rt.RecordEvent(gpu.device, gpu.start, gpu.stream));
  const auto host_start = std::chrono::steady_clock::now();
  for (int i = 0; i < kEstimateOps; ++i) RETURN_IF_ERROR(op((*next)++));
  const double host_per_op_us = MicrosecondsSince(host_start) / kEstimateOps;
  RETURN_IF_ERROR(rt.RecordEvent(gpu.device, gpu.stop, gpu.stream));
  ASSIGN_OR_RETURN(float estimate_ms, rt.ElapsedMs(gpu.device, gpu.start, gpu.stop));
  const double estimate_us = std::max(1e-3, 1000.0 * estimate_ms / kEstimateOps);

  const bool spin = gpu.spin != nullptr && estimate_us < kSpinBelowUs;
  // Enough ops to last min_batch_ms; and, behind a spin, few enough that the spin can
  // cover their enqueue (twice the host time measured, plus slack).
  int n = static_cast<int>(std::ceil(options.min_batch_ms * 1000.0 / estimate_us));
  if (spin) n = std::min<int>(n, static_cast<int>(kMaxSpinUs / (2 * host_per_op_us + 1.0)));
  n = std::clamp(n, kMinOpsPerBatch, kMaxOpsPerBatch);
  const double spin_us = spin ? std::min(kMaxSpinUs, n * (2 * host_per_op_us + 1.0) + 20.0) : 0;

  Timing timing;
  timing.ops_per_batch = n;
  timing.batches = options.batches;
  std::vector<double> samples;
  for (int b = 0; b < options.batches; ++b) {
    RETURN_IF_ERROR(Spin(gpu, spin_us));
    RETURN_IF_ERROR(rt.RecordEvent(gpu.device, gpu.start, gpu.stream));
    const auto enqueue_start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) RETURN_IF_ERROR(op((*next)++));
    const double enqueue_us = MicrosecondsSince(enqueue_start);
    RETURN_IF_ERROR(rt.RecordEvent(gpu.device, gpu.stop, gpu.stream));
    ASSIGN_OR_RETURN(float ms, rt.ElapsedMs(gpu.device, gpu.start, gpu.stop));
    const double per_op_us = 1000.0 * ms / n;
    samples.push_back(per_op_us / per_op);
    // The GPU can only have idled if the enqueue outlasted the spin AND the host was
    // slower per op than the GPU (a host ahead of the GPU keeps it fed).
    if (enqueue_us > spin_us && enqueue_us / n >= 0.9 * per_op_us) ++timing.host_bound_batches;
  }
  // The median is safe while fewer than half the batches are suspect.
  timing.host_bound = 2 * timing.host_bound_batches >= options.batches;
  timing.median_us = Median(samples);
  timing.min_us = Min(samples);
  timing.max_us = Max(samples);
  return timing;
}

// Fills `buffer` with N(0,1) values of `dtype`: one random 4 MiB block uploaded, then
// doubled by device copies (uploading gigabytes from the host would dominate the run).
absl::Status FillRandom(const Gpu& gpu, const DeviceBuffer& buffer, DType dtype, uint64_t seed) {
  const size_t block =
      std::min<size_t>(buffer.bytes(), 4u << 20) / DTypeSize(dtype) * DTypeSize(dtype);
  const std::string values = EncodeNormal(dtype, block / DTypeSize(dtype), seed);
  RETURN_IF_ERROR(
      gpu.runtime->CopyToDevice(gpu.device, buffer.data(), values.data(), values.size()));
  size_t filled = values.size();
  while (filled < buffer.bytes()) {
    const size_t chunk = std::min(filled, buffer.bytes() - filled);
    RETURN_IF_ERROR(gpu.runtime->CopyDeviceToDeviceAsync(gpu.device, buffer.data() + filled,
                                                         buffer.data(), chunk, gpu.stream));
    filled += chunk;
  }
  return gpu.runtime->SynchronizeStream(gpu.device, gpu.stream);
}

absl::StatusOr<DeviceBuffer> UploadPositions(const Gpu& gpu,
                                             const std::vector<int64_t>& positions) {
  ASSIGN_OR_RETURN(DeviceBuffer buffer, DeviceBuffer::Allocate(*gpu.runtime, gpu.device,
                                                               positions.size() * sizeof(int64_t)));
  RETURN_IF_ERROR(
      gpu.runtime->CopyToDevice(gpu.device, buffer.data(), positions.data(), buffer.bytes()));
  return buffer;
}

std::vector<int64_t> RandomPositions(int64_t tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> position(0, kBenchMaxPosition - 1);
  std::vector<int64_t> positions(tokens);
  for (int64_t& p : positions) p = position(rng);
  return positions;
}

RopeConfig BenchConfig(int head_dim, DType dtype, RopeStyle style) {
  RopeConfig config;
  config.head_dim = head_dim;
  config.dtype = dtype;
  config.style = style;
  config.theta = 10000;
  config.max_position = kBenchMaxPosition;
  return config;
}

// One Rope per config for the whole run (Create compiles or loads its kernels: that
// stays out of every timed region).
class RopeCache {
 public:
  explicit RopeCache(const Gpu& gpu) : gpu_(gpu) {}
  absl::StatusOr<const Rope*> Get(const RopeConfig& config) {
    const auto key =
        std::make_tuple(config.head_dim, static_cast<int>(config.dtype),
                        static_cast<int>(config.style), config.theta, config.max_position);
    auto it = ropes_.find(key);
    if (it != ropes_.end()) return it->second.get();
    ASSIGN_OR_RETURN(std::unique_ptr<Rope> rope, Rope::Create(config, *gpu_.runtime, gpu_.device));
    const Rope* result = rope.get();
    ropes_[key] = std::move(rope);
    return result;
  }

 private:
  const Gpu& gpu_;
  std::map<std::tuple<int, int, int, double, int64_t>, std::unique_ptr<Rope>> ropes_;
};

// ---------------------------------------------------------------------------------------
// Part 1: kernel-service latencies

// A runtime for the no-GPU service run: it names a target and "loads" any code object,
// so that the memory tier can be timed (a memory hit never touches the runtime).
class HostOnlyRuntime final : public DeviceRuntime {
 public:
  explicit HostOnlyRuntime(std::string target, Vendor vendor)
      : target_(std::move(target)), vendor_(vendor) {}
  Vendor vendor() const override { return vendor_; }
  absl::StatusOr<int> DeviceCount() override { return 1; }
  absl::StatusOr<std::string> DeviceTarget(int) override { return target_; }
  absl::StatusOr<std::string> DeviceName(int) override { return "none (no GPU)"; }
  absl::Status SetDevice(int) override { return absl::OkStatus(); }
  absl::StatusOr<ModuleHandle> LoadModule(int, absl::string_view) override { return &token_; }
  absl::Status UnloadModule(int, ModuleHandle) override { return absl::OkStatus(); }
  absl::StatusOr<FunctionHandle> GetFunction(ModuleHandle, const char*) override { return &token_; }
  absl::Status Launch(int, FunctionHandle, Dim3, Dim3, uint32_t, StreamHandle, void**) override {
    return No();
  }
  absl::StatusOr<DevicePointer> Allocate(int, size_t) override { return No(); }
  absl::Status Free(int, DevicePointer) override { return No(); }
  absl::Status CopyToDevice(int, DevicePointer, const void*, size_t) override { return No(); }
  absl::Status CopyToHost(int, void*, DevicePointer, size_t) override { return No(); }
  absl::Status CopyDeviceToDeviceAsync(int, DevicePointer, DevicePointer, size_t,
                                       StreamHandle) override {
    return No();
  }
  absl::Status MemsetAsync(int, DevicePointer, uint8_t, size_t, StreamHandle) override {
    return No();
  }
  absl::StatusOr<StreamHandle> CreateStream(int) override { return No(); }
  absl::Status DestroyStream(int, StreamHandle) override { return No(); }
  absl::Status SynchronizeStream(int, StreamHandle) override { return No(); }
  absl::StatusOr<EventHandle> CreateEvent(int) override { return No(); }
  absl::Status DestroyEvent(int, EventHandle) override { return No(); }
  absl::Status RecordEvent(int, EventHandle, StreamHandle) override { return No(); }
  absl::StatusOr<float> ElapsedMs(int, EventHandle, EventHandle) override { return No(); }

 private:
  static absl::Status No() { return absl::UnimplementedError("no GPU in a --service_only run"); }
  std::string target_;
  Vendor vendor_;
  int token_ = 0;
};

struct ServiceKernel {
  std::string label;
  RopeConfig config;
  RopeKernel kernel;
};

std::vector<ServiceKernel> ServiceKernels(bool quick) {
  std::vector<ServiceKernel> kernels;
  auto add = [&](int head_dim, DType dtype, RopeStyle style, RopeKernel kernel) {
    RopeConfig config = BenchConfig(head_dim, dtype, style);
    kernels.push_back({absl::StrCat(RopeKernelName(kernel), " hd", head_dim, " ", DTypeName(dtype),
                                    " ", StyleName(style)),
                       config, kernel});
  };
  add(128, DType::kBF16, RopeStyle::kNeox, RopeKernel::kPositionEmbeddings);
  if (!quick) {
    add(64, DType::kBF16, RopeStyle::kNeox, RopeKernel::kPositionEmbeddings);
    add(256, DType::kBF16, RopeStyle::kNeox, RopeKernel::kPositionEmbeddings);
    add(128, DType::kF16, RopeStyle::kNeox, RopeKernel::kPositionEmbeddings);
  }
  add(128, DType::kF32, RopeStyle::kInterleaved, RopeKernel::kPositionEmbeddings);
  add(128, DType::kBF16, RopeStyle::kNeox, RopeKernel::kRope);
  return kernels;
}

// mkdtemp under the chosen parent; the caller removes it.
absl::StatusOr<std::string> MakeTempDir(const BenchOptions& options) {
  std::string parent = options.tmp_dir;
  if (parent.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    parent = (tmpdir != nullptr && *tmpdir != '\0') ? tmpdir : "/tmp";
  }
  std::string pattern = absl::StrCat(parent, "/rope_bench_cache.XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp(", pattern, ") failed: ", std::strerror(errno)));
  }
  return pattern;
}

// GPU run: GetFunction on the real device (compile or disk read, then module load).
// No-GPU run: GetCodeObject for the named target (compile or disk read; no load).
absl::StatusOr<ServiceResult> MeasureService(const BenchOptions& options, DeviceRuntime* runtime,
                                             int device, const std::string& target) {
  ServiceResult result;
  result.with_gpu = runtime != nullptr;
  result.target = target;
  ASSIGN_OR_RETURN(Compiler * compiler, CompilerForTarget(target));
  ASSIGN_OR_RETURN(result.compiler, compiler->Identity());
  RETURN_IF_ERROR(compiler->ValidateTarget(target));

  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  HostOnlyRuntime host_only(target, vendor);
  DeviceRuntime& lookup_runtime = runtime != nullptr ? *runtime : host_only;

  const std::vector<ServiceKernel> kernels = ServiceKernels(options.quick);
  for (const ServiceKernel& k : kernels) result.kernels.push_back({k.label, {}, {}, {}, {}});

  for (int round = 0; round < options.service_rounds; ++round) {
    ASSIGN_OR_RETURN(std::string dir, MakeTempDir(options));
    // The temp dir goes whatever happens below.
    struct RemoveDir {
      std::string path;
      ~RemoveDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
      }
    } remove_dir{dir};

    ServiceOptions service_options;
    service_options.disk.dir = dir;
    auto cold = std::make_unique<KernelService>(service_options);
    if (!cold->disk().enabled()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the disk tier is off in ", dir, ": ", cold->disk().disabled_reason()));
    }

    // Cold: a miss in every tier, so a compile (and a load on a GPU).
    for (size_t i = 0; i < kernels.size(); ++i) {
      const ServiceKernel& k = kernels[i];
      ASSIGN_OR_RETURN(KernelSpec spec,
                       RopeKernelSpec(k.config, k.kernel, runtime != nullptr ? "" : target));
      const ServiceStats before = cold->stats();
      const auto start = std::chrono::steady_clock::now();
      if (runtime != nullptr) {
        RETURN_IF_ERROR(
            cold->GetFunction(spec, *runtime, device, AlignedFunctionName(k.kernel)).status());
      } else {
        RETURN_IF_ERROR(cold->GetCodeObject(spec).status());
      }
      const double ms = MicrosecondsSince(start) / 1000;
      const ServiceStats after = cold->stats();
      if (after.compiles != before.compiles + 1) {
        return absl::InternalError(absl::StrCat("cold ", k.label,
                                                ": expected one compile in a fresh cache dir, saw ",
                                                after.compiles - before.compiles));
      }
      if (round == 0 && i == 0) {
        // The process's first compile also starts the compiler (NVRTC loads its builtins):
        // reported on its own, not as this kernel's cold time.
        result.first_compile_ms = ms;
        result.first_compile_kernel = k.label;
        if (options.service_rounds > 1) continue;
      }
      result.kernels[i].cold_ms.push_back(ms);
      result.kernels[i].compile_ms.push_back(after.compile_ms - before.compile_ms);
    }

    // Disk hit: a fresh service over the same directory (a new process would see this).
    auto warm = std::make_unique<KernelService>(service_options);
    for (size_t i = 0; i < kernels.size(); ++i) {
      const ServiceKernel& k = kernels[i];
      ASSIGN_OR_RETURN(KernelSpec spec,
                       RopeKernelSpec(k.config, k.kernel, runtime != nullptr ? "" : target));
      const ServiceStats before = warm->stats();
      const auto start = std::chrono::steady_clock::now();
      if (runtime != nullptr) {
        RETURN_IF_ERROR(
            warm->GetFunction(spec, *runtime, device, AlignedFunctionName(k.kernel)).status());
      } else {
        RETURN_IF_ERROR(warm->GetCodeObject(spec).status());
      }
      const double ms = MicrosecondsSince(start) / 1000;
      const ServiceStats after = warm->stats();
      if (after.disk_hits != before.disk_hits + 1 || after.compiles != before.compiles) {
        return absl::InternalError(absl::StrCat("disk hit ", k.label, ": expected a disk hit, saw ",
                                                after.disk_hits - before.disk_hits, " hits and ",
                                                after.compiles - before.compiles, " compiles"));
      }
      result.kernels[i].disk_ms.push_back(ms);
    }

    // Memory hit: GetFunction again on the warm service, many times. A hit is pure CPU
    // work on this thread, so it is timed with the thread's CPU clock: on a busy machine
    // (a shared build box) wall time would add whatever the scheduler gave to others.
    for (size_t i = 0; i < kernels.size(); ++i) {
      const ServiceKernel& k = kernels[i];
      ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(k.config, k.kernel, ""));
      const char* name = AlignedFunctionName(k.kernel);
      RETURN_IF_ERROR(warm->GetFunction(spec, lookup_runtime, device, name).status());  // loads it
      constexpr int kCalls = 20000;
      std::vector<double> batches;
      for (int b = 0; b < 5; ++b) {
        const double start_ns = ThreadCpuNanoseconds();
        for (int c = 0; c < kCalls; ++c) {
          absl::StatusOr<FunctionHandle> function =
              warm->GetFunction(spec, lookup_runtime, device, name);
          if (!function.ok()) return function.status();
        }
        batches.push_back((ThreadCpuNanoseconds() - start_ns) / kCalls);
      }
      result.kernels[i].memory_ns.push_back(Median(batches));
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Part 2: host cost per apply vs a bare launch

// The position_embeddings module's vector (aligned) or narrow (unaligned) function for
// `config`, from the same service Rope resolves it through.
absl::StatusOr<FunctionHandle> PositionEmbeddingsFunction(const Gpu& gpu, const RopeConfig& config,
                                                          bool vector_kernel) {
  ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(config, RopeKernel::kPositionEmbeddings, ""));
  const char* name = vector_kernel ? AlignedFunctionName(RopeKernel::kPositionEmbeddings)
                                   : UnalignedFunctionName(RopeKernel::kPositionEmbeddings);
  return KernelService::Default().GetFunction(spec, *gpu.runtime, gpu.device, name);
}

// The launch Rope::Launch (rope/rope.cc) builds for a contiguous, aligned Q/K pair,
// rebuilt here so that the bare launch runs the same kernel with the same grid. Keep in
// step with rope.cc; the equality check in MeasureHost catches a drift. `vector_kernel`:
// the aligned function's grid, else the narrow (unaligned) one's.
struct BareLaunch {
  RopeLaunchArgs args;
  Dim3 grid, block;
};

BareLaunch BuildBareLaunch(const RopeConfig& config, const RopeFrequencies& freqs,
                           const void* inv_freq, void* q, void* k, int64_t tokens, HeadCounts heads,
                           const int64_t* positions, bool vector_kernel) {
  BareLaunch launch;
  std::memset(&launch.args, 0, sizeof(launch.args));
  RopeLaunchArgs& a = launch.args;
  void* data[2] = {q, k};
  const int counts[2] = {heads.q, heads.kv};
  for (int i = 0; i < 2; ++i) {
    RopeTensorArgs& t = a.tensors[i];
    t.in = data[i];
    t.out = data[i];
    t.in_token_stride = t.out_token_stride = int64_t{counts[i]} * config.head_dim;
    t.in_head_stride = t.out_head_stride = config.head_dim;
    t.num_heads = counts[i];
    a.total_heads += counts[i];
  }
  a.positions = positions;
  a.positions_are_int64 = 1;
  a.position_offset = 0;
  a.inv_freq = static_cast<const double*>(inv_freq);
  a.error_flag = nullptr;
  a.max_position = config.max_position;
  a.attention_factor = static_cast<float>(freqs.attention_factor);
  a.num_tokens = static_cast<int>(tokens);
  const RopeLaunchShape shape =
      ComputeLaunchShape(config, RopeKernel::kPositionEmbeddings, tokens, a.total_heads,
                         vector_kernel ? VectorWidth(config) : UnalignedVectorWidth(config));
  a.head_splits = shape.head_splits;
  launch.grid = Dim3{static_cast<uint32_t>(shape.blocks), 1, 1};
  launch.block = Dim3{RopeLaunchShape::kThreadsPerBlock, 1, 1};
  return launch;
}

absl::StatusOr<HostResult> MeasureHost(const Gpu& gpu, const BenchOptions& options,
                                       RopeCache& ropes) {
  DeviceRuntime& rt = *gpu.runtime;
  const int64_t tokens = 1;
  const HeadCounts heads{32, 8};
  const RopeConfig config = BenchConfig(128, DType::kBF16, RopeStyle::kNeox);
  HostResult result;
  result.shape = DescribeShape(tokens, heads, config.head_dim, config.dtype, config.style);

  ASSIGN_OR_RETURN(const Rope* rope, ropes.Get(config));
  // The kernel Rope takes for these aligned views (rope.cc).
  const bool vector_kernel = !PrefersNarrowKernel(config, tokens, heads.q + heads.kv);
  ASSIGN_OR_RETURN(FunctionHandle function,
                   PositionEmbeddingsFunction(gpu, config, vector_kernel));
  ASSIGN_OR_RETURN(RopeFrequencies freqs, ComputeFrequencies(config));
  ASSIGN_OR_RETURN(DeviceBuffer inv_freq,
                   DeviceBuffer::Allocate(rt, gpu.device, freqs.inv_freq.size() * sizeof(double)));
  RETURN_IF_ERROR(
      rt.CopyToDevice(gpu.device, inv_freq.data(), freqs.inv_freq.data(), inv_freq.bytes()));

  // Two identical Q/K sets: one for Rope, one for the bare launch.
  const int64_t q_bytes = tokens * heads.q * config.head_dim * DTypeSize(config.dtype);
  const int64_t k_bytes = tokens * heads.kv * config.head_dim * DTypeSize(config.dtype);
  const int64_t set_bytes = RoundUp(q_bytes + k_bytes, 256);
  ASSIGN_OR_RETURN(DeviceBuffer sets, DeviceBuffer::Allocate(rt, gpu.device, 2 * set_bytes));
  RETURN_IF_ERROR(FillRandom(gpu, sets, config.dtype, 7));
  RETURN_IF_ERROR(rt.CopyDeviceToDeviceAsync(gpu.device, sets.data() + set_bytes, sets.data(),
                                             set_bytes, gpu.stream));
  ASSIGN_OR_RETURN(DeviceBuffer positions, UploadPositions(gpu, RandomPositions(tokens, 8)));
  const int64_t* pos = reinterpret_cast<const int64_t*>(positions.data());

  const DeviceTensor q =
      DeviceTensor::Contiguous(sets.data(), tokens, heads.q, config.head_dim, config.dtype);
  const DeviceTensor k = DeviceTensor::Contiguous(sets.data() + q_bytes, tokens, heads.kv,
                                                  config.head_dim, config.dtype);
  BareLaunch bare = BuildBareLaunch(config, freqs, inv_freq.data(), sets.data() + set_bytes,
                                    sets.data() + set_bytes + q_bytes, tokens, heads, pos,
                                    vector_kernel);
  void* params[] = {&bare.args};
  auto apply = [&]() {
    return rope->ApplyPositionEmbeddingsDevice(q, k, Positions::Int64(pos), gpu.stream);
  };
  auto launch = [&]() {
    return rt.Launch(gpu.device, function, bare.grid, bare.block, 0, gpu.stream, params);
  };

  // Same inputs, same kernel, same arguments: the outputs must agree bit for bit, or the
  // bare launch is not the launch Rope makes and the comparison means nothing.
  RETURN_IF_ERROR(apply());
  RETURN_IF_ERROR(launch());
  RETURN_IF_ERROR(rt.SynchronizeStream(gpu.device, gpu.stream));
  std::string host(2 * set_bytes, '\0');
  RETURN_IF_ERROR(rt.CopyToHost(gpu.device, host.data(), sets.data(), host.size()));
  result.bare_matches_rope =
      host.compare(0, q_bytes + k_bytes, host, set_bytes, q_bytes + k_bytes) == 0;
  if (!result.bare_matches_rope) {
    std::fprintf(
        stderr,
        "rope_bench: warning: the bare launch's output differs from Rope's: BuildBareLaunch "
        "is out of step with rope/rope.cc, so the host-cost comparison is suspect\n");
  }

  // Host clock around N async calls, excluding the synchronize. A spin first keeps the
  // GPU busy so that the calls queue up as they do in a running model (and never wait).
  constexpr int kCalls = 200;
  const int batches = std::max(15, 3 * options.batches);
  result.applies_per_batch = kCalls;
  result.batches = batches;
  std::vector<double> apply_ns, bare_ns;
  for (int b = 0; b < batches; ++b) {
    for (int which = 0; which < 2; ++which) {
      // Alternate which goes first, so a drift of the machine hits both alike.
      const bool is_apply = (which == 0) == (b % 2 == 0);
      RETURN_IF_ERROR(Spin(gpu, kCalls * 10.0));
      const auto start = std::chrono::steady_clock::now();
      for (int c = 0; c < kCalls; ++c) RETURN_IF_ERROR(is_apply ? apply() : launch());
      const double ns = MicrosecondsSince(start) * 1000 / kCalls;
      RETURN_IF_ERROR(rt.SynchronizeStream(gpu.device, gpu.stream));
      (is_apply ? apply_ns : bare_ns).push_back(ns);
    }
  }
  result.apply_ns = Median(apply_ns);
  result.bare_ns = Median(bare_ns);
  result.apply_min_ns = Min(apply_ns);
  result.bare_min_ns = Min(bare_ns);
  return result;
}

// ---------------------------------------------------------------------------------------
// Part 3: accuracy against the float64 reference at long positions

absl::Status MeasureAccuracy(const Gpu& gpu, const BenchOptions& options, RopeCache& ropes,
                             std::vector<AccuracyRow>* rows) {
  DeviceRuntime& rt = *gpu.runtime;
  constexpr int kTokens = 64;
  const HeadCounts heads{32, 8};
  constexpr int kHeadDim = 128;
  // Llama-3's theta; positions end just below 32k and 1M (the reference's own error is
  // ~1e-19 there; a float32 phase is off by ~1e-3 and ~3e-2).
  for (DType dtype : options.dtypes) {
    for (RopeStyle style : options.styles) {
      for (int64_t end : {int64_t{32768}, int64_t{1} << 20}) {
        RopeConfig config = BenchConfig(kHeadDim, dtype, style);
        config.theta = 500000;
        config.max_position = int64_t{1} << 21;
        ASSIGN_OR_RETURN(const Rope* rope, ropes.Get(config));
        std::vector<int64_t> positions(kTokens);
        for (int t = 0; t < kTokens; ++t) positions[t] = end - kTokens + t;
        ASSIGN_OR_RETURN(DeviceBuffer pos, UploadPositions(gpu, positions));

        // Out of place into poisoned outputs (all-ones bytes are NaN in every dtype), so
        // an element the kernel never writes shows up as a non-finite output.
        const size_t counts[2] = {size_t{kTokens} * heads.q * kHeadDim,
                                  size_t{kTokens} * heads.kv * kHeadDim};
        std::vector<double> inputs[2];
        DeviceBuffer in[2], out[2];
        DeviceTensor tin[2], tout[2];
        for (int i = 0; i < 2; ++i) {
          const std::string bytes = EncodeNormal(dtype, counts[i], 100 + i + end, &inputs[i]);
          ASSIGN_OR_RETURN(in[i], DeviceBuffer::Allocate(rt, gpu.device, bytes.size()));
          ASSIGN_OR_RETURN(out[i], DeviceBuffer::Allocate(rt, gpu.device, bytes.size()));
          RETURN_IF_ERROR(rt.CopyToDevice(gpu.device, in[i].data(), bytes.data(), bytes.size()));
          RETURN_IF_ERROR(
              rt.MemsetAsync(gpu.device, out[i].data(), 0xff, bytes.size(), gpu.stream));
          const int h = i == 0 ? heads.q : heads.kv;
          tin[i] = DeviceTensor::Contiguous(in[i].data(), kTokens, h, kHeadDim, dtype);
          tout[i] = DeviceTensor::Contiguous(out[i].data(), kTokens, h, kHeadDim, dtype);
        }
        RETURN_IF_ERROR(rope->ApplyPositionEmbeddingsDevice(
            tin[0], tin[1], Positions::Int64(reinterpret_cast<const int64_t*>(pos.data())),
            gpu.stream, &tout[0], &tout[1]));
        RETURN_IF_ERROR(rt.SynchronizeStream(gpu.device, gpu.stream));

        AccuracyRow row{dtype, style, end - kTokens, kTokens, 0, 0, 0, 0};
        double err2 = 0, ref2 = 0;
        for (int i = 0; i < 2; ++i) {
          std::string bytes(out[i].bytes(), '\0');
          RETURN_IF_ERROR(rt.CopyToHost(gpu.device, bytes.data(), out[i].data(), bytes.size()));
          const std::vector<double> got = DecodeValues(dtype, bytes);
          const std::vector<double> want =
              ReferenceApply(config, rope->frequencies(), inputs[i], kTokens,
                             i == 0 ? heads.q : heads.kv, positions);
          if (want.size() != got.size()) return absl::InternalError("reference shape mismatch");
          for (size_t e = 0; e < got.size(); ++e) {
            if (!std::isfinite(got[e])) {
              ++row.nonfinite;
              continue;
            }
            const double d = got[e] - want[e];
            row.max_abs_error = std::max(row.max_abs_error, std::abs(d));
            const float nearest = static_cast<float>(want[e]);
            const double stored = dtype == DType::kF32   ? nearest
                                  : dtype == DType::kF16 ? RoundToHalf(nearest)
                                                         : RoundToBf16(nearest);
            row.rounding_floor = std::max(row.rounding_floor, std::abs(stored - want[e]));
            err2 += d * d;
            ref2 += want[e] * want[e];
          }
        }
        row.rel_l2_error = std::sqrt(err2 / ref2);
        rows->push_back(row);
      }
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Part 4: kernel time vs copy, per shape

absl::StatusOr<KernelRow> MeasureKernelRow(const Gpu& gpu, const BenchOptions& options,
                                           const Rope& rope, int64_t tokens, HeadCounts heads) {
  DeviceRuntime& rt = *gpu.runtime;
  const RopeConfig& config = rope.config();
  KernelRow row;
  row.tokens = tokens;
  row.heads = heads;
  row.head_dim = config.head_dim;
  row.dtype = config.dtype;
  row.style = config.style;
  const int64_t element = DTypeSize(config.dtype);
  const int64_t q_bytes = tokens * heads.q * config.head_dim * element;
  const int64_t k_bytes = tokens * heads.kv * config.head_dim * element;
  row.qk_bytes = q_bytes + k_bytes;
  // In place: Q and K read once and written once; positions read once; the float64
  // inv_freq table (one entry per pair; no cos/sin table: they are computed) read once.
  row.kernel_bytes = 2 * row.qk_bytes + tokens * int64_t{sizeof(int64_t)} +
                     int64_t{config.EffectiveRotaryDim() / 2} * int64_t{sizeof(double)};
  row.copy_bytes = 2 * row.qk_bytes;

  // Buffer sets, each Q then K, 256-byte aligned; at least two so that the copy reads
  // one set and writes another.
  // One element of slack: rows up to kMaxNarrowTokens also time views shifted by one element.
  const int64_t set_bytes = RoundUp(row.qk_bytes + element, 256);
  row.sets = std::max<int64_t>(2, (gpu.rotate_bytes + set_bytes - 1) / set_bytes);
  ASSIGN_OR_RETURN(DeviceBuffer arena,
                   DeviceBuffer::Allocate(rt, gpu.device, row.sets * set_bytes));
  RETURN_IF_ERROR(FillRandom(gpu, arena, config.dtype, 1000 + tokens));
  // One positions array for every set: a model's layers share theirs too.
  ASSIGN_OR_RETURN(DeviceBuffer positions_buffer,
                   UploadPositions(gpu, RandomPositions(tokens, 2000 + tokens)));
  const Positions positions =
      Positions::Int64(reinterpret_cast<const int64_t*>(positions_buffer.data()));

  int64_t shift_bytes = 0;  // > 0: views one element off alignment (the unaligned kernel)
  auto apply_set_with = [&](int64_t set, const ApplyOptions& apply_options) {
    char* base = arena.data() + (set % row.sets) * set_bytes + shift_bytes;
    const DeviceTensor q =
        DeviceTensor::Contiguous(base, tokens, heads.q, config.head_dim, config.dtype);
    const DeviceTensor k =
        DeviceTensor::Contiguous(base + q_bytes, tokens, heads.kv, config.head_dim, config.dtype);
    return rope.ApplyPositionEmbeddingsDevice(q, k, positions, gpu.stream, nullptr, nullptr,
                                              apply_options);
  };
  auto apply_set = [&](int64_t set) { return apply_set_with(set, ApplyOptions{}); };
  ApplyOptions pdl;
  pdl.programmatic_dependent_launch = true;
  int64_t next = 0;
  ASSIGN_OR_RETURN(row.kernel, TimeOps(gpu, options, apply_set, &next));
  if (gpu.cuda != nullptr) {
    const Op apply_pdl = [&](int64_t set) { return apply_set_with(set, pdl); };
    next = 0;
    ASSIGN_OR_RETURN(Timing pdl_timing, TimeOps(gpu, options, apply_pdl, &next));
    row.kernel_pdl = pdl_timing;
  }

  next = 0;
  const Op copy = [&](int64_t i) {
    char* src = arena.data() + (i % row.sets) * set_bytes;
    char* dst = arena.data() + ((i + 1) % row.sets) * set_bytes;
    return rt.CopyDeviceToDeviceAsync(gpu.device, dst, src, row.qk_bytes, gpu.stream);
  };
  ASSIGN_OR_RETURN(row.copy, TimeOps(gpu, options, copy, &next));

  if (tokens <= kMaxNarrowTokens) {
    // The unaligned kernel moves one pair (NeoX) or two (interleaved) per thread instead of
    // a 16-byte vector: more threads with a shorter chain each, which may suit launches too
    // small to fill the GPU. Timed here beside the aligned kernel to decide which to take.
    shift_bytes = element;
    next = 0;
    ASSIGN_OR_RETURN(Timing unaligned, TimeOps(gpu, options, apply_set, &next));
    row.unaligned_kernel = unaligned;
    shift_bytes = 0;
  }

  if (PrefersNarrowKernel(config, tokens, heads.q + heads.kv)) {
    // Rope took the narrow kernel for these aligned views: the vector kernel it passed
    // over, on the same sets, is the other side of that choice.
    ApplyOptions vector_kernel;
    vector_kernel.kernel = KernelChoice::kVector;
    const Op apply_vector = [&](int64_t set) { return apply_set_with(set, vector_kernel); };
    next = 0;
    ASSIGN_OR_RETURN(Timing vector_timing, TimeOps(gpu, options, apply_vector, &next));
    row.vector_kernel = vector_timing;
  }

  if (tokens <= kMaxDecodeTokens && options.graph) {
    if (gpu.cuda == nullptr) {
      row.graph_note = "no CUDA driver graph API (not an NVIDIA device?)";
    } else {
      // Graph g replays applies over sets [g*A, (g+1)*A); enough graphs (at most 64) that
      // the replays rotate through the working set too. Consecutive applies in a graph are
      // dependent launches, as a model's layers are; timed plain and with programmatic
      // dependent launch (ApplyOptions), which lets each launch overlap the previous one's tail.
      const int64_t applies = options.graph_applies;
      const int64_t graphs = std::clamp<int64_t>(
          (gpu.rotate_bytes + applies * set_bytes - 1) / (applies * set_bytes), 1, 64);
      auto time_graphs = [&](const ApplyOptions& apply_options) -> absl::StatusOr<Timing> {
        std::vector<CudaGraph> captured;
        for (int64_t g = 0; g < graphs; ++g) {
          RETURN_IF_ERROR(gpu.cuda->BeginCapture(gpu.stream));
          absl::Status status;
          for (int64_t j = 0; j < applies && status.ok(); ++j)
            status = apply_set_with(g * applies + j, apply_options);
          absl::StatusOr<CudaGraph> graph =
              gpu.cuda->EndCapture(gpu.stream);  // always end the capture
          RETURN_IF_ERROR(status);
          if (!graph.ok()) return graph.status();
          captured.push_back(std::move(*graph));
        }
        int64_t replay_next = 0;
        const Op replay = [&](int64_t i) {
          return captured[i % captured.size()].Launch(gpu.stream);
        };
        return TimeOps(gpu, options, replay, &replay_next, static_cast<double>(applies));
      };
      row.graph_count = static_cast<int>(graphs);
      ASSIGN_OR_RETURN(Timing graph_timing, time_graphs(ApplyOptions{}));
      row.graph = graph_timing;
      ASSIGN_OR_RETURN(Timing pdl_timing, time_graphs(pdl));
      row.graph_pdl = pdl_timing;
      // Every set shares one positions array that no kernel writes, as a decode step's
      // layers do: the promise holds.
      ApplyOptions pdl_early = pdl;
      pdl_early.positions_not_written_by_prior_kernel = true;
      ASSIGN_OR_RETURN(Timing early_timing, time_graphs(pdl_early));
      row.graph_pdl_early = early_timing;
      if (tokens * (heads.q + heads.kv) <= kMaxDecodeOrderTokenHeads) {
        ApplyOptions other = pdl_early;
        other.kernel = PrefersNarrowKernel(config, tokens, heads.q + heads.kv) ? KernelChoice::kVector
                                                                              : KernelChoice::kNarrow;
        ASSIGN_OR_RETURN(Timing other_timing, time_graphs(other));
        row.graph_pdl_early_other_kernel = other_timing;
      }
    }
  }
  return row;
}

// ---------------------------------------------------------------------------------------
// Part 5: fused RoPE + KV-cache write vs copy vs unfused

absl::StatusOr<KvCacheRow> MeasureKvCacheRow(const Gpu& gpu, const BenchOptions& options,
                                             const Rope& rope, int64_t tokens, HeadCounts heads,
                                             KvDType cache_dtype) {
  DeviceRuntime& rt = *gpu.runtime;
  const RopeConfig& config = rope.config();
  const int64_t dim = config.head_dim;
  const int64_t element = DTypeSize(config.dtype);
  KvCacheRow row;
  row.tokens = tokens;
  row.heads = heads;
  row.head_dim = config.head_dim;
  row.dtype = config.dtype;
  row.cache_dtype = cache_dtype;
  const int64_t row_elements = (heads.q + 2 * heads.kv) * dim;
  row.qkv_bytes = tokens * row_elements * element;
  constexpr int64_t kBlockSize = 16;
  const int64_t num_blocks = (tokens + kBlockSize - 1) / kBlockSize;
  const int64_t cache_bytes =
      num_blocks * kBlockSize * heads.kv * dim * KvElementSize(cache_dtype, config.dtype);
  const int64_t written_cache_bytes =
      tokens * heads.kv * dim * KvElementSize(cache_dtype, config.dtype);
  row.fused_bytes = row.qkv_bytes + tokens * heads.q * dim * element + 2 * written_cache_bytes +
                    2 * tokens * int64_t{sizeof(int64_t)};
  row.copy_bytes = 2 * row.qkv_bytes;

  // Buffer sets: packed QKV, then the K and V caches, each 256-byte aligned.
  const int64_t qkv_span = RoundUp(row.qkv_bytes, 256), cache_span = RoundUp(cache_bytes, 256);
  const int64_t set_bytes = qkv_span + 2 * cache_span;
  row.sets = std::max<int64_t>(2, (gpu.rotate_bytes + set_bytes - 1) / set_bytes);
  ASSIGN_OR_RETURN(DeviceBuffer arena,
                   DeviceBuffer::Allocate(rt, gpu.device, row.sets * set_bytes));
  RETURN_IF_ERROR(FillRandom(gpu, arena, config.dtype, 3000 + tokens));
  ASSIGN_OR_RETURN(DeviceBuffer positions_buffer,
                   UploadPositions(gpu, RandomPositions(tokens, 4000 + tokens)));
  const Positions positions =
      Positions::Int64(reinterpret_cast<const int64_t*>(positions_buffer.data()));
  // Prefill-style slots: token t to slot t (consecutive slots of its blocks).
  std::vector<int64_t> slots(tokens);
  for (int64_t t = 0; t < tokens; ++t) slots[t] = t;
  ASSIGN_OR_RETURN(DeviceBuffer slot_buffer, UploadPositions(gpu, slots));
  const int64_t* slot_mapping = reinterpret_cast<const int64_t*>(slot_buffer.data());
  const float scales[2] = {0.05f, 0.05f};
  ASSIGN_OR_RETURN(DeviceBuffer scale_buffer,
                   DeviceBuffer::Allocate(rt, gpu.device, sizeof(scales)));
  RETURN_IF_ERROR(rt.CopyToDevice(gpu.device, scale_buffer.data(), scales, sizeof(scales)));

  struct Views {
    DeviceTensor q, k, v;
    KvCacheView cache;
  };
  auto views = [&](int64_t set) {
    char* base = arena.data() + (set % row.sets) * set_bytes;
    Views out;
    out.q = DeviceTensor{base, tokens, heads.q, dim, row_elements, dim, config.dtype};
    out.k = DeviceTensor{
        base + heads.q * dim * element, tokens, heads.kv, dim, row_elements, dim, config.dtype};
    out.v = DeviceTensor{base + (heads.q + heads.kv) * dim * element,
                         tokens,
                         heads.kv,
                         dim,
                         row_elements,
                         dim,
                         config.dtype};
    out.cache.k = base + qkv_span;
    out.cache.v = base + qkv_span + cache_span;
    out.cache.num_blocks = num_blocks;
    out.cache.block_size = kBlockSize;
    out.cache.kv_heads = heads.kv;
    out.cache.head_dim = dim;
    out.cache.dtype = cache_dtype;
    if (cache_dtype != KvDType::kSame) {
      out.cache.k_scale = reinterpret_cast<const float*>(scale_buffer.data());
      out.cache.v_scale = out.cache.k_scale + 1;
    }
    return out;
  };
  const Op fused = [&](int64_t i) {
    const Views s = views(i);
    return rope.ApplyAndCacheKvDevice(s.q, s.k, s.v, positions, slot_mapping, s.cache, gpu.stream);
  };
  const Op unfused = [&](int64_t i) {
    const Views s = views(i);
    RETURN_IF_ERROR(rope.ApplyPositionEmbeddingsDevice(s.q, s.k, positions, gpu.stream));
    return rope.WriteKvCacheDevice(s.k, s.v, slot_mapping, s.cache, gpu.stream);
  };
  const Op copy = [&](int64_t i) {
    char* src = arena.data() + (i % row.sets) * set_bytes;
    char* dst = arena.data() + ((i + 1) % row.sets) * set_bytes;
    return rt.CopyDeviceToDeviceAsync(gpu.device, dst, src, row.qkv_bytes, gpu.stream);
  };
  int64_t next = 0;
  ASSIGN_OR_RETURN(row.fused, TimeOps(gpu, options, fused, &next));
  next = 0;
  ASSIGN_OR_RETURN(row.copy, TimeOps(gpu, options, copy, &next));
  next = 0;
  ASSIGN_OR_RETURN(row.unfused, TimeOps(gpu, options, unfused, &next));
  if (gpu.cuda != nullptr) {
    auto time_fused = [&](const ApplyOptions& apply_options) {
      const Op fused_with = [&](int64_t i) {
        const Views s = views(i);
        return rope.ApplyAndCacheKvDevice(s.q, s.k, s.v, positions, slot_mapping, s.cache,
                                          gpu.stream, nullptr, apply_options);
      };
      next = 0;
      return TimeOps(gpu, options, fused_with, &next);
    };
    ApplyOptions pdl;
    pdl.programmatic_dependent_launch = true;
    ASSIGN_OR_RETURN(Timing pdl_timing, time_fused(pdl));
    row.fused_pdl = pdl_timing;
    // One positions array and one slot array for every set, written by no kernel.
    pdl.positions_not_written_by_prior_kernel = true;
    ASSIGN_OR_RETURN(Timing early_timing, time_fused(pdl));
    row.fused_pdl_early = early_timing;
  }
  return row;
}

std::string Hostname() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

// ---------------------------------------------------------------------------------------
// The run

// Ends the run on a failed part: says what failed, keeps the numbers so far.
int Fail(Report& report, const BenchOptions& options, absl::string_view part,
         const absl::Status& status) {
  report.error = absl::StrCat(part, ": ", status.ToString());
  std::fflush(stdout);
  std::fprintf(stderr, "\nrope_bench: FAILED in %s: %s\n", std::string(part).c_str(),
               status.ToString().c_str());
  if (!report.kernels.empty() || report.service || report.host_cost)
    PrintTargets(EvaluateTargets(report));
  WriteJson(report, options);
  return kExitError;
}

int Run(const BenchOptions& options) {
  Report report;
  report.commit = options.commit;
  report.timestamp = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  report.host = Hostname();

  absl::StatusOr<DeviceRuntime*> found = AnyDeviceRuntime();
  if (!found.ok()) {
    if (!options.service_only) {
      std::fprintf(stderr,
                   "rope_bench: no usable GPU: %s\n"
                   "rope_bench: the kernel and host-cost benchmarks need an NVIDIA (or AMD) GPU "
                   "with its driver; "
                   "--service_only measures the kernel service (compiler and cache) without one.\n",
                   found.status().ToString().c_str());
      report.error = absl::StrCat("no usable GPU: ", found.status().ToString());
      WriteJson(report, options);
      return kExitNoGpu;
    }
    // No GPU: the service part alone, compiling for --target.
    std::printf("rope_bench: no GPU (%s); measuring the kernel service for %s\n",
                found.status().ToString().c_str(), options.target.c_str());
    report.target = options.target;
    absl::StatusOr<ServiceResult> service = MeasureService(options, nullptr, 0, options.target);
    if (!service.ok()) return Fail(report, options, "kernel service", service.status());
    report.service = std::move(*service);
    PrintService(*report.service);
    PrintTargets(EvaluateTargets(report));
    return WriteJson(report, options) ? 0 : kExitError;
  }

  Gpu gpu;
  gpu.runtime = *found;
  gpu.device = options.device;
  DeviceRuntime& rt = *gpu.runtime;
  report.vendor = std::string(VendorName(rt.vendor()));
  {
    absl::StatusOr<int> count = rt.DeviceCount();
    if (!count.ok()) return Fail(report, options, "device count", count.status());
    if (options.device >= *count) {
      std::fprintf(stderr, "rope_bench: --device=%d but only %d %s device(s) are present\n",
                   options.device, *count, report.vendor.c_str());
      return kExitUsage;
    }
    if (absl::Status s = rt.SetDevice(gpu.device); !s.ok())
      return Fail(report, options, "set device", s);
    absl::StatusOr<std::string> name = rt.DeviceName(gpu.device);
    if (!name.ok()) return Fail(report, options, "device name", name.status());
    report.card = *name;
    absl::StatusOr<std::string> target = rt.DeviceTarget(gpu.device);
    if (!target.ok()) return Fail(report, options, "device target", target.status());
    report.target = *target;
  }
  if (rt.vendor() == Vendor::kNvidia) {
    absl::StatusOr<CudaExtras*> cuda = CudaExtras::Get();
    if (cuda.ok()) {
      absl::StatusOr<CudaDeviceInfo> info = (*cuda)->DeviceInfo(gpu.device);
      if (!info.ok()) return Fail(report, options, "device attributes", info.status());
      report.cuda = *info;
      gpu.cuda = *cuda;
      if (info->sm_clock_khz > 0) gpu.spin_cycles_per_us = info->sm_clock_khz / 1000.0;
    } else {
      std::fprintf(stderr, "rope_bench: warning: %s; no graph figures\n",
                   cuda.status().ToString().c_str());
    }
  }
  gpu.rotate_bytes = std::max<int64_t>(options.rotate_bytes, 4 * report.cuda.l2_bytes);
  report.rotate_bytes = gpu.rotate_bytes;
  std::printf("rope_bench on %s (%s, device %d), commit %s, %s\n", report.card.c_str(),
              report.target.c_str(), gpu.device, report.commit.c_str(), report.timestamp.c_str());
  if (report.cuda.driver_version > 0) {
    std::printf(
        "driver %d.%d, %d SMs at up to %d MHz, L2 %.0f MB; launches rotate through %.0f MB\n",
        report.cuda.driver_version / 1000, report.cuda.driver_version % 1000 / 10,
        report.cuda.sm_count, report.cuda.sm_clock_khz / 1000, report.cuda.l2_bytes / 1e6,
        gpu.rotate_bytes / 1e6);
  }
  std::fflush(stdout);

  // 1. Service first: nothing has compiled in this process yet, so its first compile is
  // an honest first compile.
  if (!options.skip_service) {
    absl::StatusOr<ServiceResult> service =
        MeasureService(options, gpu.runtime, gpu.device, report.target);
    if (!service.ok()) return Fail(report, options, "kernel service", service.status());
    report.service = std::move(*service);
    PrintService(*report.service);
  }
  if (options.service_only) {
    PrintTargets(EvaluateTargets(report));
    return WriteJson(report, options) ? 0 : kExitError;
  }

  {
    absl::StatusOr<StreamHandle> stream = rt.CreateStream(gpu.device);
    if (!stream.ok()) return Fail(report, options, "create stream", stream.status());
    gpu.stream = *stream;
    absl::StatusOr<EventHandle> start = rt.CreateEvent(gpu.device);
    if (!start.ok()) return Fail(report, options, "create event", start.status());
    gpu.start = *start;
    absl::StatusOr<EventHandle> stop = rt.CreateEvent(gpu.device);
    if (!stop.ok()) return Fail(report, options, "create event", stop.status());
    gpu.stop = *stop;
  }
  if (absl::Status s = LoadSpinKernel(gpu); !s.ok()) {
    // Not fatal: without it decode figures may include host launch gaps (marked *).
    gpu.spin = nullptr;
    report.spin_note = s.ToString();
    std::fprintf(stderr,
                 "rope_bench: warning: no spin kernel (%s); short launches are timed without one\n",
                 s.ToString().c_str());
  }
  report.spin = gpu.spin != nullptr;
  RopeCache ropes(gpu);

  // 2. Host cost per apply.
  if (absl::Status s = CheckStop(); !s.ok()) return Fail(report, options, "start", s);
  if (!options.skip_host) {
    absl::StatusOr<HostResult> host = MeasureHost(gpu, options, ropes);
    if (!host.ok()) return Fail(report, options, "host cost", host.status());
    report.host_cost = *host;
    PrintHostCost(*host);
  }

  // 3. Accuracy.
  if (absl::Status s = CheckStop(); !s.ok()) return Fail(report, options, "host cost", s);
  if (!options.skip_accuracy) {
    if (absl::Status s = MeasureAccuracy(gpu, options, ropes, &report.accuracy); !s.ok()) {
      return Fail(report, options, "accuracy", s);
    }
    PrintAccuracy(report.accuracy);
  }

  // 4. Kernel vs copy, grouped by config so each Rope is created once.
  if (!options.skip_kernels) {
    PrintKernelHeader();
    if (gpu.spin != nullptr) {
      int64_t next = 0;
      const Op empty = [&gpu](int64_t) { return LaunchSpin(gpu, 0); };  // returns at once
      absl::StatusOr<Timing> timing = TimeOps(gpu, options, empty, &next);
      if (!timing.ok()) return Fail(report, options, "empty kernel", timing.status());
      report.empty_kernel = *timing;
      PrintEmptyKernel(*timing);
    }
    for (DType dtype : options.dtypes) {
      for (int head_dim : options.head_dims) {
        for (RopeStyle style : options.styles) {
          absl::StatusOr<const Rope*> rope = ropes.Get(BenchConfig(head_dim, dtype, style));
          if (!rope.ok()) {
            return Fail(report, options,
                        absl::StrCat("Rope::Create hd", head_dim, " ", DTypeName(dtype)),
                        rope.status());
          }
          for (const HeadCounts& heads : options.heads) {
            for (int64_t tokens : options.tokens) {
              if (absl::Status s = CheckStop(); !s.ok())
                return Fail(report, options, "kernel matrix", s);
              absl::StatusOr<KernelRow> row = MeasureKernelRow(gpu, options, **rope, tokens, heads);
              if (!row.ok()) {
                return Fail(report, options, DescribeShape(tokens, heads, head_dim, dtype, style),
                            row.status());
              }
              report.kernels.push_back(*row);
              PrintKernelRow(*row);
            }
          }
        }
      }
    }
  }

  // 5. Fused RoPE + KV-cache write: the serving shape, bf16, both cache formats.
  if (!options.skip_kv_cache) {
    PrintKvCacheHeader();
    absl::StatusOr<const Rope*> rope = ropes.Get(BenchConfig(128, DType::kBF16, RopeStyle::kNeox));
    if (!rope.ok()) return Fail(report, options, "Rope::Create hd128 bf16", rope.status());
    for (KvDType cache_dtype : {KvDType::kSame, KvDType::kFp8E4M3}) {
      for (int64_t tokens : {int64_t{1}, int64_t{64}, int64_t{4096}, int64_t{32768}}) {
        if (absl::Status s = CheckStop(); !s.ok()) return Fail(report, options, "kv cache rows", s);
        absl::StatusOr<KvCacheRow> row =
            MeasureKvCacheRow(gpu, options, **rope, tokens, HeadCounts{32, 8}, cache_dtype);
        if (!row.ok()) {
          return Fail(report, options,
                      absl::StrCat("kv cache ", tokens, " tokens ", KvDTypeName(cache_dtype)),
                      row.status());
        }
        report.kv_cache.push_back(*row);
        PrintKvCacheRow(*row);
      }
    }
  }

  PrintTargets(EvaluateTargets(report));
  std::printf("\nelapsed %.1f s\n", MicrosecondsSince(report.started) / 1e6);
  return WriteJson(report, options) ? 0 : kExitError;
}

}  // namespace
}  // namespace rope_jit

int main(int argc, char** argv) {
  // Honest cold numbers: the driver's PTX cache (~/.nv/ComputeCache) and Comgr's cache
  // must not serve a compile. Set before any vendor library is loaded, which reads them
  // at load time.
  setenv("CUDA_CACHE_DISABLE", "1", 1);
  setenv("AMD_COMGR_CACHE", "0", 1);

  // A SIGTERM/SIGINT ends the run at the next measurement boundary, JSON written.
  struct sigaction action = {};
  action.sa_handler = rope_jit::OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  rope_jit::BenchOptions options;
  if (absl::Status parsed = rope_jit::ParseBenchFlags(argc, argv, &options); !parsed.ok()) {
    std::fprintf(stderr, "rope_bench: %s\nrun rope_bench --help for the flags\n",
                 std::string(parsed.message()).c_str());
    return rope_jit::kExitUsage;
  }
  if (options.help) {
    std::fputs(rope_jit::BenchUsage().c_str(), stdout);
    return 0;
  }
  return rope_jit::Run(options);
}
