// What one apply costs on the host backend (jit/host): a figure for engines' CPU-only CI,
// not a goal. Times ApplyPositionEmbeddingsDevice on packed bf16 QKV in host memory.
//
//   bazel run //tools:host_bench -- [--tokens=4096] [--q_heads=32] [--kv_heads=8]
//                                   [--head_dim=128] [--iterations=20]
//
// Prints the median, the minimum and the bytes moved per second (Q and K read and
// written). The first apply after Create (which compiles or loads the kernels) is not
// timed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "jit/backends.h"
#include "rope/rope.h"

namespace rope_jit {
namespace {

struct Flags {
  int tokens = 4096;
  int q_heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  int iterations = 20;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const size_t equals = arg.find('=');
    if (equals == absl::string_view::npos) return false;
    const absl::string_view name = arg.substr(0, equals);
    int value = 0;
    if (!absl::SimpleAtoi(arg.substr(equals + 1), &value) || value <= 0) return false;
    if (name == "--tokens") {
      flags->tokens = value;
    } else if (name == "--q_heads") {
      flags->q_heads = value;
    } else if (name == "--kv_heads") {
      flags->kv_heads = value;
    } else if (name == "--head_dim") {
      flags->head_dim = value;
    } else if (name == "--iterations") {
      flags->iterations = value;
    } else {
      return false;
    }
  }
  return true;
}

int Run(const Flags& flags) {
  DeviceRuntime& host = RuntimeForVendor(Vendor::kHost);
  RopeConfig config;
  config.head_dim = flags.head_dim;
  config.dtype = DType::kBF16;
  config.max_position = std::max(flags.tokens, 2);
  absl::StatusOr<std::unique_ptr<Rope>> rope = Rope::Create(config, host, 0);
  if (!rope.ok()) {
    std::fprintf(stderr, "Rope::Create: %s\n", rope.status().ToString().c_str());
    return 1;
  }
  const int64_t row = static_cast<int64_t>(flags.q_heads + 2 * flags.kv_heads) * flags.head_dim;
  const size_t bytes = static_cast<size_t>(flags.tokens) * row * 2;
  void* qkv = host.Allocate(0, bytes).value();
  std::vector<uint16_t> init(bytes / 2);
  std::mt19937 rng(1);
  for (uint16_t& v : init) v = static_cast<uint16_t>(0x3c00 + rng() % 0x300);  // bf16 in [1, 2)
  std::memcpy(qkv, init.data(), bytes);
  uint8_t* base = static_cast<uint8_t*>(qkv);
  DeviceTensor q{base, flags.tokens,   flags.q_heads, flags.head_dim,
                 row,  flags.head_dim, DType::kBF16};
  DeviceTensor k{base + static_cast<size_t>(flags.q_heads) * flags.head_dim * 2,
                 flags.tokens,
                 flags.kv_heads,
                 flags.head_dim,
                 row,
                 flags.head_dim,
                 DType::kBF16};
  const Positions positions = Positions::FromOffset(0);
  absl::Status status = (*rope)->ApplyPositionEmbeddingsDevice(q, k, positions, nullptr);
  std::vector<double> ms;
  for (int i = 0; status.ok() && i < flags.iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    status = (*rope)->ApplyPositionEmbeddingsDevice(q, k, positions, nullptr);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  if (!status.ok()) {
    std::fprintf(stderr, "apply: %s\n", status.ToString().c_str());
    return 1;
  }
  std::sort(ms.begin(), ms.end());
  const double moved = 2.0 * flags.tokens * (flags.q_heads + flags.kv_heads) * flags.head_dim * 2;
  const double median = ms[ms.size() / 2];
  std::printf(
      "host apply bf16 %d tok x %dq/%dkv x %d on %s: median %.3f ms, min %.3f ms, "
      "%.2f GB/s (Q+K read+write)\n",
      flags.tokens, flags.q_heads, flags.kv_heads, flags.head_dim,
      host.DeviceName(0).value_or("?").c_str(), median, ms.front(), moved / (median * 1e-3) / 1e9);
  host.Free(0, qkv).IgnoreError();
  return 0;
}

}  // namespace
}  // namespace rope_jit

int main(int argc, char** argv) {
  rope_jit::Flags flags;
  if (!rope_jit::ParseFlags(argc, argv, &flags)) {
    std::fprintf(stderr,
                 "usage: host_bench [--tokens=N] [--q_heads=N] [--kv_heads=N] [--head_dim=N] "
                 "[--iterations=N]\n");
    return 2;
  }
  return rope_jit::Run(flags);
}
