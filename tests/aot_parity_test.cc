// AOT/JIT parity without a GPU: every code object nvcc / hipcc / clang built at build time
// (//aot:rope_aot_baked) against what NVRTC / hipRTC / the clang JIT compiler compile now for
// the same spec.
//
//   NVIDIA  every executable section (.text.<kernel>) byte for byte; a difference names the
//           section, the byte offset and the SASS instruction index (16 bytes each).
//   AMD     the instruction stream of every kernel as llvm-objdump (the LLVM hipcc uses)
//           disassembles it, ignoring addresses and encodings; a difference names the
//           kernel, the instruction index and both instructions. Without llvm-objdump, the
//           .text bytes. Also the kernel descriptors (.rodata) byte for byte. clang-built
//           targets (gfx942, gfx1100, gfx1201) are read with clang's own llvm-objdump.
//
// Also: each baked entry is filed under the key the service computes for its spec, and the
// HSACO aot_tool took out of hipcc's offload bundle is what clang-offload-bundler takes out.
//
// An SDK absent at build time, or a JIT compiler absent now, skips.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "aot/aot_config.h"
#include "jit/elf_sections.h"
#include "aot/offload_bundle.h"
#include "aot/rope_aot_baked.h"
#include "gtest/gtest.h"
#include "jit/backends.h"
#include "jit/baked_tier.h"
#include "rope/kernel_specs.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"
#include "tool_paths.h"

namespace rope_jit {
namespace {

constexpr uint64_t kShfExecInstr = 4;

std::string EntryName(const BakedEntry& entry) {
  return absl::StrCat(entry.target, " ", entry.kernel, " ", entry.config);
}

KernelSpec SpecOf(const BakedEntry& entry) {
  absl::StatusOr<RopeConfig> config = ParseAotConfig(entry.config);
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<KernelSpec> spec =
      RopeKernelSpec(*config, *ParseRopeKernel(entry.kernel), entry.target);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// "" when equal, else where the first byte differs and in which `unit` (of `unit_bytes`).
std::string FirstByteDifference(absl::string_view aot, absl::string_view jit, int unit_bytes,
                                absl::string_view unit) {
  const size_t common = std::min(aot.size(), jit.size());
  for (size_t i = 0; i < common; ++i) {
    if (aot[i] != jit[i]) {
      return absl::StrFormat("first difference at byte 0x%x (%s %d): AOT %02x, JIT %02x", i, unit,
                             i / unit_bytes, static_cast<uint8_t>(aot[i]),
                             static_cast<uint8_t>(jit[i]));
    }
  }
  if (aot.size() != jit.size()) {
    return absl::StrCat("sizes differ: AOT ", aot.size(), " bytes, JIT ", jit.size());
  }
  return "";
}

// NVIDIA: the executable sections, by name.
std::string CompareCubins(absl::string_view aot, absl::string_view jit) {
  absl::StatusOr<ElfFile> a = ParseElf(aot), j = ParseElf(jit);
  if (!a.ok() || !j.ok())
    return absl::StrCat("not ELF: ", a.status().ToString(), j.status().ToString());
  if (a->machine != kElfMachineCuda || j->machine != kElfMachineCuda) return "not a cubin";
  std::string report;
  int executable = 0;
  for (const ElfSection& section : j->sections) {
    if ((section.flags & kShfExecInstr) == 0) continue;
    ++executable;
    const ElfSection* other = a->Find(section.name);
    if (other == nullptr) {
      absl::StrAppend(&report, section.name, ": missing from the AOT cubin\n");
      continue;
    }
    std::string difference = FirstByteDifference(other->data, section.data, 16, "SASS instruction");
    if (!difference.empty()) absl::StrAppend(&report, section.name, ": ", difference, "\n");
  }
  for (const ElfSection& section : a->sections) {
    if ((section.flags & kShfExecInstr) != 0 && j->Find(section.name) == nullptr) {
      absl::StrAppend(&report, section.name, ": only in the AOT cubin\n");
    }
  }
  if (executable == 0) absl::StrAppend(&report, "the JIT cubin has no executable section\n");
  return report;
}

// Kernel name -> its instructions, without addresses, encodings or comments.
using Disassembly = std::map<std::string, std::vector<std::string>>;

absl::StatusOr<Disassembly> Disassemble(absl::string_view hsaco, absl::string_view processor,
                                        const std::string& name, const std::string& objdump) {
  const std::string path = TempPath(name + ".hsaco");
  WriteFile(path, hsaco);
  const ShellRun run = RunShell(
      absl::StrCat(objdump, " -d --no-show-raw-insn --mcpu=", processor, " ", path, " 2>&1"));
  const std::string& output = run.output;
  std::remove(path.c_str());
  if (run.exit_code != 0) return absl::InternalError(absl::StrCat("llvm-objdump failed: ", output));
  Disassembly disassembly;
  std::vector<std::string>* current = nullptr;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    // "0000000000001800 <rope_apply_aligned>:" opens a kernel.
    if (!line.empty() && absl::ascii_isxdigit(line[0]) && absl::EndsWith(line, ">:")) {
      const size_t open = line.find('<');
      current = &disassembly[std::string(line.substr(open + 1, line.size() - open - 3))];
      continue;
    }
    if (current == nullptr || line.empty() || !absl::ascii_isspace(line[0])) continue;
    absl::string_view instruction = line.substr(0, line.find("//"));
    instruction = absl::StripAsciiWhitespace(instruction);
    if (!instruction.empty()) current->emplace_back(instruction);
  }
  return disassembly;
}

std::string CompareInstructions(const Disassembly& aot, const Disassembly& jit) {
  std::string report;
  size_t instructions = 0;
  for (const auto& [kernel, jit_code] : jit) {
    instructions += jit_code.size();
    auto it = aot.find(kernel);
    if (it == aot.end()) {
      absl::StrAppend(&report, kernel, ": missing from the AOT code object\n");
      continue;
    }
    const std::vector<std::string>& aot_code = it->second;
    for (size_t i = 0; i < std::max(aot_code.size(), jit_code.size()); ++i) {
      const std::string a = i < aot_code.size() ? aot_code[i] : "(end)";
      const std::string j = i < jit_code.size() ? jit_code[i] : "(end)";
      if (a != j) {
        absl::StrAppend(&report, kernel, ": first difference at instruction ", i, " of ",
                        jit_code.size(), ": AOT `", a, "`, JIT `", j, "`\n");
        break;
      }
    }
  }
  for (const auto& [kernel, code] : aot) {
    if (jit.count(kernel) == 0) absl::StrAppend(&report, kernel, ": only in the AOT code object\n");
  }
  if (instructions == 0) absl::StrAppend(&report, "llvm-objdump found no instructions\n");
  return report;
}

// AMD: instructions per kernel (or .text bytes), then the kernel descriptors.
std::string CompareHsacos(absl::string_view aot, absl::string_view jit, absl::string_view target,
                          const std::string& objdump) {
  absl::StatusOr<ElfFile> a = ParseElf(aot), j = ParseElf(jit);
  if (!a.ok() || !j.ok())
    return absl::StrCat("not ELF: ", a.status().ToString(), j.status().ToString());
  if (a->machine != kElfMachineAmdgpu || j->machine != kElfMachineAmdgpu) return "not an HSACO";
  std::string report;
  if (!objdump.empty()) {
    absl::StatusOr<Disassembly> aot_code = Disassemble(aot, AmdProcessor(target), "aot", objdump);
    absl::StatusOr<Disassembly> jit_code = Disassemble(jit, AmdProcessor(target), "jit", objdump);
    if (!aot_code.ok() || !jit_code.ok()) {
      return absl::StrCat(aot_code.status().ToString(), " ", jit_code.status().ToString());
    }
    report = CompareInstructions(*aot_code, *jit_code);
  } else {
    const ElfSection* aot_text = a->Find(".text");
    const ElfSection* jit_text = j->Find(".text");
    if (aot_text == nullptr || jit_text == nullptr) return "no .text section";
    std::string difference = FirstByteDifference(aot_text->data, jit_text->data, 4, "dword");
    if (!difference.empty()) report = absl::StrCat(".text: ", difference, "\n");
  }
  const ElfSection* aot_descriptors = a->Find(".rodata");
  const ElfSection* jit_descriptors = j->Find(".rodata");
  if (aot_descriptors == nullptr || jit_descriptors == nullptr) {
    absl::StrAppend(&report, "no .rodata (kernel descriptors)\n");
  } else {
    std::string difference =
        FirstByteDifference(aot_descriptors->data, jit_descriptors->data, 64, "descriptor");
    if (!difference.empty()) {
      absl::StrAppend(&report, ".rodata (kernel descriptors): ", difference, "\n");
    }
  }
  return report;
}

// One build compiler and the JIT compiler it stands for.
struct Pair {
  const char* sdk;  // as BakedSdk::compiler
  Vendor vendor;
  Compiler& (*jit)();
  const char* objdump;  // of the LLVM that the pair's compilers run ("" when absent)
  std::set<std::string> targets;  // aot/BUILD.bazel
};

Compiler& Nvrtc() { return CompilerForVendor(Vendor::kNvidia); }
Compiler& Hiprtc() { return CompilerForVendor(Vendor::kAmd); }

const Pair kPairs[] = {
    {"nvcc", Vendor::kNvidia, &Nvrtc, "", {"sm_80", "sm_90"}},
    {"hipcc", Vendor::kAmd, &Hiprtc, ROPE_JIT_LLVM_OBJDUMP, {"gfx1030", "gfx90a"}},
    {"clang", Vendor::kAmd, &AmdClangCompiler, ROPE_JIT_CLANG_LLVM_OBJDUMP,
     {"gfx942", "gfx1100", "gfx1201"}},
};

// Whether `entry` is filed under the key of what `jit` compiles (so was built by its pair).
bool BuiltFor(const BakedEntry& entry, const Compiler& jit) {
  if (*VendorOfTarget(entry.target) != jit.vendor()) return false;
  absl::StatusOr<CacheKey> key = BakedCacheKey(SpecOf(entry), jit);
  return key.ok() && key->hex == entry.key_hex && key->text == entry.key_text;
}

class AotParityTest : public ::testing::TestWithParam<const Pair*> {};

TEST_P(AotParityTest, BakedCodeIsWhatTheJitCompiles) {
  const Pair& pair = *GetParam();
  const StaticBakedTier& tier = RopeAotBakedTier();
  if (!tier.HasCompiler(pair.sdk)) {
    GTEST_SKIP() << "no " << pair.sdk << " when //aot:rope_aot_baked was built";
  }
  Compiler& jit = pair.jit();
  if (!jit.Identity().ok())
    GTEST_SKIP() << "no JIT compiler to compare with: " << jit.Identity().status();
  if (pair.vendor == Vendor::kAmd && *pair.objdump == '\0') {
    std::cout << "no llvm-objdump: comparing .text bytes instead of instructions\n";
  }

  std::set<std::string> targets;
  int compared = 0;
  for (const BakedEntry& entry : tier.entries()) {
    if (*VendorOfTarget(entry.target) != pair.vendor) continue;
    SCOPED_TRACE(EntryName(entry));
    const KernelSpec spec = SpecOf(entry);
    // Every entry of the vendor is filed under exactly one JIT compiler's key, and the
    // service finds it.
    int owners = 0;
    for (const Pair& other : kPairs) {
      if (other.vendor == pair.vendor && BuiltFor(entry, other.jit())) ++owners;
    }
    EXPECT_EQ(owners, 1) << "the service would not find this entry, or finds it twice";
    EXPECT_EQ(FindBaked(tier, spec), &entry);
    if (!BuiltFor(entry, jit)) continue;

    absl::StatusOr<std::string> jit_code =
        jit.Compile({spec.source, spec.kernel, spec.defines, spec.target});
    ASSERT_TRUE(jit_code.ok()) << jit_code.status();
    const std::string difference =
        pair.vendor == Vendor::kNvidia
            ? CompareCubins(entry.code_object, *jit_code)
            : CompareHsacos(entry.code_object, *jit_code, entry.target, pair.objdump);
    EXPECT_EQ(difference, "") << EntryName(entry) << ": AOT and JIT code differ:\n" << difference;
    targets.insert(std::string(entry.target));
    ++compared;
  }
  EXPECT_EQ(targets, pair.targets);
  // targets x 3 kernels x 8 configs (aot/BUILD.bazel).
  EXPECT_EQ(compared, static_cast<int>(pair.targets.size()) * 3 * 8);
  std::cout << compared << " " << pair.sdk << " code objects match the JIT's\n";
}

INSTANTIATE_TEST_SUITE_P(Compilers, AotParityTest,
                         ::testing::Values(&kPairs[0], &kPairs[1], &kPairs[2]),
                         [](const ::testing::TestParamInfo<const Pair*>& info) {
                           return std::string(info.param->sdk);
                         });

// The bundle files as aot.bzl names them: non-alphanumerics of target and config become '_'.
std::string BundlePath(const BakedEntry& entry) {
  auto file_name = [](absl::string_view text) {
    std::string out(text);
    for (char& c : out) {
      if (!absl::ascii_isalnum(c) && c != '_' && c != '-') c = '_';
    }
    return out;
  };
  return RunfilePath(absl::StrCat("aot/rope_aot_baked_gen/", file_name(entry.target), "/",
                                  entry.kernel, "/", file_name(entry.config), ".bundle"));
}

TEST(AotBundleTest, BakedHsacoIsWhatClangOffloadBundlerUnbundles) {
  const StaticBakedTier& tier = RopeAotBakedTier();
  if (!tier.HasCompiler("hipcc")) GTEST_SKIP() << "no hipcc when //aot:rope_aot_baked was built";
  const bool have_bundler = *ROPE_JIT_CLANG_OFFLOAD_BUNDLER != '\0';
  if (!have_bundler) std::cout << "no clang-offload-bundler: checking our own unbundling only\n";
  int checked = 0;
  for (const BakedEntry& entry : tier.entries()) {
    if (!BuiltFor(entry, Hiprtc())) continue;  // clang writes the HSACO itself, no bundle
    SCOPED_TRACE(EntryName(entry));
    const std::string path = BundlePath(entry);
    const std::string bundle = ReadFile(path);
    ASSERT_FALSE(bundle.empty()) << "cannot read " << path;
    absl::StatusOr<absl::string_view> ours = AmdCodeObjectFromBundle(bundle, entry.target);
    ASSERT_TRUE(ours.ok()) << ours.status();
    EXPECT_TRUE(*ours == entry.code_object);
    if (have_bundler) {
      const std::string out = TempPath("unbundled.hsaco");
      const ShellRun unbundled = RunShell(absl::StrCat(
          ROPE_JIT_CLANG_OFFLOAD_BUNDLER, " -type=o -unbundle -targets=hipv4-amdgcn-amd-amdhsa--",
          entry.target, " -input=", path, " -output=", out, " 2>&1"));
      ASSERT_EQ(unbundled.exit_code, 0) << unbundled.output;
      EXPECT_TRUE(ReadFile(out) == entry.code_object) << "clang-offload-bundler disagrees";
      std::remove(out.c_str());
    }
    ++checked;
  }
  // hipcc's 2 targets x 3 kernels x 8 configs (aot/BUILD.bazel), as in the parity test.
  EXPECT_EQ(checked, 2 * 3 * 8);
}

}  // namespace
}  // namespace rope_jit
