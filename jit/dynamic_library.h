// A shared library loaded at run time, and the identity of a loaded library by content.
//
//   LibrarySearch search;
//   search.names = {"libnvrtc.so.13", "libnvrtc.so.12"};
//   search.directories = {"/usr/local/cuda/lib64"};
//   ASSIGN_OR_RETURN(DynamicLibrary nvrtc, DynamicLibrary::Open(search));
//   nvrtcResult (*version)(int*, int*);
//   RETURN_IF_ERROR(nvrtc.Bind("nvrtcVersion", &version));
//   ASSIGN_OR_RETURN(std::string id, nvrtc.ContentIdentity());  // "gnu-build-id:65be0d..."
//
// Vendor libraries are opened with this instead of being linked, so that one build runs on
// machines with or without them: a missing library is Unavailable, never a link error.
// The object is immutable after Open and safe to use from any thread.
#ifndef ROPE_JIT_JIT_DYNAMIC_LIBRARY_H_
#define ROPE_JIT_JIT_DYNAMIC_LIBRARY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rope_jit {

struct LibrarySearch {
  // Sonames in order of preference. A library that is already in the process under any of
  // these names is reused before anything is loaded, so that we share the runtime that the
  // application (PyTorch, a framework) already initialized.
  std::vector<std::string> names;
  // Tried, with every name, after the dynamic loader's own search failed.
  std::vector<std::string> directories;
  // When set, a library that loads but does not export it is skipped (e.g. hipRTC lives in
  // libamdhip64.so.5 on ROCm 5.2 but not in libamdhip64.so.6).
  std::string required_symbol;
};

class DynamicLibrary final {
 public:
  // Unavailable, naming every file tried and what dlerror said for it, when none loads.
  static absl::StatusOr<DynamicLibrary> Open(const LibrarySearch& search);

  DynamicLibrary(DynamicLibrary&& other) noexcept;
  DynamicLibrary& operator=(DynamicLibrary&& other) noexcept;
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;
  // Drops this reference (dlclose). The vendor backends keep theirs for the whole process.
  ~DynamicLibrary();

  // The entry of LibrarySearch::names (or directory + name) that loaded.
  const std::string& name() const { return name_; }
  // The file the dynamic loader mapped.
  const std::string& path() const { return path_; }
  // True when the library was already loaded in the process before Open.
  bool reused() const { return reused_; }

  // The address of `symbol`, or nullptr.
  void* FindSymbol(const char* symbol) const;

  // Resolves `symbol` into a function pointer; Unavailable, naming the library, the symbol
  // and dlerror, when it is missing (a library too old for us is as good as absent).
  template <typename FunctionPointer>
  absl::Status Bind(const char* symbol, FunctionPointer* slot) const {
    void* address = nullptr;
    absl::Status status = Resolve(symbol, &address);
    if (status.ok()) *slot = reinterpret_cast<FunctionPointer>(address);
    return status;
  }

  // The sonames this library names as DT_NEEDED, in order.
  std::vector<std::string> NeededLibraries() const;

  // See LoadedObjectIdentity.
  absl::StatusOr<std::string> ContentIdentity() const;

 private:
  DynamicLibrary(void* handle, std::string name, std::string path, bool reused);
  absl::Status Resolve(const char* symbol, void** address) const;

  void* handle_ = nullptr;
  std::string name_;
  std::string path_;
  bool reused_ = false;
};

// The identity, by content, of the loaded object (executable or shared library) whose
// mapping contains `address`: "gnu-build-id:<hex>" from its ELF NT_GNU_BUILD_ID note, or
// "xxh3-128:<hex>" of its file's bytes when it has no build id. NotFound when no loaded
// object contains `address`.
absl::StatusOr<std::string> LoadedObjectIdentity(const void* address);

// "xxh3-128:<32 hex digits>" of the file's bytes. NotFound / Internal on I/O errors.
absl::StatusOr<std::string> FileContentHash(const std::string& path);

}  // namespace rope_jit

#endif  // ROPE_JIT_JIT_DYNAMIC_LIBRARY_H_
