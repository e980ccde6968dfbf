#!/usr/bin/env bash
# The whole GPU-side check on a GPU host, from binaries built elsewhere:
#   bazel build --dynamic_mode=off //tests:rope_gpu_test //tests:device_runtime_test \
#     //tests:aot_gpu_test //tests:pdl_gpu_test //tests:rope_kv_cache_test \
#     //tests:rope_model_test //tools:rope_bench //tools:jit_warm
#   # then copy them to device_bin/
#   ROPE_JIT_COMMIT=$(git rev-parse HEAD) tools/gpu_check.sh device_bin
# Runs every *_test binary, rope_gpu_test again over the same cache (disk hits), jit_warm
# with --verify, rope_bench and the PyTorch baselines. Results go to $OUT (or ./gpu_logs):
# card.txt, the benchmark tables and JSON, and the test and tool logs packed in logs.tar.gz
# (the device tool returns at most 8 files). Exit status is non-zero when any test or tool
# failed.
set -uo pipefail
out=${OUT:-gpu_logs}
mkdir -p "$out"
logs=$(mktemp -d)
bin=${1:-device_bin}
commit=${ROPE_JIT_COMMIT:-unknown}
export ROPE_JIT_CACHE_DIR=${ROPE_JIT_CACHE_DIR:-/tmp/rope_jit_gpu_check}
rm -rf "$ROPE_JIT_CACHE_DIR"
# The suites expect what `bazel test` provides.
export TEST_TMPDIR=${TEST_TMPDIR:-$(mktemp -d)}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/card.txt"
status=0
for test in "$bin"/*_test; do
  name=$(basename "$test")
  echo "=== $name"
  "$test" > "$logs/$name.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|max abs error|service:" "$logs/$name.log"
done
if [ -x "$bin/rope_gpu_test" ]; then
  echo "=== rope_gpu_test again (same cache: expect disk hits, no compiles)"
  "$bin/rope_gpu_test" --gtest_filter='*HeadsAreIndependent*:*ReportMaxErrorsAndServiceStats*' \
    > "$logs/rope_gpu_test_second.log" 2>&1 || status=1
  grep -E "PASSED|FAILED|service:" "$logs/rope_gpu_test_second.log"
fi
if [ -x "$bin/jit_warm" ]; then
  echo "=== jit_warm (defaults: this GPU's target) then --verify"
  "$bin/jit_warm" --cache_dir=/tmp/rope_jit_warm > "$logs/jit_warm.log" 2>&1 || status=1
  "$bin/jit_warm" --cache_dir=/tmp/rope_jit_warm --verify >> "$logs/jit_warm.log" 2>&1 || status=1
  grep -E "^summary|loaded" "$logs/jit_warm.log"
fi
if [ -x "$bin/rope_bench" ]; then
  echo "=== rope_bench"
  "$bin/rope_bench" --commit "$commit" --json "$out/rope_bench.json" > "$out/rope_bench.txt" 2>&1 || status=1
  grep -A8 "== Targets" "$out/rope_bench.txt"
fi
if command -v python3 >/dev/null && [ -f tools/torch_rope_bench.py ]; then
  echo "=== PyTorch baselines (quick matrix)"
  PYTHONUNBUFFERED=1 timeout 150 python3 tools/torch_rope_bench.py --quick --commit "$commit" \
    --time_budget_s 100 --json "$out/torch_rope_bench.json" > "$out/torch_rope_bench.txt" 2>&1 || status=1
  grep -E "^ +32768 " "$out/torch_rope_bench.txt"
fi
tar -czf "$out/logs.tar.gz" -C "$logs" .
exit $status
