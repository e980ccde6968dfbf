#include "jit/dynamic_library.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "xxhash.h"

namespace rope_jit {
namespace {

std::string LastDlError() {
  const char* error = dlerror();
  return error != nullptr ? error : "unknown dlopen error";
}

// The file the loader mapped for `handle`, or "" when it does not say (main program).
std::string LoadedPath(void* handle) {
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr || map->l_name == nullptr) {
    return "";
  }
  return map->l_name;
}

// What dl_iterate_phdr tells about the object that contains an address. Copied out of the
// callback so that no file I/O happens while the loader lock is held.
struct ObjectInfo {
  uintptr_t address = 0;
  bool found = false;
  std::string path;
  std::string build_id;  // raw bytes
};

size_t AlignUp(size_t value, size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Scans one PT_NOTE segment for NT_GNU_BUILD_ID.
bool FindBuildId(const char* notes, size_t size, size_t alignment, std::string* build_id) {
  size_t offset = 0;
  while (offset + sizeof(ElfW(Nhdr)) <= size) {
    ElfW(Nhdr) header;
    std::memcpy(&header, notes + offset, sizeof(header));
    const size_t name_offset = offset + sizeof(header);
    const size_t desc_offset = name_offset + AlignUp(header.n_namesz, alignment);
    const size_t next = desc_offset + AlignUp(header.n_descsz, alignment);
    if (desc_offset > size || header.n_descsz > size - desc_offset) return false;
    if (header.n_type == NT_GNU_BUILD_ID && header.n_namesz == 4 &&
        std::memcmp(notes + name_offset, "GNU", 4) == 0 && header.n_descsz > 0) {
      build_id->assign(notes + desc_offset, header.n_descsz);
      return true;
    }
    if (next <= offset) return false;
    offset = next;
  }
  return false;
}

int InspectObject(struct dl_phdr_info* info, size_t, void* data) {
  ObjectInfo* object = static_cast<ObjectInfo*>(data);
  bool contains = false;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum && !contains; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD) continue;
    const uintptr_t begin = info->dlpi_addr + segment.p_vaddr;
    contains = object->address >= begin && object->address < begin + segment.p_memsz;
  }
  if (!contains) return 0;
  object->found = true;
  object->path = info->dlpi_name != nullptr ? info->dlpi_name : "";
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_NOTE) continue;
    // Notes in an 8-aligned segment are padded to 8 (the gABI), otherwise to 4.
    const size_t alignment = segment.p_align == 8 ? 8 : 4;
    const char* notes = reinterpret_cast<const char*>(info->dlpi_addr + segment.p_vaddr);
    if (FindBuildId(notes, segment.p_memsz, alignment, &object->build_id)) break;
  }
  return 1;
}

}  // namespace

DynamicLibrary::DynamicLibrary(void* handle, std::string name, std::string path, bool reused)
    : handle_(handle), name_(std::move(name)), path_(std::move(path)), reused_(reused) {}

DynamicLibrary::DynamicLibrary(DynamicLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      name_(std::move(other.name_)),
      path_(std::move(other.path_)),
      reused_(other.reused_) {}

DynamicLibrary& DynamicLibrary::operator=(DynamicLibrary&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    name_ = std::move(other.name_);
    path_ = std::move(other.path_);
    reused_ = other.reused_;
  }
  return *this;
}

DynamicLibrary::~DynamicLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

absl::StatusOr<DynamicLibrary> DynamicLibrary::Open(const LibrarySearch& search) {
  std::vector<std::string> failures;
  // Returns the library when it is acceptable; otherwise records why and drops it.
  auto accept = [&](void* handle, const std::string& name,
                    bool reused) -> absl::StatusOr<DynamicLibrary> {
    DynamicLibrary library(handle, name, LoadedPath(handle), reused);
    if (library.path_.empty()) library.path_ = name;
    if (!search.required_symbol.empty() &&
        library.FindSymbol(search.required_symbol.c_str()) == nullptr) {
      failures.push_back(absl::StrCat(library.path_, ": loaded, but it does not export ",
                                      search.required_symbol));
      return absl::NotFoundError("");
    }
    return library;
  };

  std::vector<std::string> candidates;
  for (const std::string& name : search.names) {
    dlerror();
    void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (handle == nullptr) {  // not loaded yet: not a failure
      candidates.push_back(name);
      continue;
    }
    auto library = accept(handle, name, /*reused=*/true);
    if (library.ok()) return library;
  }

  for (const std::string& directory : search.directories) {
    if (directory.empty()) continue;
    for (const std::string& name : search.names) {
      candidates.push_back(absl::StrCat(directory, "/", name));
    }
  }
  for (const std::string& candidate : candidates) {
    dlerror();
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      failures.push_back(LastDlError());
      continue;
    }
    auto library = accept(handle, candidate, /*reused=*/false);
    if (library.ok()) return library;
  }

  std::string wanted = absl::StrJoin(search.names, ", ");
  if (!search.required_symbol.empty()) {
    absl::StrAppend(&wanted, " (one exporting ", search.required_symbol, ")");
  }
  return absl::UnavailableError(absl::StrCat("cannot load ", wanted, "; tried: ",
                                             absl::StrJoin(failures, "; ")));
}

void* DynamicLibrary::FindSymbol(const char* symbol) const {
  if (handle_ == nullptr) return nullptr;
  return dlsym(handle_, symbol);
}

absl::Status DynamicLibrary::Resolve(const char* symbol, void** address) const {
  if (handle_ == nullptr) {
    return absl::FailedPreconditionError("DynamicLibrary used after move");
  }
  dlerror();
  *address = dlsym(handle_, symbol);
  if (*address == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(path_, " does not export ", symbol, " (", LastDlError(), ")"));
  }
  return absl::OkStatus();
}

std::vector<std::string> DynamicLibrary::NeededLibraries() const {
  std::vector<std::string> needed;
  struct link_map* map = nullptr;
  if (handle_ == nullptr || dlinfo(handle_, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr ||
      map->l_ld == nullptr) {
    return needed;
  }
  uintptr_t string_table = 0;
  std::vector<uintptr_t> offsets;
  for (const ElfW(Dyn)* entry = map->l_ld; entry->d_tag != DT_NULL; ++entry) {
    if (entry->d_tag == DT_STRTAB) string_table = entry->d_un.d_ptr;
    if (entry->d_tag == DT_NEEDED) offsets.push_back(entry->d_un.d_val);
  }
  if (string_table == 0) return needed;
  // glibc relocates DT_STRTAB in a writable .dynamic; a read-only one keeps the link-time
  // address, which is below the load bias.
  if (string_table < map->l_addr) string_table += map->l_addr;
  for (uintptr_t offset : offsets) {
    needed.emplace_back(reinterpret_cast<const char*>(string_table + offset));
  }
  return needed;
}

absl::StatusOr<std::string> DynamicLibrary::ContentIdentity() const {
  struct link_map* map = nullptr;
  if (handle_ == nullptr || dlinfo(handle_, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr ||
      map->l_ld == nullptr) {
    return absl::InternalError(absl::StrCat("dlinfo on ", path_, " failed: ", LastDlError()));
  }
  // The dynamic section lies inside the object's own mapping, so it identifies the object
  // without knowing any of its symbols.
  return LoadedObjectIdentity(map->l_ld);
}

absl::StatusOr<std::string> LoadedObjectIdentity(const void* address) {
  ObjectInfo object;
  object.address = reinterpret_cast<uintptr_t>(address);
  dl_iterate_phdr(InspectObject, &object);
  if (!object.found) {
    return absl::NotFoundError(
        absl::StrCat("no loaded object contains address ", absl::Hex(object.address)));
  }
  if (!object.build_id.empty()) {
    return absl::StrCat("gnu-build-id:", absl::BytesToHexString(object.build_id));
  }
  // The main program is listed with an empty name.
  return FileContentHash(object.path.empty() ? "/proc/self/exe" : object.path);
}

absl::StatusOr<std::string> FileContentHash(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    const int error = errno;
    std::string message = absl::StrCat("cannot open ", path, ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
  }
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                         &XXH3_freeState);
  if (state == nullptr || XXH3_128bits_reset(state.get()) != XXH_OK) {
    return absl::ResourceExhaustedError("cannot create an XXH3 state");
  }
  std::unique_ptr<char[]> buffer(new char[1 << 20]);
  size_t read = 0;
  while ((read = std::fread(buffer.get(), 1, 1 << 20, file.get())) > 0) {
    XXH3_128bits_update(state.get(), buffer.get(), read);
  }
  if (std::ferror(file.get())) {
    return absl::InternalError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state.get()));
  return absl::StrCat(
      "xxh3-128:", absl::BytesToHexString(absl::string_view(
                       reinterpret_cast<const char*>(canonical.digest), sizeof(canonical.digest))));
}

}  // namespace rope_jit
