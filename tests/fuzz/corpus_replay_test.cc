// Replays a fuzz target's committed seed corpus under gcc in `bazel test` (and so under
// --config=asan too): the target's own checks must hold for every seed and for simple
// damage to each one, every truncation and every single-byte flip. The fuzzing proper
// (clang, libFuzzer, mutation) runs in .ci/fuzz.
//
//   corpus_replay_test CORPUS_DIR   (relative to the runfiles root, or absolute)
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

std::string g_corpus_dir;

void Replay(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(CorpusReplayTest, SeedsAndTheirDamagedCopiesPassTheTargetsChecks) {
  ASSERT_TRUE(fs::is_directory(g_corpus_dir)) << g_corpus_dir;
  int seeds = 0;
  for (const fs::directory_entry& item : fs::directory_iterator(g_corpus_dir)) {
    std::ifstream in(item.path(), std::ios::binary);
    const std::string seed((std::istreambuf_iterator<char>(in)), {});
    // On a failed check the target aborts; this line says which seed did it.
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", item.path().c_str(), seed.size());
    Replay(seed);
    for (size_t length = 0; length < seed.size(); ++length) Replay(seed.substr(0, length));
    for (size_t i = 0; i < seed.size(); ++i) {
      std::string flipped = seed;
      flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
      Replay(flipped);
      flipped[i] = static_cast<char>(seed[i] ^ 0xff);
      Replay(flipped);
    }
    ++seeds;
  }
  EXPECT_GE(seeds, 3) << "the seed corpus in " << g_corpus_dir << " is (nearly) empty";
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: corpus_replay_test CORPUS_DIR\n");
    return 2;
  }
  g_corpus_dir = argv[1];
  return RUN_ALL_TESTS();
}
