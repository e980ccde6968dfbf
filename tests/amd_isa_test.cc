// What the AMD code looks like, checked from the compiled code objects (no GPU needed):
// the vector path of every kernel moves data with 16-byte global loads and stores, uses no
// scratch memory (private segment size 0), has the target's wavefront size, and its VGPR
// counts are reported. gfx90a through hipRTC and through clang 19 (side by side); gfx942,
// gfx1100 and gfx1201 through clang 19. Needs LLVM's objdump/readelf of each compiler's LLVM
// (Debian llvm-15 and llvm-19, from setup.sh).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "rope/kernel_specs.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"
#include "tool_paths.h"

namespace rope_jit {
namespace {

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
std::string MetadataValue(const std::string& notes, const std::string& kernel,
                          const std::string& key) {
  std::vector<std::string> entries = absl::StrSplit(notes, "\n  - .");
  for (const std::string& entry : entries) {
    std::string name, value;
    for (absl::string_view line : absl::StrSplit(entry, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (absl::ConsumePrefix(&line, ".name:"))
        name = std::string(absl::StripAsciiWhitespace(line));
      if (absl::ConsumePrefix(&line, "." + key + ":"))
        value = std::string(absl::StripAsciiWhitespace(line));
    }
    if (name == kernel) return value;
  }
  return "";
}

// What one compile of one kernel looks like.
struct KernelIsa {
  int instructions = 0;
  std::string vgprs, sgprs;
};

// The LLVM tools that read what `compiler` emits: hipRTC's LLVM (15 in Debian) does not know
// gfx942 or gfx12; clang's (19) does.
struct Tools {
  std::string objdump, readelf;
};

Tools ToolsFor(const char* objdump) {
  const std::string path = objdump;
  return {path, absl::StrReplaceAll(path, {{"llvm-objdump", "llvm-readelf"}})};
}

int InstructionCount(const std::string& text) {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!line.empty() && absl::ascii_isspace(line[0]) &&
        !absl::StripAsciiWhitespace(line).empty()) {
      ++count;
    }
  }
  return count;
}

// Compiles position_embeddings for every dtype x style x {128, 80} for `target` with `compiler`
// and checks the code: on the vector path 16-byte global loads and stores (gfx9:
// global_{load,store}_dwordx4; gfx11/gfx12: global_{load,store}_b128), no scratch memory,
// private segment 0, the wavefront size of the target; VGPR counts printed. Returns each
// kernel's numbers by "<what> <kernel>".
std::map<std::string, KernelIsa> CheckIsa(Compiler& compiler, const char* label,
                                          const std::string& target, const Tools& tools,
                                          int wavefront_size) {
  std::map<std::string, KernelIsa> report;
  const std::string processor(AmdProcessor(target));
  const bool gfx9 = absl::StartsWith(processor, "gfx9");
  const std::string load16 = gfx9 ? "global_load_dwordx4" : "global_load_b128";
  const std::string store16 = gfx9 ? "global_store_dwordx4" : "global_store_b128";
  const std::string load8 = gfx9 ? "global_load_dwordx2" : "global_load_b64";
  const std::string store8 = gfx9 ? "global_store_dwordx2" : "global_store_b64";
  const std::string path = TempPath(absl::StrCat(label, "_", processor, ".hsaco"));
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
      for (int head_dim : {128, 80}) {
        RopeConfig config;
        config.head_dim = head_dim;
        config.dtype = dtype;
        config.style = style;
        auto spec = RopeKernelSpec(config, RopeKernel::kPositionEmbeddings, target);
        EXPECT_TRUE(spec.ok()) << spec.status();
        if (!spec.ok()) return report;
        auto code = compiler.Compile({spec->source, spec->kernel, spec->defines, target});
        EXPECT_TRUE(code.ok()) << label << " " << target << ": " << code.status();
        if (!code.ok()) return report;
        std::ofstream(path, std::ios::binary) << *code;
        const std::string what =
            absl::StrCat(DTypeName(dtype), " ", StyleName(style), " head_dim ", head_dim);

        const ShellRun disassembled = RunShell(absl::StrCat(
            tools.objdump, " -d --no-show-raw-insn --mcpu=", processor, " ", path, " 2>&1"));
        const std::string& listing = disassembled.output;
        EXPECT_EQ(disassembled.exit_code, 0) << listing;
        const ShellRun read_notes = RunShell(absl::StrCat(tools.readelf, " --notes ", path, " 2>&1"));
        const std::string& notes = read_notes.output;
        EXPECT_EQ(read_notes.exit_code, 0) << notes;

        for (const char* kernel : {"rope_qk_apply_aligned", "rope_qk_apply_unaligned"}) {
          const std::string text = KernelText(listing, kernel);
          EXPECT_FALSE(text.empty())
              << label << " " << target << " " << what << ": " << kernel << " not in the listing";
          const bool aligned = !absl::StrContains(kernel, "unaligned");
          // The vector path's access width (16 bytes, or 8 for NeoX with 16-bit
          // elements: rope/kernel_specs.cc) in one instruction each way.
          const int access_bytes = VectorWidth(config) * DTypeSize(dtype);
          if (aligned && (access_bytes == 16 || access_bytes == 8)) {
            EXPECT_TRUE(absl::StrContains(text, access_bytes == 16 ? load16 : load8))
                << label << " " << target << " " << what << ": " << kernel;
            EXPECT_TRUE(absl::StrContains(text, access_bytes == 16 ? store16 : store8))
                << label << " " << target << " " << what << ": " << kernel;
          }
          EXPECT_FALSE(absl::StrContains(text, "scratch_"))
              << label << " " << target << " " << what << ": " << kernel;
          EXPECT_EQ(MetadataValue(notes, kernel, "private_segment_fixed_size"), "0")
              << label << " " << target << " " << what << ": " << kernel;
          EXPECT_EQ(MetadataValue(notes, kernel, "wavefront_size"), std::to_string(wavefront_size))
              << label << " " << target << " " << what << ": " << kernel;
          KernelIsa isa{InstructionCount(text), MetadataValue(notes, kernel, "vgpr_count"),
                        MetadataValue(notes, kernel, "sgpr_count")};
          EXPECT_FALSE(isa.vgprs.empty())
              << label << " " << target << " " << what << ": " << kernel;
          std::printf("%-6s %-8s %-26s %-24s VGPRs %3s SGPRs %3s instructions %4d\n", label,
                      processor.c_str(), what.c_str(), kernel, isa.vgprs.c_str(), isa.sgprs.c_str(),
                      isa.instructions);
          report[absl::StrCat(what, " ", kernel)] = isa;
        }
      }
    }
  }
  return report;
}

// MI300 (gfx942, wave64), RDNA3 (gfx1100) and RDNA4 (gfx1201), both wave32 by default, through
// clang 19; none has run on an AMD GPU here.
TEST(AmdIsaTest, ClangNewerTargetsUse16ByteAccessesAndNoScratch) {
  Compiler& clang = AmdClangCompiler();
  if (!clang.Identity().ok()) GTEST_SKIP() << "no clang 19 here: " << clang.Identity().status();
  if (*ROPE_JIT_CLANG_LLVM_OBJDUMP == '\0')
    GTEST_SKIP() << "no llvm-objdump next to clang (install llvm-19)";
  const Tools tools = ToolsFor(ROPE_JIT_CLANG_LLVM_OBJDUMP);
  for (auto [target, wavefront_size] :
       {std::pair<const char*, int>{"gfx942", 64}, {"gfx1100", 32}, {"gfx1201", 32}}) {
    SCOPED_TRACE(target);
    CheckIsa(clang, "clang", target, tools, wavefront_size);
  }
}

// gfx90a through hipRTC, and through clang 19 when it is installed: where both support the
// target they need not agree (LLVM 15 vs 19), but both must pass the checks; their numbers
// are printed side by side.
TEST(AmdIsaTest, Gfx90aThroughHiprtcAndClang) {
  Compiler& hiprtc = CompilerForVendor(Vendor::kAmd);
  if (!hiprtc.Identity().ok()) GTEST_SKIP() << "no hipRTC here: " << hiprtc.Identity().status();
  if (*ROPE_JIT_LLVM_OBJDUMP == '\0')
    GTEST_SKIP() << "no llvm-objdump of the ROCm LLVM (install llvm-15)";
  const std::map<std::string, KernelIsa> by_hiprtc =
      CheckIsa(hiprtc, "hiprtc", "gfx90a", ToolsFor(ROPE_JIT_LLVM_OBJDUMP), 64);
  Compiler& clang = AmdClangCompiler();
  if (!clang.Identity().ok() || *ROPE_JIT_CLANG_LLVM_OBJDUMP == '\0') {
    GTEST_SKIP() << "hipRTC checked; no clang 19 (or its llvm-objdump) to compare with";
  }
  const std::map<std::string, KernelIsa> by_clang =
      CheckIsa(clang, "clang", "gfx90a", ToolsFor(ROPE_JIT_CLANG_LLVM_OBJDUMP), 64);
  ASSERT_EQ(by_hiprtc.size(), by_clang.size());
  std::printf("\ngfx90a %-51s %20s  %20s\n", "", "hipRTC (LLVM 15)", "clang 19");
  std::printf("gfx90a %-51s %9s %10s  %9s %10s\n", "", "VGPRs", "instrs", "VGPRs", "instrs");
  for (const auto& [name, isa] : by_hiprtc) {
    const KernelIsa& other = by_clang.at(name);
    std::printf("gfx90a %-51s %9s %10d  %9s %10d\n", name.c_str(), isa.vgprs.c_str(),
                isa.instructions, other.vgprs.c_str(), other.instructions);
  }
}

}  // namespace
}  // namespace rope_jit
