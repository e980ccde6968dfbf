#include "jit/elf_sections.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rope_jit {
namespace {

constexpr uint32_t kShtNobits = 8;

template <typename T>
T Read(absl::string_view bytes, size_t offset) {  // caller checked the bounds
  T value = 0;
  for (size_t i = sizeof(T); i-- > 0;)
    value = (value << 8) | static_cast<uint8_t>(bytes[offset + i]);
  return value;
}

bool InBounds(absl::string_view bytes, uint64_t offset, uint64_t size) {
  return offset <= bytes.size() && size <= bytes.size() - offset;
}

}  // namespace

const ElfSection* ElfFile::Find(absl::string_view name) const {
  for (const ElfSection& section : sections) {
    if (section.name == name) return &section;
  }
  return nullptr;
}

absl::StatusOr<ElfFile> ParseElf(absl::string_view bytes) {
  // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
  if (bytes.size() < 64 ||
      !absl::StartsWith(bytes,
                        "\x7f"
                        "ELF") ||
      bytes[4] != 2 || bytes[5] != 1) {
    return absl::InvalidArgumentError("not a 64-bit little-endian ELF file");
  }
  ElfFile file;
  file.machine = Read<uint16_t>(bytes, 0x12);
  const uint64_t shoff = Read<uint64_t>(bytes, 0x28);
  const uint16_t shentsize = Read<uint16_t>(bytes, 0x3a);
  const uint16_t shnum = Read<uint16_t>(bytes, 0x3c);
  const uint16_t shstrndx = Read<uint16_t>(bytes, 0x3e);
  if (shnum == 0) return file;
  if (shentsize < 64 || !InBounds(bytes, shoff, uint64_t{shentsize} * shnum) || shstrndx >= shnum) {
    return absl::InvalidArgumentError(absl::StrCat("ELF section table out of bounds: ", shnum,
                                                   " entries of ", shentsize, " at ", shoff));
  }
  struct Header {
    uint32_t name, type;
    uint64_t flags, offset, size;
  };
  std::vector<Header> headers(shnum);
  for (uint16_t i = 0; i < shnum; ++i) {
    const size_t at = shoff + size_t{i} * shentsize;
    headers[i] = {Read<uint32_t>(bytes, at), Read<uint32_t>(bytes, at + 4),
                  Read<uint64_t>(bytes, at + 8), Read<uint64_t>(bytes, at + 0x18),
                  Read<uint64_t>(bytes, at + 0x20)};
    if (headers[i].type != kShtNobits && !InBounds(bytes, headers[i].offset, headers[i].size)) {
      return absl::InvalidArgumentError(absl::StrCat("ELF section ", i, " out of bounds"));
    }
  }
  // The name table's bytes must be in the file: a NOBITS one has an offset nobody checked.
  const Header& strings = headers[shstrndx];
  if (strings.type == kShtNobits) {
    return absl::InvalidArgumentError("ELF section name table has no contents (SHT_NOBITS)");
  }
  const absl::string_view names = bytes.substr(strings.offset, strings.size);
  for (const Header& header : headers) {
    if (header.name >= names.size() && !(header.name == 0 && names.empty())) {
      return absl::InvalidArgumentError("ELF section name out of bounds");
    }
    absl::string_view name = names.substr(header.name);
    name = name.substr(0, name.find('\0'));
    absl::string_view data =
        header.type == kShtNobits ? absl::string_view() : bytes.substr(header.offset, header.size);
    file.sections.push_back({name, header.type, header.flags, data});
  }
  return file;
}

absl::Status CheckElfBounds(absl::string_view bytes) {
  absl::StatusOr<ElfFile> file = ParseElf(bytes);
  if (!file.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("code object: ", file.status().message(), " (truncated?)"));
  }
  const uint64_t phoff = Read<uint64_t>(bytes, 0x20);
  const uint16_t phentsize = Read<uint16_t>(bytes, 0x36);
  const uint16_t phnum = Read<uint16_t>(bytes, 0x38);
  if (phnum > 0 && (phentsize < 56 || !InBounds(bytes, phoff, uint64_t{phentsize} * phnum))) {
    return absl::InvalidArgumentError(absl::StrCat("code object: ELF program headers (", phnum,
                                                   " of ", phentsize, " at ", phoff,
                                                   ") lie past its end (truncated?)"));
  }
  return absl::OkStatus();
}

}  // namespace rope_jit
