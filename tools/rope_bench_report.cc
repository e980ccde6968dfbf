#include "tools/rope_bench_report.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/rope_bench_json.h"

namespace rope_jit {
namespace {

std::string Verdict(bool pass) { return pass ? "PASS" : "MISS"; }

void WriteTiming(JsonWriter& j, const Timing& t) {
  j.BeginObject();
  j.Key("median_us").Number(t.median_us);
  j.Key("min_us").Number(t.min_us);
  j.Key("max_us").Number(t.max_us);
  j.Key("ops_per_batch").Int(t.ops_per_batch);
  j.Key("batches").Int(t.batches);
  j.Key("host_bound_batches").Int(t.host_bound_batches);
  j.Key("host_bound").Bool(t.host_bound);
  j.EndObject();
}

// A timing that only some rows or runs have: null where it is absent.
void WriteOptionalTiming(JsonWriter& j, const std::optional<Timing>& t) {
  if (t) {
    WriteTiming(j, *t);
  } else {
    j.Null();
  }
}

void WriteSamples(JsonWriter& j, const std::vector<double>& samples) {
  j.BeginArray();
  for (double s : samples) j.Number(s);
  j.EndArray();
}

}  // namespace

std::string DescribeShape(int64_t tokens, HeadCounts heads, int head_dim, DType dtype,
                          RopeStyle style) {
  return absl::StrCat(tokens, " tokens, ", heads.q, "q/", heads.kv, "kv, head_dim ", head_dim, ", ",
                      DTypeName(dtype), ", ", StyleName(style));
}

void PrintService(const ServiceResult& s) {
  std::printf("\n== Kernel service (%s, target %s) ==\n",
              s.with_gpu
                  ? "GetFunction on the device: module load included"
                  : "no GPU: GetCodeObject, no module load; memory hit via a host-only runtime",
              s.target.c_str());
  std::printf("compiler: %s\n", s.compiler.c_str());
  std::printf("first compile in this process (compiler start-up included): %.1f ms (%s)\n",
              s.first_compile_ms, s.first_compile_kernel.c_str());
  std::printf("%-44s %10s %10s %10s %12s\n", "kernel (median over rounds)", "cold ms", "compile ms",
              "disk ms", "memory ns");
  for (const ServiceKernelResult& k : s.kernels) {
    std::printf("%-44s %10.1f %10.1f %10.3f %12.1f\n", k.label.c_str(), Median(k.cold_ms),
                Median(k.compile_ms), Median(k.disk_ms), Median(k.memory_ns));
  }
  std::fflush(stdout);
}

void PrintHostCost(const HostResult& h) {
  std::printf(
      "\n== Host cost per call (%s; host clock around %d async calls, median of %d batches) ==\n",
      h.shape.c_str(), h.applies_per_batch, h.batches);
  std::printf("Rope::ApplyPositionEmbeddingsDevice %8.0f ns   (min %.0f)\n", h.apply_ns,
              h.apply_min_ns);
  std::printf("bare DeviceRuntime::Launch          %8.0f ns   (min %.0f)   same output: %s\n",
              h.bare_ns, h.bare_min_ns, h.bare_matches_rope ? "yes" : "NO");
  std::fflush(stdout);
}

void PrintAccuracy(const std::vector<AccuracyRow>& rows) {
  std::printf(
      "\n== Accuracy vs float64 reference (64 tokens, 32q/8kv, head_dim 128, theta 5e5, "
      "out of place into poisoned outputs) ==\n");
  std::printf(
      "floor = max abs error of the float64 result rounded to the dtype: the best any kernel can "
      "do\n");
  std::printf("%-6s %-12s %17s %12s %12s %12s %10s\n", "dtype", "style", "positions", "max abs err",
              "floor", "rel L2 err", "unwritten");
  for (const AccuracyRow& r : rows) {
    const std::string positions =
        absl::StrCat(r.first_position, "..", r.first_position + r.tokens - 1);
    std::printf("%-6s %-12s %17s %12.3g %12.3g %12.3g %10lld\n", DTypeName(r.dtype),
                StyleName(r.style), positions.c_str(), r.max_abs_error, r.rounding_floor,
                r.rel_l2_error, static_cast<long long>(r.nonfinite));
  }
  std::fflush(stdout);
}

// The target a row is held to, if any: "PASS <=1.05x", "MISS <=2.5us", "".
std::string RowTarget(const KernelRow& r) {
  if (r.headline())
    return absl::StrCat(Verdict(r.ratio() <= kHeadlineRatio), " <=", kHeadlineRatio, "x copy");
  if (r.prefill())
    return absl::StrCat(Verdict(r.ratio() <= kPrefillRatio), " <=", kPrefillRatio, "x copy");
  if (r.decode_target())
    return absl::StrCat(Verdict(r.kernel.median_us <= kDecodeKernelUs), " <=", kDecodeKernelUs,
                        "us");
  return "";
}

namespace {

// A median in a 9-wide column, or "-" where the figure was not taken.
std::string TimingCell(const std::optional<Timing>& t) {
  return t ? absl::StrFormat("%9.2f", t->median_us) : absl::StrFormat("%9s", "-");
}

}  // namespace

void PrintKernelHeader() {
  std::printf(
      "\n== Kernel (ApplyPositionEmbeddingsDevice, in place, int64 positions) vs D2D copy of the "
      "same Q+K ==\n");
  std::printf(
      "times are medians per launch; GB/s count bytes read + written; b2b pdl = the kernel "
      "column's back-to-back launches with programmatic dependent launch; graph = per apply in "
      "a replayed CUDA graph; pdl us = the same with programmatic dependent launch; early us = "
      "that with the positions read before the wait for the kernel ahead; early oth = early us "
      "on the kernel Rope did not take (<= 1024 tokens x heads); narrow us = "
      "the unaligned kernel (views one element off; <= 4096 tokens); vector us = the vector "
      "kernel, where Rope takes the narrow one for aligned views (small launches);\n* = most "
      "batches host-bound (the host enqueued slower than the GPU ran: the figure may include "
      "launch gaps)\n");
  std::printf("%6s %6s %4s %5s %-11s %8s %10s %7s %10s %7s %6s %9s %9s %9s %9s %9s %9s %s\n",
              "tokens", "heads", "hd", "dtype", "style", "MB q+k", "kernel us", "GB/s", "copy us",
              "GB/s", "ratio", "b2b pdl", "graph us", "pdl us", "early us", "early oth",
              "narrow us", "vector us  target");
}

void PrintEmptyKernel(const Timing& t) {
  std::printf(
      "empty kernel (1 thread, returns at once), timed the same way: %.2f us per launch: the floor "
      "of "
      "every kernel figure below\n",
      t.median_us);
}

void PrintKernelRow(const KernelRow& r) {
  const std::string heads = absl::StrCat(r.heads.q, "/", r.heads.kv);
  const std::string optional_cells = absl::StrCat(
      TimingCell(r.kernel_pdl), " ", TimingCell(r.graph), " ", TimingCell(r.graph_pdl), " ",
      TimingCell(r.graph_pdl_early), " ", TimingCell(r.graph_pdl_early_other_kernel), " ",
      TimingCell(r.unaligned_kernel), " ",
      TimingCell(r.vector_kernel));
  std::printf(
      "%6lld %6s %4d %5s %-11s %8.3f %9.2f%s %7.0f %9.2f%s %7.0f %6.3f %s  %s\n",
      static_cast<long long>(r.tokens), heads.c_str(), r.head_dim, DTypeName(r.dtype),
      StyleName(r.style), r.qk_bytes / 1e6, r.kernel.median_us, r.kernel.host_bound ? "*" : " ",
      r.kernel_bytes / r.kernel.median_us / 1e3, r.copy.median_us, r.copy.host_bound ? "*" : " ",
      r.copy_bytes / r.copy.median_us / 1e3, r.ratio(), optional_cells.c_str(),
      RowTarget(r).c_str());
  std::fflush(stdout);
}

void PrintKvCacheHeader() {
  std::printf(
      "\nfused RoPE + KV-cache write (packed QKV, NHD cache, block 16) vs a copy of the QKV bytes "
      "and "
      "vs our unfused path (rope, then a cache write)\n");
  std::printf("pdl us = the fused launches back to back with programmatic dependent launch; "
              "early us = that with positions and slots read before the wait\n");
  std::printf("%6s %6s %4s %5s %-9s %8s %9s %7s %9s %9s %7s %7s %9s %9s\n", "tokens", "heads",
              "hd", "dtype", "cache", "QKV MB", "fused us", "GB/s", "copy us", "unfused", "/copy",
              "/unfus", "pdl us", "early us");
}

void PrintKvCacheRow(const KvCacheRow& r) {
  const std::string heads = absl::StrCat(r.heads.q, "/", r.heads.kv);
  std::printf("%6lld %6s %4d %5s %-9s %8.3f %9.2f%s %6.0f %9.2f%s %9.2f%s %6.3f %7.3f %s %s\n",
              static_cast<long long>(r.tokens), heads.c_str(), r.head_dim, DTypeName(r.dtype),
              KvDTypeName(r.cache_dtype), r.qkv_bytes / 1e6, r.fused.median_us,
              r.fused.host_bound ? "*" : " ", r.fused_bytes / r.fused.median_us / 1e3,
              r.copy.median_us, r.copy.host_bound ? "*" : " ", r.unfused.median_us,
              r.unfused.host_bound ? "*" : " ", r.copy_ratio(), r.unfused_ratio(),
              TimingCell(r.fused_pdl).c_str(), TimingCell(r.fused_pdl_early).c_str());
  std::fflush(stdout);
}

std::vector<TargetLine> EvaluateTargets(const Report& report) {
  std::vector<TargetLine> lines;
  auto na = [](const std::string& name, const std::string& why) {
    return TargetLine{name, why, "n/a"};
  };

  {  // Headline prefill ratio, per style measured.
    const std::string name =
        absl::StrCat("prefill 32768 tok 32q/8kv hd128 bf16 <= ", kHeadlineRatio, "x copy");
    bool any = false;
    for (const KernelRow& r : report.kernels) {
      if (!r.headline()) continue;
      any = true;
      lines.push_back({absl::StrCat(name, " (", StyleName(r.style), ")"),
                       absl::StrFormat("%.3fx (%.1f us vs copy %.1f us)", r.ratio(),
                                       r.kernel.median_us, r.copy.median_us),
                       Verdict(r.ratio() <= kHeadlineRatio)});
    }
    if (!any) lines.push_back(na(name, "not measured (shape filtered out)"));
  }
  {  // Every prefill row.
    const std::string name = absl::StrCat("every prefill shape/dtype <= ", kPrefillRatio, "x copy");
    const KernelRow* worst = nullptr;
    int misses = 0, count = 0;
    for (const KernelRow& r : report.kernels) {
      if (!r.prefill()) continue;
      ++count;
      if (r.ratio() > kPrefillRatio) ++misses;
      if (worst == nullptr || r.ratio() > worst->ratio()) worst = &r;
    }
    if (worst == nullptr) {
      lines.push_back(na(name, "not measured"));
    } else {
      lines.push_back({name,
                       absl::StrFormat("worst %.3fx (%s); %d of %d rows over", worst->ratio(),
                                       DescribeShape(worst->tokens, worst->heads, worst->head_dim,
                                                     worst->dtype, worst->style),
                                       misses, count),
                       Verdict(misses == 0)});
    }
  }
  {  // Decode, 1 token, 32q/8kv.
    const std::string name =
        absl::StrCat("decode 1 tok 32q/8kv kernel <= ", kDecodeKernelUs, " us");
    const KernelRow* worst = nullptr;
    for (const KernelRow& r : report.kernels) {
      if (r.decode_target() && (worst == nullptr || r.kernel.median_us > worst->kernel.median_us))
        worst = &r;
    }
    if (worst == nullptr) {
      lines.push_back(na(name, "not measured"));
    } else {
      lines.push_back(
          {name,
           absl::StrFormat(
               "worst %.2f us (%s)%s%s%s%s", worst->kernel.median_us,
               DescribeShape(1, worst->heads, worst->head_dim, worst->dtype, worst->style),
               worst->graph ? absl::StrFormat("; in a graph %.2f us", worst->graph->median_us) : "",
               worst->graph_pdl ? absl::StrFormat(", with PDL %.2f us", worst->graph_pdl->median_us)
                                : "",
               report.empty_kernel
                   ? absl::StrFormat("; empty kernel %.2f us", report.empty_kernel->median_us)
                   : "",
               worst->kernel.host_bound ? "; host-bound batches" : ""),
           Verdict(worst->kernel.median_us <= kDecodeKernelUs)});
    }
  }
  {
    const std::string name =
        absl::StrCat("host cost per apply <= bare launch + ", kHostOverBareUs, " us");
    if (!report.host_cost) {
      lines.push_back(na(name, "not measured"));
    } else {
      const HostResult& h = *report.host_cost;
      lines.push_back({name,
                       absl::StrFormat("apply %.0f ns vs bare %.0f ns (+%.0f ns)%s", h.apply_ns,
                                       h.bare_ns, h.apply_ns - h.bare_ns,
                                       h.bare_matches_rope ? "" : "; bare != Rope launch!"),
                       Verdict(h.apply_ns <= h.bare_ns + kHostOverBareUs * 1000)});
    }
  }
  {
    const std::string mem_name = absl::StrCat("memory hit <= ", kMemoryHitNs, " ns");
    const std::string disk_name = absl::StrCat("disk hit <= ", kDiskHitMs, " ms");
    if (!report.service) {
      lines.push_back(na(mem_name, "not measured"));
      lines.push_back(na(disk_name, "not measured"));
    } else {
      double mem = 0, disk = 0;
      for (const ServiceKernelResult& k : report.service->kernels) {
        mem = std::max(mem, Median(k.memory_ns));
        disk = std::max(disk, Median(k.disk_ms));
      }
      lines.push_back(
          {mem_name, absl::StrFormat("worst kernel %.0f ns", mem), Verdict(mem <= kMemoryHitNs)});
      lines.push_back(
          {disk_name,
           absl::StrFormat("worst kernel %.3f ms%s", disk,
                           report.service->with_gpu ? " (module load included)"
                                                    : " (no GPU: read + validate, no module load)"),
           Verdict(disk <= kDiskHitMs)});
    }
  }
  return lines;
}

void PrintTargets(const std::vector<TargetLine>& lines) {
  std::printf("\n== Targets ==\n");
  for (const TargetLine& t : lines) {
    std::printf("%-4s  %-52s %s\n", t.verdict.c_str(), t.name.c_str(), t.value.c_str());
  }
  std::fflush(stdout);
}

std::string ReportJson(const Report& r, const BenchOptions& o) {
  JsonWriter j;
  j.BeginObject();
  j.Key("tool").String("rope_bench");
  j.Key("commit").String(r.commit);
  j.Key("timestamp").String(r.timestamp);
  j.Key("host").String(r.host);
  j.Key("card").String(r.card);
  j.Key("target").String(r.target);
  j.Key("vendor").String(r.vendor);
  j.Key("cuda_driver_version").Int(r.cuda.driver_version);
  j.Key("l2_bytes").Int(r.cuda.l2_bytes);
  j.Key("sm_count").Int(r.cuda.sm_count);
  j.Key("sm_clock_khz").Int(r.cuda.sm_clock_khz);
  j.Key("error").String(r.error);
  j.Key("elapsed_s")
      .Number(std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count());

  j.Key("options").BeginObject();
  j.Key("quick").Bool(o.quick);
  j.Key("service_only").Bool(o.service_only);
  j.Key("min_batch_ms").Number(o.min_batch_ms);
  j.Key("batches").Int(o.batches);
  j.Key("rotate_bytes").Int(r.rotate_bytes);
  j.Key("graph_applies").Int(o.graph_applies);
  j.Key("service_rounds").Int(o.service_rounds);
  j.Key("spin_kernel").Bool(r.spin);
  j.Key("spin_note").String(r.spin_note);
  j.Key("positions").String(absl::StrCat("int64, uniform random in [0, ", kBenchMaxPosition, ")"));
  j.EndObject();

  j.Key("service");
  if (!r.service) {
    j.Null();
  } else {
    const ServiceResult& s = *r.service;
    j.BeginObject();
    j.Key("with_gpu").Bool(s.with_gpu);
    j.Key("target").String(s.target);
    j.Key("compiler").String(s.compiler);
    j.Key("first_compile_ms").Number(s.first_compile_ms);
    j.Key("first_compile_kernel").String(s.first_compile_kernel);
    j.Key("kernels").BeginArray();
    for (const ServiceKernelResult& k : s.kernels) {
      j.BeginObject();
      j.Key("kernel").String(k.label);
      j.Key("cold_ms").Number(Median(k.cold_ms));
      j.Key("compile_ms").Number(Median(k.compile_ms));
      j.Key("disk_hit_ms").Number(Median(k.disk_ms));
      j.Key("memory_hit_ns").Number(Median(k.memory_ns));
      j.Key("cold_ms_samples");
      WriteSamples(j, k.cold_ms);
      j.Key("disk_hit_ms_samples");
      WriteSamples(j, k.disk_ms);
      j.Key("memory_hit_ns_samples");
      WriteSamples(j, k.memory_ns);
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
  }

  j.Key("host_cost");
  if (!r.host_cost) {
    j.Null();
  } else {
    const HostResult& h = *r.host_cost;
    j.BeginObject();
    j.Key("shape").String(h.shape);
    j.Key("apply_ns").Number(h.apply_ns);
    j.Key("bare_launch_ns").Number(h.bare_ns);
    j.Key("apply_min_ns").Number(h.apply_min_ns);
    j.Key("bare_launch_min_ns").Number(h.bare_min_ns);
    j.Key("calls_per_batch").Int(h.applies_per_batch);
    j.Key("batches").Int(h.batches);
    j.Key("bare_matches_rope").Bool(h.bare_matches_rope);
    j.EndObject();
  }

  j.Key("accuracy").BeginArray();
  for (const AccuracyRow& a : r.accuracy) {
    j.BeginObject();
    j.Key("dtype").String(DTypeName(a.dtype));
    j.Key("style").String(StyleName(a.style));
    j.Key("first_position").Int(a.first_position);
    j.Key("tokens").Int(a.tokens);
    j.Key("theta").Number(500000);
    j.Key("max_abs_error").Number(a.max_abs_error);
    j.Key("rounding_floor").Number(a.rounding_floor);
    j.Key("rel_l2_error").Number(a.rel_l2_error);
    j.Key("nonfinite_outputs").Int(a.nonfinite);
    j.EndObject();
  }
  j.EndArray();

  j.Key("empty_kernel");
  WriteOptionalTiming(j, r.empty_kernel);
  j.Key("kv_cache").BeginArray();
  for (const KvCacheRow& k : r.kv_cache) {
    j.BeginObject();
    j.Key("tokens").Int(k.tokens);
    j.Key("q_heads").Int(k.heads.q);
    j.Key("kv_heads").Int(k.heads.kv);
    j.Key("head_dim").Int(k.head_dim);
    j.Key("dtype").String(DTypeName(k.dtype));
    j.Key("cache_dtype").String(KvDTypeName(k.cache_dtype));
    j.Key("qkv_bytes").Int(k.qkv_bytes);
    j.Key("fused_bytes").Int(k.fused_bytes);
    j.Key("copy_bytes").Int(k.copy_bytes);
    j.Key("buffer_sets").Int(k.sets);
    j.Key("fused");
    WriteTiming(j, k.fused);
    j.Key("copy");
    WriteTiming(j, k.copy);
    j.Key("unfused");
    WriteTiming(j, k.unfused);
    j.Key("fused_pdl");
    WriteOptionalTiming(j, k.fused_pdl);
    j.Key("fused_pdl_early_positions");
    WriteOptionalTiming(j, k.fused_pdl_early);
    j.Key("ratio_fused_over_copy").Number(k.copy_ratio());
    j.Key("ratio_fused_over_unfused").Number(k.unfused_ratio());
    j.EndObject();
  }
  j.EndArray();
  j.Key("kernels").BeginArray();
  for (const KernelRow& k : r.kernels) {
    j.BeginObject();
    j.Key("tokens").Int(k.tokens);
    j.Key("q_heads").Int(k.heads.q);
    j.Key("kv_heads").Int(k.heads.kv);
    j.Key("head_dim").Int(k.head_dim);
    j.Key("dtype").String(DTypeName(k.dtype));
    j.Key("style").String(StyleName(k.style));
    j.Key("qk_bytes").Int(k.qk_bytes);
    j.Key("kernel_bytes").Int(k.kernel_bytes);
    j.Key("copy_bytes").Int(k.copy_bytes);
    j.Key("buffer_sets").Int(k.sets);
    j.Key("kernel");
    WriteTiming(j, k.kernel);
    j.Key("copy");
    WriteTiming(j, k.copy);
    j.Key("kernel_gbps").Number(k.kernel_bytes / k.kernel.median_us / 1e3);
    j.Key("copy_gbps").Number(k.copy_bytes / k.copy.median_us / 1e3);
    j.Key("ratio_kernel_over_copy").Number(k.ratio());
    j.Key("kernel_pdl");
    WriteOptionalTiming(j, k.kernel_pdl);
    j.Key("graph_per_apply");
    WriteOptionalTiming(j, k.graph);
    j.Key("unaligned_kernel");
    WriteOptionalTiming(j, k.unaligned_kernel);
    j.Key("vector_kernel");
    WriteOptionalTiming(j, k.vector_kernel);
    j.Key("graph_pdl_per_apply");
    WriteOptionalTiming(j, k.graph_pdl);
    j.Key("graph_pdl_early_positions_per_apply");
    WriteOptionalTiming(j, k.graph_pdl_early);
    j.Key("graph_pdl_early_positions_other_kernel_per_apply");
    WriteOptionalTiming(j, k.graph_pdl_early_other_kernel);
    j.Key("graphs_rotated").Int(k.graph_count);
    j.Key("graph_note").String(k.graph_note);
    j.Key("target").String(RowTarget(k));
    j.EndObject();
  }
  j.EndArray();

  j.Key("targets").BeginArray();
  for (const TargetLine& t : EvaluateTargets(r)) {
    j.BeginObject();
    j.Key("target").String(t.name);
    j.Key("measured").String(t.value);
    j.Key("verdict").String(t.verdict);
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return j.str();
}

// Writes the JSON (if asked). Returns false, having said why, when it cannot.
bool WriteJson(const Report& report, const BenchOptions& options) {
  if (options.json_path.empty()) return true;
  const std::string text = ReportJson(report, options);
  const std::string temp = options.json_path + ".tmp";
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    file << text;
    file.close();
    if (!file) {
      std::fprintf(stderr, "rope_bench: cannot write %s: %s\n", temp.c_str(), std::strerror(errno));
      return false;
    }
  }
  if (std::rename(temp.c_str(), options.json_path.c_str()) != 0) {
    std::fprintf(stderr, "rope_bench: cannot rename %s to %s: %s\n", temp.c_str(),
                 options.json_path.c_str(), std::strerror(errno));
    return false;
  }
  std::printf("\nJSON written to %s\n", options.json_path.c_str());
  return true;
}

}  // namespace rope_jit
