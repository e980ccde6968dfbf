#include "jit/cache_entry.h"

#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace rope_jit {
namespace {

// PNG-style: a high byte catches 7-bit transfers, CR LF / ^Z / LF catch text-mode
// translation by whatever copied the file.
constexpr char kMagic[8] = {'\x89', 'R', 'J', 'C', '\r', '\n', '\x1a', '\n'};
constexpr size_t kMagicSize = sizeof(kMagic);
constexpr size_t kVersionOffset = kMagicSize;            // u32
constexpr size_t kKeyLengthOffset = kVersionOffset + 4;  // u32
constexpr size_t kKeyTextOffset = kKeyLengthOffset + 4;
constexpr size_t kPayloadLengthSize = 8;  // u64, after the key text
constexpr size_t kChecksumSize = 16;      // XXH128_canonical_t, after the payload length
static_assert(kKeyTextOffset + kPayloadLengthSize + kChecksumSize == kCacheEntryOverhead);
static_assert(sizeof(XXH128_canonical_t) == kChecksumSize);

void AppendLittleEndian(std::string& out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// Callers guarantee `bytes` in-bounds bytes at `data`.
uint64_t ReadLittleEndian(const char* data, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(data[i])) << (8 * i);
  }
  return value;
}

// XXH3-128 of `header` followed by `payload`, without concatenating them (payloads are
// code objects of up to megabytes).
XXH128_canonical_t Checksum(absl::string_view header, absl::string_view payload) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH128_hash_t hash;
  if (state != nullptr && XXH3_128bits_reset(state.get()) == XXH_OK &&
      XXH3_128bits_update(state.get(), header.data(), header.size()) == XXH_OK &&
      XXH3_128bits_update(state.get(), payload.data(), payload.size()) == XXH_OK) {
    hash = XXH3_128bits_digest(state.get());
  } else {
    // Only when malloc failed: one-shot hashing of a copy gives the same value.
    std::string joined = absl::StrCat(header, payload);
    hash = XXH3_128bits(joined.data(), joined.size());
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  return canonical;
}

}  // namespace

std::string EncodeCacheEntry(const CacheKey& key, absl::string_view payload) {
  std::string out;
  out.reserve(kCacheEntryOverhead + key.text.size() + payload.size());
  out.append(kMagic, kMagicSize);
  AppendLittleEndian(out, kCacheFormatVersion, 4);
  AppendLittleEndian(out, key.text.size(), 4);
  out.append(key.text);
  AppendLittleEndian(out, payload.size(), kPayloadLengthSize);
  const XXH128_canonical_t checksum = Checksum(out, payload);
  out.append(reinterpret_cast<const char*>(checksum.digest), kChecksumSize);
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<absl::string_view> DecodeCacheEntry(absl::string_view file_bytes,
                                                   const CacheKey& expected) {
  const size_t size = file_bytes.size();
  const char* data = file_bytes.data();
  if (size < kCacheEntryOverhead) {
    return absl::DataLossError(absl::StrCat(
        "cache entry too short: ", size, " bytes, a header needs at least ", kCacheEntryOverhead));
  }
  if (std::memcmp(data, kMagic, kMagicSize) != 0) {
    return absl::DataLossError("not a rope_jit cache entry (bad magic)");
  }
  // The version comes before any other field: another version may lay them out differently.
  const uint64_t version = ReadLittleEndian(data + kVersionOffset, 4);
  if (version != kCacheFormatVersion) {
    return absl::DataLossError(absl::StrCat("cache entry format version ", version,
                                            ", this build reads ", kCacheFormatVersion));
  }
  // Each length is checked against what remains before it is used as an offset, so a
  // garbage length cannot move a read out of bounds or overflow a size_t.
  const uint64_t key_length = ReadLittleEndian(data + kKeyLengthOffset, 4);
  if (key_length > size - kCacheEntryOverhead) {
    return absl::DataLossError(absl::StrCat("cache entry truncated: key length ", key_length,
                                            " does not fit in ", size, " bytes"));
  }
  const size_t payload_length_offset = kKeyTextOffset + key_length;
  const size_t checksum_offset = payload_length_offset + kPayloadLengthSize;
  const size_t payload_offset = checksum_offset + kChecksumSize;
  const uint64_t payload_length = ReadLittleEndian(data + payload_length_offset, 8);
  const size_t present = size - payload_offset;
  if (payload_length != present) {
    return absl::DataLossError(absl::StrCat(
        payload_length > present ? "cache entry truncated" : "cache entry has trailing bytes",
        ": payload length ", payload_length, ", file holds ", present));
  }
  const absl::string_view payload = file_bytes.substr(payload_offset);
  // The checksum before the key comparison: a flipped bit in the key text is damage,
  // while a key that differs in an intact entry is another key's entry.
  const XXH128_canonical_t checksum = Checksum(file_bytes.substr(0, checksum_offset), payload);
  if (std::memcmp(checksum.digest, data + checksum_offset, kChecksumSize) != 0) {
    return absl::DataLossError("cache entry checksum mismatch");
  }
  const absl::string_view key_text = file_bytes.substr(kKeyTextOffset, key_length);
  if (key_text != expected.text) {
    size_t differ = 0;
    while (differ < key_text.size() && differ < expected.text.size() &&
           key_text[differ] == expected.text[differ]) {
      ++differ;
    }
    // Where the texts part says which component of the key changed (an unstable key
    // never hits: this message is how one finds out why).
    return absl::DataLossError(absl::StrFormat(
        "cache entry holds another key (key %s, entry's key text differs from byte %d)",
        expected.hex, differ));
  }
  return payload;
}

}  // namespace rope_jit
