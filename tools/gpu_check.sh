#!/usr/bin/env bash
# Runs the GPU-side checks on a GPU host from binaries built elsewhere (device_bin/):
# every *_test binary, then rope_gpu_test again over the same cache to show disk hits,
# then the benchmark if present. Logs go to $OUT (or ./gpu_logs).
set -uo pipefail
out=${OUT:-gpu_logs}
mkdir -p "$out"
bin=${1:-device_bin}
export ROPE_JIT_CACHE_DIR=${ROPE_JIT_CACHE_DIR:-/tmp/rope_jit_gpu_check}
# The suites expect what `bazel test` provides.
export TEST_TMPDIR=${TEST_TMPDIR:-$(mktemp -d)}
rm -rf "$ROPE_JIT_CACHE_DIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/card.txt"
status=0
for test in "$bin"/*_test; do
  name=$(basename "$test")
  echo "=== $name"
  "$test" 2>&1 | tee "$out/$name.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED|max abs error|service:" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
if [ -x "$bin/rope_gpu_test" ]; then
  echo "=== rope_gpu_test again (same cache: expect disk hits, no compiles)"
  "$bin/rope_gpu_test" --gtest_filter='*HeadsAreIndependent*:*ReportMaxErrors*' 2>&1 |
    tee "$out/rope_gpu_test_second.log" | grep -E "PASSED|FAILED|service:"
fi
exit $status
