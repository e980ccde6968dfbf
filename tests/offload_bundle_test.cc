// aot/offload_bundle.h and jit/elf_sections.h on hand-made inputs, well-formed and not.
#include "aot/offload_bundle.h"

#include <cstdint>
#include <string>
#include <vector>

#include "jit/elf_sections.h"
#include "gtest/gtest.h"

namespace rope_jit {
namespace {

void PutU64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// A bundle as clang-offload-bundler lays it out: header, then payloads.
std::string Bundle(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string header = "__CLANG_OFFLOAD_BUNDLE__";
  PutU64(header, entries.size());
  size_t header_size = header.size();
  for (const auto& [triple, payload] : entries) header_size += 24 + triple.size();
  std::string payloads;
  for (const auto& [triple, payload] : entries) {
    PutU64(header, header_size + payloads.size());
    PutU64(header, payload.size());
    PutU64(header, triple.size());
    header += triple;
    payloads += payload;
  }
  return header + payloads;
}

TEST(OffloadBundleTest, FindsTheCodeObjectOfATarget) {
  const std::string bundle = Bundle({{"host-x86_64-unknown-linux", ""},
                                     {"hipv4-amdgcn-amd-amdhsa--gfx90a",
                                      "\x7f"
                                      "ELF90a"},
                                     {"hipv4-amdgcn-amd-amdhsa--gfx1030",
                                      "\x7f"
                                      "ELF1030"}});
  absl::StatusOr<std::vector<OffloadBundleEntry>> entries = ParseOffloadBundle(bundle);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(entries->size(), 3u);
  EXPECT_EQ(*AmdCodeObjectFromBundle(bundle, "gfx1030"),
            "\x7f"
            "ELF1030");
  EXPECT_EQ(*AmdCodeObjectFromBundle(bundle, "gfx90a"),
            "\x7f"
            "ELF90a");
  absl::StatusOr<absl::string_view> missing = AmdCodeObjectFromBundle(bundle, "gfx908");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("gfx1030"), absl::string_view::npos);
}

TEST(OffloadBundleTest, RejectsDamageInsteadOfReadingPastTheEnd) {
  const std::string good = Bundle({{"hipv4-amdgcn-amd-amdhsa--gfx90a", "payload"}});
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(AmdCodeObjectFromBundle(good.substr(0, cut), "gfx90a").ok()) << cut;
  }
  std::string huge_count = "__CLANG_OFFLOAD_BUNDLE__";
  PutU64(huge_count, ~uint64_t{0});
  EXPECT_EQ(ParseOffloadBundle(huge_count).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseOffloadBundle("CCOB....").status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ParseOffloadBundle("\x7f"
                               "ELF")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// A minimal ELF64: header, two sections (null, .shstrtab) and one named ".text.k".
std::string Elf(uint16_t machine) {
  const std::string names = std::string("\0.shstrtab\0.text.k\0", 19);
  const std::string code = "CODE";
  std::string elf(64, '\0');
  elf.replace(0, 6,
              "\x7f"
              "ELF\x02\x01");
  elf[0x12] = static_cast<char>(machine & 0xff);
  elf[0x13] = static_cast<char>(machine >> 8);
  const uint64_t names_at = 64, code_at = names_at + names.size(), table_at = code_at + code.size();
  for (int i = 0; i < 8; ++i) elf[0x28 + i] = static_cast<char>((table_at >> (8 * i)) & 0xff);
  elf[0x3a] = 64;  // e_shentsize
  elf[0x3c] = 3;   // e_shnum
  elf[0x3e] = 1;   // e_shstrndx
  elf += names + code;
  auto section = [](uint32_t name, uint32_t type, uint64_t flags, uint64_t offset, uint64_t size) {
    std::string header(64, '\0');
    auto put = [&](size_t at, uint64_t value, int bytes) {
      for (int i = 0; i < bytes; ++i) header[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
    };
    put(0, name, 4);
    put(4, type, 4);
    put(8, flags, 8);
    put(0x18, offset, 8);
    put(0x20, size, 8);
    return header;
  };
  elf += section(0, 0, 0, 0, 0);
  elf += section(1, 3, 0, names_at, names.size());
  elf += section(11, 1, 6, code_at, code.size());
  return elf;
}

TEST(ElfSectionsTest, ReadsTheSectionTable) {
  const std::string bytes = Elf(kElfMachineCuda);  // the ElfFile's views point into it
  absl::StatusOr<ElfFile> elf = ParseElf(bytes);
  ASSERT_TRUE(elf.ok()) << elf.status();
  EXPECT_EQ(elf->machine, kElfMachineCuda);
  ASSERT_EQ(elf->sections.size(), 3u);
  const ElfSection* text = elf->Find(".text.k");
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(text->data, "CODE");
  EXPECT_EQ(text->flags & 4, 4u);
  EXPECT_EQ(elf->Find(".text.other"), nullptr);
}

TEST(ElfSectionsTest, RejectsDamageInsteadOfReadingPastTheEnd) {
  const std::string good = Elf(kElfMachineAmdgpu);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(ParseElf(good.substr(0, cut)).ok()) << cut;
  }
  std::string big_endian = good;
  big_endian[5] = 2;
  EXPECT_FALSE(ParseElf(big_endian).ok());
}

}  // namespace
}  // namespace rope_jit
