// jit/elf_sections.h on hand-made inputs, well-formed and not: the section table the AOT
// parity compare reads, and the bounds check the runtimes make before a driver reads a code
// object (tests/compiler_test.cc also runs it over real cubins and HSACOs).
#include "jit/elf_sections.h"

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace rope_jit {
namespace {

void Put(std::string& bytes, size_t at, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
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
    Put(header, 0, name, 4);
    Put(header, 4, type, 4);
    Put(header, 8, flags, 8);
    Put(header, 0x18, offset, 8);
    Put(header, 0x20, size, 8);
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

// A section-name table of type SHT_NOBITS has no bytes in the file, so its offset was never
// bounds-checked: it is refused, not read (a crafted code object must not throw).
TEST(ElfSectionsTest, NameTableWithoutContentsIsRefused) {
  std::string elf = Elf(kElfMachineAmdgpu);
  const size_t table_at = elf.size() - 3 * 64;  // the section headers end the file
  const size_t names_header = table_at + 64;    // section 1: .shstrtab
  Put(elf, names_header + 4, 8, 4);             // sh_type = SHT_NOBITS
  Put(elf, names_header + 0x18, uint64_t{1} << 40, 8);  // sh_offset far past the end
  EXPECT_EQ(ParseElf(elf).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(CheckElfBounds(elf).ok());
}

// The program header table (e_phoff, e_phentsize, e_phnum) is checked too: a driver walks
// it to load the segments.
TEST(ElfSectionsTest, BoundsCheckCoversProgramHeaders) {
  std::string elf = Elf(kElfMachineCuda);
  EXPECT_TRUE(CheckElfBounds(elf).ok());  // no program headers
  const uint64_t table_at = elf.size();
  elf += std::string(56, '\0');  // one program header entry
  Put(elf, 0x20, table_at, 8);
  Put(elf, 0x36, 56, 2);
  Put(elf, 0x38, 1, 2);
  EXPECT_TRUE(CheckElfBounds(elf).ok());

  std::string past_end = elf;
  Put(past_end, 0x38, 2, 2);  // two entries, room for one
  absl::Status status = CheckElfBounds(past_end);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "program headers")) << status;

  std::string too_small = elf;
  Put(too_small, 0x36, 8, 2);  // entries smaller than Elf64_Phdr
  EXPECT_FALSE(CheckElfBounds(too_small).ok());

  for (size_t cut = 0; cut < elf.size(); ++cut) {
    EXPECT_FALSE(CheckElfBounds(elf.substr(0, cut)).ok()) << cut;
  }
}

}  // namespace
}  // namespace rope_jit
