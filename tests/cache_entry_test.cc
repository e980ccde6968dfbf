#include "jit/cache_entry.h"

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace rope_jit {
namespace {

CacheKey TestKey() {
  return {"kernel=rope_apply;src=0123abcd;head_dim=128;target=gfx90a:sramecc+:xnack-;v=1",
          "00112233445566778899aabbccddeeff"};
}

std::string TestPayload() {
  std::string payload;
  for (int i = 0; i < 64; ++i) payload.push_back(static_cast<char>(i * 37 + 11));
  return payload;
}

// Expects DataLoss whose message contains `reason`.
void ExpectDataLoss(absl::string_view bytes, absl::string_view reason, const std::string& what) {
  absl::StatusOr<absl::string_view> decoded = DecodeCacheEntry(bytes, TestKey());
  ASSERT_FALSE(decoded.ok()) << what;
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << what;
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), reason))
      << what << ": " << decoded.status();
}

TEST(CacheEntryTest, RoundTrips) {
  const std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  EXPECT_EQ(file.size(), kCacheEntryOverhead + TestKey().text.size() + TestPayload().size());
  absl::StatusOr<absl::string_view> payload = DecodeCacheEntry(file, TestKey());
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, TestPayload());
  // A view into the file, not a copy.
  EXPECT_EQ(payload->data(), file.data() + file.size() - TestPayload().size());
}

TEST(CacheEntryTest, RoundTripsEmptyPayloadAndBinaryKey) {
  const CacheKey key{std::string("a\0b\xff", 4), "ffffffffffffffffffffffffffffffff"};
  const std::string file = EncodeCacheEntry(key, "");
  absl::StatusOr<absl::string_view> payload = DecodeCacheEntry(file, key);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_TRUE(payload->empty());
}

TEST(CacheEntryTest, EveryTruncationIsDataLoss) {
  const std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  for (size_t length = 0; length < file.size(); ++length) {
    // A copy of exactly `length` bytes, so that a read past the end is caught by ASan.
    const std::string prefix = file.substr(0, length);
    absl::StatusOr<absl::string_view> decoded = DecodeCacheEntry(prefix, TestKey());
    ASSERT_FALSE(decoded.ok()) << "prefix of " << length;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << length;
    const bool names_it = absl::StrContains(decoded.status().message(), "too short") ||
                          absl::StrContains(decoded.status().message(), "truncated");
    EXPECT_TRUE(names_it) << length << ": " << decoded.status();
  }
}

TEST(CacheEntryTest, EveryFlippedByteIsDataLoss) {
  const std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  for (size_t i = 0; i < file.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string damaged = file;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      absl::StatusOr<absl::string_view> decoded = DecodeCacheEntry(damaged, TestKey());
      ASSERT_FALSE(decoded.ok()) << "byte " << i << " mask " << int{mask};
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << i;
      EXPECT_FALSE(decoded.status().message().empty()) << i;
    }
  }
}

TEST(CacheEntryTest, WrongMagicIsDataLoss) {
  std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  file.replace(0, 4, std::string("\x7f") + "ELF");
  ExpectDataLoss(file, "magic", "ELF header");
}

TEST(CacheEntryTest, OtherVersionIsDataLoss) {
  for (uint32_t version : {0u, kCacheFormatVersion + 1, 0xffffffffu}) {
    std::string file = EncodeCacheEntry(TestKey(), TestPayload());
    for (int i = 0; i < 4; ++i) file[8 + i] = static_cast<char>((version >> (8 * i)) & 0xff);
    ExpectDataLoss(file, "version", std::to_string(version));
  }
}

TEST(CacheEntryTest, AnotherKeysEntryIsDataLoss) {
  CacheKey other = TestKey();
  other.text.back() = '2';
  ExpectDataLoss(EncodeCacheEntry(other, TestPayload()), "another key", "last byte differs");
  other.text = TestKey().text + ";extra";
  ExpectDataLoss(EncodeCacheEntry(other, TestPayload()), "another key", "longer key");
  ExpectDataLoss(EncodeCacheEntry(CacheKey{}, TestPayload()), "another key", "empty key");
}

TEST(CacheEntryTest, ZeroLengthIsDataLoss) { ExpectDataLoss("", "too short", "empty file"); }

TEST(CacheEntryTest, TrailingGarbageIsDataLoss) {
  const std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  ExpectDataLoss(file + "x", "trailing", "one byte");
  ExpectDataLoss(file + file, "trailing", "written twice");
}

TEST(CacheEntryTest, HugeLengthFieldsStayInBounds) {
  const std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  const size_t key_length = TestKey().text.size();
  std::string damaged = file;
  for (int i = 0; i < 4; ++i) damaged[12 + i] = '\xff';  // key length 4 GiB - 1
  ExpectDataLoss(damaged, "truncated", "key length");
  damaged = file;
  for (int i = 0; i < 8; ++i) damaged[16 + key_length + i] = '\xff';  // payload length 2^64 - 1
  ExpectDataLoss(damaged, "truncated", "payload length");
}

// A cheap stand-in for the fuzzer: random damage to a valid entry and random bytes
// behind a valid magic and version. Every input decodes to an error or to the original
// payload (a mutation can only hit bytes outside the checksum by luck: none are).
TEST(CacheEntryTest, RandomDamageNeverDecodesToAnythingElse) {
  const std::string file = EncodeCacheEntry(TestKey(), TestPayload());
  std::mt19937 random(12345);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::string input;
    if (iteration % 2 == 0) {
      input = file;
      const int mutations = 1 + random() % 4;
      for (int m = 0; m < mutations; ++m) {
        input[random() % input.size()] = static_cast<char>(random());
      }
      input.resize(random() % (file.size() + 8), '\0');
    } else {
      input = file.substr(0, 16);  // magic, version, a plausible key length
      const size_t extra = random() % 200;
      for (size_t i = 0; i < extra; ++i) input.push_back(static_cast<char>(random()));
    }
    input.shrink_to_fit();
    absl::StatusOr<absl::string_view> decoded = DecodeCacheEntry(input, TestKey());
    if (decoded.ok()) {
      EXPECT_EQ(*decoded, TestPayload()) << iteration;
    } else {
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << iteration;
    }
  }
}

}  // namespace
}  // namespace rope_jit
