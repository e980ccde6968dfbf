// Writes the seed corpus of cache_entry_fuzzer: a few valid entries made by
// EncodeCacheEntry, so that the fuzzer starts from files that pass every check and
// mutates from there. The output is committed under tests/fuzz/corpus/cache_entry;
// rerun after a format change:
//
//   bazel run //tests:make_fuzz_seeds -- $PWD/tests/fuzz/corpus/cache_entry
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "jit/cache_entry.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUTPUT_DIR\n");
    return 2;
  }
  using rope_jit::CacheKey;
  const std::string key_text =
      "rope_jit cache key v1\nkernel=rope\nsource=0f1e2d3c4b5a69788796a5b4c3d2e1f0\n"
      "defines=ROPE_HEAD_DIM=128,ROPE_ROTARY_DIM=128,ROPE_DTYPE=2\ntarget=sm_90\n"
      "compiler=nvrtc 13.0\noptions=--gpu-architecture=sm_90 -O3\n";
  const std::string hex = "00112233445566778899aabbccddeeff";
  // A code object's first bytes: an ELF header, then some zeros and text.
  const std::string elf = std::string(
                              "\x7f"
                              "ELF\x02\x01\x01\x33",
                              8) +
                          std::string(24, '\0') + ".text.rope_apply_aligned";
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"elf_payload", rope_jit::EncodeCacheEntry({key_text, hex}, elf)},
      {"empty_payload", rope_jit::EncodeCacheEntry({key_text, hex}, "")},
      {"empty_key", rope_jit::EncodeCacheEntry({"", hex}, "payload")},
      {"short_key", rope_jit::EncodeCacheEntry({"k", hex}, std::string(200, '\xa5'))},
  };
  for (const auto& [name, bytes] : seeds) {
    const std::string path = std::string(argv[1]) + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    if (!out) {
      std::fprintf(stderr, "make_seeds: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return 0;
}
