// What an inference engine does with rope_jit: build the kernels its model needs for
// the GPU it has (or, with no GPU, for a named target), then apply RoPE per layer.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "jit/backends.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "rope/rope.h"

int main() {
  using namespace rope_jit;
  RopeConfig config;  // a Llama-style head: 128, NeoX, bf16
  config.head_dim = 128;
  config.theta = 500000;
  config.max_position = 8192;

  // Cached code objects land in a private directory so the example leaves no trace.
  ServiceOptions options;
  options.disk.dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                     "/rope_jit_consumer_example";
  KernelService service(options);

  absl::StatusOr<DeviceRuntime*> runtime = AnyDeviceRuntime();
  if (runtime.ok()) {
    auto rope = Rope::Create(config, **runtime, 0, service);
    if (!rope.ok()) {
      std::fprintf(stderr, "Rope::Create failed: %s\n", rope.status().ToString().c_str());
      return 1;
    }
    std::printf("consumer: kernels ready on device 0 (%s)\n",
                (*runtime)->DeviceTarget(0).value_or("?").c_str());
    return 0;
  }

  // No GPU: prove the embedded kernels compile here for the targets a fleet would run.
  int built = 0;
  for (const char* target : {"sm_90", "gfx90a"}) {
    auto spec = RopeKernelSpec(config, RopeKernel::kPositionEmbeddings, target);
    if (!spec.ok()) return 1;
    auto code = service.GetCodeObject(*spec);
    if (code.ok()) {
      std::printf("consumer: no GPU; built position_embeddings for %s (%zu bytes)\n", target,
                  code->size());
      ++built;
    } else {
      std::printf("consumer: %s: %s\n", target, code.status().ToString().c_str());
    }
  }
  return built > 0 ? 0 : 1;
}
