// The section table of a 64-bit little-endian ELF file: enough to bounds-check a GPU code
// object before a driver reads it, and to compare the executable code of two (cubins,
// HSACOs) without vendor tools.
//
//   ASSIGN_OR_RETURN(ElfFile cubin, ParseElf(code_object));
//   for (const ElfSection& section : cubin.sections)
//     if (absl::StartsWith(section.name, ".text.")) ...   // one per kernel on NVIDIA
#ifndef ROPE_JIT_JIT_ELF_SECTIONS_H_
#define ROPE_JIT_JIT_ELF_SECTIONS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

inline constexpr uint16_t kElfMachineCuda = 190;    // EM_CUDA: cubins
inline constexpr uint16_t kElfMachineAmdgpu = 224;  // EM_AMDGPU: HSACOs

struct ElfSection {
  absl::string_view name;
  uint32_t type = 0;       // SHT_*
  uint64_t flags = 0;      // SHF_*; SHF_EXECINSTR (4) marks code
  absl::string_view data;  // empty for SHT_NOBITS
};

struct ElfFile {
  uint16_t machine = 0;              // e_machine
  std::vector<ElfSection> sections;  // in section-table order; views into the input

  // The section called `name`, or nullptr.
  const ElfSection* Find(absl::string_view name) const;
};

// InvalidArgument for anything that is not a well-formed ELF64 little-endian file; every
// offset is checked against the input's length.
absl::StatusOr<ElfFile> ParseElf(absl::string_view bytes);

// What a runtime checks before a driver parses a code object (drivers trust its offsets):
// ParseElf's checks, and the program header table inside the file too. InvalidArgument
// saying what points past the end.
absl::Status CheckElfBounds(absl::string_view bytes);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_ELF_SECTIONS_H_
