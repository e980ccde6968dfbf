#include "jit/dynamic_library.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

TEST(DynamicLibraryTest, MissingLibraryIsUnavailableNamingEveryNameTried) {
  LibrarySearch search;
  search.names = {"librope_jit_missing.so.2", "librope_jit_missing.so.1"};
  search.directories = {"/nonexistent/rope_jit"};
  auto library = DynamicLibrary::Open(search);
  ASSERT_EQ(library.status().code(), absl::StatusCode::kUnavailable) << library.status();
  const std::string message(library.status().message());
  for (const char* tried :
       {"librope_jit_missing.so.2", "librope_jit_missing.so.1",
        "/nonexistent/rope_jit/librope_jit_missing.so.2",
        "/nonexistent/rope_jit/librope_jit_missing.so.1"}) {
    EXPECT_TRUE(absl::StrContains(message, tried)) << tried << " not in: " << message;
  }
  // dlerror's own words are kept.
  EXPECT_TRUE(absl::StrContains(message, "cannot open shared object file")) << message;
}

TEST(DynamicLibraryTest, ReusesALibraryAlreadyInTheProcess) {
  LibrarySearch search;
  search.names = {"librope_jit_missing.so.1", "libc.so.6"};
  auto libc = DynamicLibrary::Open(search);
  ASSERT_TRUE(libc.ok()) << libc.status();
  EXPECT_TRUE(libc->reused());
  EXPECT_EQ(libc->name(), "libc.so.6");
  EXPECT_TRUE(absl::StrContains(libc->path(), "libc.so.6")) << libc->path();
}

TEST(DynamicLibraryTest, SkipsALibraryWithoutTheRequiredSymbol) {
  LibrarySearch search;
  search.names = {"libc.so.6"};
  search.required_symbol = "rope_jit_no_such_symbol";
  auto library = DynamicLibrary::Open(search);
  ASSERT_EQ(library.status().code(), absl::StatusCode::kUnavailable) << library.status();
  EXPECT_TRUE(absl::StrContains(library.status().message(), "does not export"))
      << library.status();
}

TEST(DynamicLibraryTest, BindsSymbolsAndNamesMissingOnes) {
  LibrarySearch search;
  search.names = {"libc.so.6"};
  auto libc = DynamicLibrary::Open(search);
  ASSERT_TRUE(libc.ok()) << libc.status();
  size_t (*string_length)(const char*) = nullptr;
  ASSERT_TRUE(libc->Bind("strlen", &string_length).ok());
  EXPECT_EQ(string_length("rope"), 4u);

  void (*missing)() = nullptr;
  absl::Status status = libc->Bind("rope_jit_no_such_symbol", &missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(status.message(), "rope_jit_no_such_symbol")) << status;
  EXPECT_EQ(missing, nullptr);
}

TEST(DynamicLibraryTest, IdentityOfLibcIsAStableBuildId) {
  LibrarySearch search;
  search.names = {"libc.so.6"};
  auto libc = DynamicLibrary::Open(search);
  ASSERT_TRUE(libc.ok()) << libc.status();
  auto first = libc->ContentIdentity();
  auto second = libc->ContentIdentity();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*first, *second);
  // Debian and Ubuntu build every library with a GNU build id (20 bytes, 40 hex digits).
  EXPECT_TRUE(absl::StartsWith(*first, "gnu-build-id:")) << *first;
  EXPECT_GT(first->size(), std::string("gnu-build-id:").size() + 16) << *first;

  // The same object found through one of its functions.
  auto by_address = LoadedObjectIdentity(libc->FindSymbol("printf"));
  ASSERT_TRUE(by_address.ok()) << by_address.status();
  EXPECT_EQ(*by_address, *first);
}

TEST(DynamicLibraryTest, DifferentLibrariesHaveDifferentIdentities) {
  LibrarySearch libc_search, libstdcxx_search;
  libc_search.names = {"libc.so.6"};
  libstdcxx_search.names = {"libstdc++.so.6"};
  auto libc = DynamicLibrary::Open(libc_search);
  auto libstdcxx = DynamicLibrary::Open(libstdcxx_search);
  ASSERT_TRUE(libc.ok()) << libc.status();
  ASSERT_TRUE(libstdcxx.ok()) << libstdcxx.status();
  auto libc_id = libc->ContentIdentity();
  auto libstdcxx_id = libstdcxx->ContentIdentity();
  ASSERT_TRUE(libc_id.ok() && libstdcxx_id.ok());
  EXPECT_FALSE(libstdcxx_id->empty());
  EXPECT_NE(*libc_id, *libstdcxx_id);
}

TEST(DynamicLibraryTest, ListsNeededLibraries) {
  LibrarySearch search;
  search.names = {"libstdc++.so.6"};
  auto libstdcxx = DynamicLibrary::Open(search);
  ASSERT_TRUE(libstdcxx.ok()) << libstdcxx.status();
  bool needs_libc = false;
  for (const std::string& needed : libstdcxx->NeededLibraries()) {
    needs_libc = needs_libc || needed == "libc.so.6";
  }
  EXPECT_TRUE(needs_libc);
}

TEST(DynamicLibraryTest, FallsBackToAContentHashWithoutBuildId) {
  const char* runfiles = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (runfiles == nullptr || workspace == nullptr) {
    GTEST_SKIP() << "needs the test library from Bazel's runfiles (run under bazel test)";
  }
  const std::string path =
      absl::StrCat(runfiles, "/", workspace, "/tests/librope_jit_no_build_id_for_test.so");
  LibrarySearch search;
  search.names = {path};
  auto library = DynamicLibrary::Open(search);
  ASSERT_TRUE(library.ok()) << library.status();
  auto identity = library->ContentIdentity();
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_TRUE(absl::StartsWith(*identity, "xxh3-128:")) << *identity;
  EXPECT_EQ(identity->size(), std::string("xxh3-128:").size() + 32) << *identity;
  auto file_hash = FileContentHash(library->path());
  ASSERT_TRUE(file_hash.ok()) << file_hash.status();
  EXPECT_EQ(*identity, *file_hash);
  EXPECT_EQ(*library->ContentIdentity(), *identity);
}

TEST(DynamicLibraryTest, FileContentHashFollowsTheBytes) {
  const std::string a = TempPath("a.bin"), b = TempPath("b.bin"), c = TempPath("c.bin");
  ASSERT_TRUE(WriteFile(a, "rotary position embedding"));
  ASSERT_TRUE(WriteFile(b, "rotary position embedding"));
  ASSERT_TRUE(WriteFile(c, "rotary position embeddinG"));
  auto hash_a = FileContentHash(a), hash_b = FileContentHash(b), hash_c = FileContentHash(c);
  ASSERT_TRUE(hash_a.ok() && hash_b.ok() && hash_c.ok());
  EXPECT_EQ(*hash_a, *hash_b);
  EXPECT_NE(*hash_a, *hash_c);

  EXPECT_EQ(FileContentHash(TempPath("does-not-exist")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DynamicLibraryTest, AddressOutsideAnyObjectIsNotFound) {
  int on_the_stack = 0;
  EXPECT_EQ(LoadedObjectIdentity(&on_the_stack).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rope_jit
