// What the AMD code looks like, checked from the compiled code objects (no GPU needed):
// on gfx90a the vector path of every kernel moves data with 16-byte global loads and
// stores, uses no scratch memory (private segment size 0), and its VGPR counts are
// reported. Needs hipRTC and LLVM's objdump/readelf (Debian llvm-15, from setup.sh).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "rope/kernel_specs.h"
#include "tool_paths.h"

namespace rope_jit {
namespace {

std::string RunCommand(const std::string& command, int* exit_code) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *exit_code = -1;
    return output;
  }
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, got);
  *exit_code = pclose(pipe);
  return output;
}

// The instructions of one kernel in llvm-objdump's listing.
std::string KernelText(const std::string& listing, const std::string& kernel) {
  const std::string header = "<" + kernel + ">:";
  const size_t start = listing.find(header);
  if (start == std::string::npos) return "";
  const size_t end = listing.find(">:\n", start + header.size());
  return listing.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// A value of one kernel's entry in the AMDGPU metadata note as llvm-readelf prints it:
//   - .args: ...
//     .name:           rope_qk_apply_aligned
//     .private_segment_fixed_size: 0
//     .vgpr_count:     110
std::string MetadataValue(const std::string& notes, const std::string& kernel, const std::string& key) {
  std::vector<std::string> entries = absl::StrSplit(notes, "\n  - .");
  for (const std::string& entry : entries) {
    std::string name, value;
    for (absl::string_view line : absl::StrSplit(entry, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (absl::ConsumePrefix(&line, ".name:")) name = std::string(absl::StripAsciiWhitespace(line));
      if (absl::ConsumePrefix(&line, "." + key + ":")) value = std::string(absl::StripAsciiWhitespace(line));
    }
    if (name == kernel) return value;
  }
  return "";
}

TEST(AmdIsaTest, VectorPathUses16ByteAccessesAndNoScratch) {
  Compiler& hiprtc = CompilerForVendor(Vendor::kAmd);
  if (!hiprtc.Identity().ok()) GTEST_SKIP() << "no hipRTC here: " << hiprtc.Identity().status();
  const std::string objdump = ROPE_JIT_LLVM_OBJDUMP;
  if (objdump.empty()) GTEST_SKIP() << "no llvm-objdump of the ROCm LLVM (install llvm-15)";
  const std::string readelf = absl::StrReplaceAll(objdump, {{"llvm-objdump", "llvm-readelf"}});
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/kernel.hsaco");

  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
      for (int head_dim : {128, 80}) {
        RopeConfig config;
        config.head_dim = head_dim;
        config.dtype = dtype;
        config.style = style;
        auto spec = RopeKernelSpec(config, RopeKernel::kPositionEmbeddings, "gfx90a");
        ASSERT_TRUE(spec.ok()) << spec.status();
        auto code = hiprtc.Compile({spec->source, spec->kernel, spec->defines, "gfx90a"});
        ASSERT_TRUE(code.ok()) << code.status();
        std::ofstream(path, std::ios::binary) << *code;
        const std::string what = absl::StrCat(DTypeName(dtype), " ", StyleName(style), " head_dim ", head_dim);

        int exit_code = 0;
        const std::string listing =
            RunCommand(absl::StrCat(objdump, " -d --no-show-raw-insn --mcpu=gfx90a ", path, " 2>&1"), &exit_code);
        ASSERT_EQ(exit_code, 0) << listing;
        const std::string notes = RunCommand(absl::StrCat(readelf, " --notes ", path, " 2>&1"), &exit_code);
        ASSERT_EQ(exit_code, 0) << notes;

        for (const char* kernel : {"rope_qk_apply_aligned", "rope_qk_apply_unaligned"}) {
          const std::string text = KernelText(listing, kernel);
          ASSERT_FALSE(text.empty()) << what << ": " << kernel << " not in the listing";
          const bool aligned = absl::EndsWith(kernel, "_aligned") && !absl::StrContains(kernel, "unaligned");
          if (aligned && VectorWidth(config) * DTypeSize(dtype) == 16) {
            EXPECT_TRUE(absl::StrContains(text, "global_load_dwordx4")) << what << ": " << kernel;
            EXPECT_TRUE(absl::StrContains(text, "global_store_dwordx4")) << what << ": " << kernel;
          }
          EXPECT_FALSE(absl::StrContains(text, "scratch_")) << what << ": " << kernel;
          EXPECT_EQ(MetadataValue(notes, kernel, "private_segment_fixed_size"), "0") << what << ": " << kernel;
          const std::string vgprs = MetadataValue(notes, kernel, "vgpr_count");
          EXPECT_FALSE(vgprs.empty()) << what << ": " << kernel;
          std::printf("gfx90a %-26s %-24s VGPRs %s SGPRs %s\n", what.c_str(), kernel, vgprs.c_str(),
                      MetadataValue(notes, kernel, "sgpr_count").c_str());
        }
      }
    }
  }
}

}  // namespace
}  // namespace rope_jit
