#!/usr/bin/env bash
# Installs every Debian package that building, testing and running rope_jit needs.
# Idempotent: re-running installs nothing that is already there.
set -euo pipefail

packages=(
  bazel-bootstrap      # Bazel 4.2.3, used offline
  g++ pkg-config python3
  libabsl-dev          # Abseil 20220623, linked statically
  libgtest-dev libgmock-dev
  libxxhash-dev        # cache keys and entry checksums
  nlohmann-json3-dev   # rope/hf_config: Hugging Face config.json
  libhiredis-dev libssl-dev  # the remote cache tier: Redis client, HMAC-SHA256 (libcrypto)
  redis-server         # the remote tier's tests start their own on loopback
  # ROCm 5.2: hipRTC (inside libamdhip64), comgr's ISA list, device libraries.
  libamdhip64-dev libamd-comgr-dev rocm-device-libs libhiprtc-builtins5 hipcc
  llvm-15              # (hipcc pulls it in) llvm-objdump: AOT/JIT parity compares AMD instructions
  clang-14 libclang-rt-14-dev  # .ci/fuzz: clang, libFuzzer and clang's sanitizer runtimes
  # LLVM 19 for AMD targets past ROCm 5.2 (gfx942, gfx1100, gfx1201): the clang compiler
  # (jit/rocm/clang_compiler.h, aot/aot.bzl), its linker, and llvm-objdump for the ISA tests.
  clang-19 lld-19 llvm-19
  python3-matplotlib   # for the plot only: tools/plot_bench.py (benchmark figures)
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# NVRTC comes with the CUDA toolkit (not a Debian package); without it the NVIDIA
# compiler reports Unavailable and its tests skip.
if ls /usr/local/cuda/lib64/libnvrtc.so* >/dev/null 2>&1; then
  echo "setup: CUDA toolkit found at /usr/local/cuda"
else
  echo "setup: no CUDA toolkit at /usr/local/cuda: NVRTC compiles will be unavailable"
fi
