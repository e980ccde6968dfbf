// libFuzzer target for the cache entry parser, DecodeCacheEntry (jit/cache_entry.h): the
// input is a file as found in a cache directory, whoever wrote it.
//
//   .ci/fuzz builds it with clang -fsanitize=fuzzer,address,undefined and runs it from
//   tests/fuzz/corpus/cache_entry; corpus_replay_test replays that corpus under gcc.
//
// Beyond "no crash, no out-of-bounds read", it checks what the format promises: an
// accepted file is exactly EncodeCacheEntry(key, payload) for the key asked for, the
// payload is a view into the input, a rejection is DataLoss, and Encode then Decode
// round-trips any key text and payload.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "jit/cache_entry.h"

namespace {

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

constexpr char kHex[] = "00112233445566778899aabbccddeeff";

void CheckDecode(absl::string_view file, const rope_jit::CacheKey& key) {
  const absl::StatusOr<absl::string_view> payload = rope_jit::DecodeCacheEntry(file, key);
  if (!payload.ok()) {
    FUZZ_CHECK(payload.status().code() == absl::StatusCode::kDataLoss);
    return;
  }
  FUZZ_CHECK(payload->data() >= file.data());
  FUZZ_CHECK(payload->data() + payload->size() == file.data() + file.size());
  FUZZ_CHECK(rope_jit::EncodeCacheEntry(key, *payload) == file);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view file(reinterpret_cast<const char*>(data), size);

  // As the service reads it: with some fixed key, and with the key text the file itself
  // claims (when its length field fits), so that intact files reach the key comparison.
  CheckDecode(file, {"kernel=rope;target=sm_90", kHex});
  if (size >= 16) {
    const uint32_t key_length =
        static_cast<uint32_t>(data[12]) | static_cast<uint32_t>(data[13]) << 8 |
        static_cast<uint32_t>(data[14]) << 16 | static_cast<uint32_t>(data[15]) << 24;
    if (key_length <= size - 16) {
      CheckDecode(file, {std::string(file.substr(16, key_length)), kHex});
    }
  }

  // The other direction: the input split into a key text and a payload.
  if (size > 0) {
    const size_t split = 1 + data[0] % size;
    const rope_jit::CacheKey key{std::string(file.substr(1, split - 1)), kHex};
    const absl::string_view payload = file.substr(split);
    const std::string encoded = rope_jit::EncodeCacheEntry(key, payload);
    FUZZ_CHECK(encoded.size() == rope_jit::kCacheEntryOverhead + key.text.size() + payload.size());
    const absl::StatusOr<absl::string_view> decoded = rope_jit::DecodeCacheEntry(encoded, key);
    FUZZ_CHECK(decoded.ok() && *decoded == payload);
    // One byte short, or one too many, is never accepted.
    const absl::string_view short_by_one = absl::string_view(encoded).substr(0, encoded.size() - 1);
    FUZZ_CHECK(!rope_jit::DecodeCacheEntry(short_by_one, key).ok());
    FUZZ_CHECK(!rope_jit::DecodeCacheEntry(encoded + '\0', key).ok());
  }
  return 0;
}
