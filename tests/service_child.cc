// A separate process for the kernel service's cross-process tests:
//   service_child CACHE_DIR TARGET [WAIT_FILE]
// builds the rope kernel for TARGET through a fresh KernelService over CACHE_DIR (after
// WAIT_FILE appears, so that several children start together) and prints
// "key=<hex> compiles=<n> disk_hits=<n> bytes=<n>".
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: service_child CACHE_DIR TARGET [WAIT_FILE]\n");
    return 2;
  }
  if (argc > 3) {
    struct stat info;
    for (int i = 0; i < 2000 && stat(argv[3], &info) != 0; ++i) usleep(5000);
  }
  rope_jit::ServiceOptions options;
  options.disk.dir = argv[1];
  rope_jit::KernelService service(options);
  rope_jit::RopeConfig config;
  auto spec = rope_jit::RopeKernelSpec(config, rope_jit::RopeKernel::kRope, argv[2]);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
    return 1;
  }
  auto key = service.KeyFor(*spec);
  auto code = service.GetCodeObject(*spec);
  if (!key.ok() || !code.ok()) {
    std::fprintf(stderr, "%s\n", (key.ok() ? code.status() : key.status()).ToString().c_str());
    return 1;
  }
  rope_jit::ServiceStats stats = service.stats();
  std::printf("key=%s compiles=%llu disk_hits=%llu bytes=%zu\n", key->hex.c_str(),
              static_cast<unsigned long long>(stats.compiles),
              static_cast<unsigned long long>(stats.disk_hits), code->size());
  return 0;
}
