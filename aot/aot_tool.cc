// Build-time tool behind aot/aot.bzl. It links the same library code the kernel service
// runs (the embedded kernel sources, RopeKernelSpec, Compiler::Options, MakeCacheKey), so
// what it compiles and the key it files the result under cannot drift from the JIT path.
//
//   aot_tool compile --sdk=hipcc --compiler=/usr/bin/hipcc --kernel=rope
//                    --config=dtype=bf16,style=neox,head_dim=128 --target=gfx90a
//                    --out=X.co --key_out=X.key [--bundle_out=X.bundle]
//     Writes the embedded kernel text (exactly what the JIT compiles) to a temporary
//     file, runs the SDK's compiler (--sdk: nvcc, hipcc or clang) on it with
//     AotCompilerArgs, and writes the code object the way the JIT returns it (hipcc's
//     offload bundle unwrapped to the HSACO) and its baked key ("<hex>\n<key text>").
//
//   aot_tool pack --out_cc=F.cc --out_h=F.h --include=aot/F.h --function=Name
//                 [--sdk=hipcc:IDENTITY_FILE] [--sdk=clang:...] [--sdk=nvcc:...]
//                 [--unit=KERNEL|CONFIG|TARGET|SDK|X.co|X.key ...]
//     Writes a C++ library defining `const StaticBakedTier& Name()` over the units.
//
// Arguments may come from a file named by "@FILE", one argument per line.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "aot/aot_config.h"
#include "aot/aot_options.h"
#include "jit/elf_sections.h"
#include "aot/offload_bundle.h"
#include "jit/backends.h"
#include "jit/baked_tier.h"
#include "base/status_macros.h"
#include "rope/kernel_specs.h"

extern char** environ;

namespace rope_jit {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// "--name=value" arguments; repeated names keep every value in order.
using Flags = std::multimap<std::string, std::string>;

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  Flags flags;
  for (const std::string& arg : args) {
    if (!absl::StartsWith(arg, "--") || arg.find('=') == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("expected --name=value, got '", arg, "'"));
    }
    const size_t eq = arg.find('=');
    flags.emplace(arg.substr(2, eq - 2), arg.substr(eq + 1));
  }
  return flags;
}

absl::StatusOr<std::string> Required(const Flags& flags, const std::string& name) {
  auto it = flags.find(name);
  if (it == flags.end())
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  return it->second;
}

std::string Optional(const Flags& flags, const std::string& name) {
  auto it = flags.find(name);
  return it == flags.end() ? "" : it->second;
}

// Runs argv[0] with the tool's stdout/stderr (Bazel shows them when the action fails).
absl::Status Run(const std::vector<std::string>& argv) {
  std::vector<char*> raw;
  for (const std::string& arg : argv) raw.push_back(const_cast<char*>(arg.c_str()));
  raw.push_back(nullptr);
  pid_t pid = 0;
  if (int error = posix_spawn(&pid, raw[0], nullptr, nullptr, raw.data(), environ); error != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", std::strerror(error)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("failed (", WIFEXITED(status) ? "exit " : "signal ",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                     "): ", absl::StrJoin(argv, " ")));
  }
  return absl::OkStatus();
}

// The JIT compiler whose options a build compiler gets and whose key its code objects take.
Compiler& JitCompilerOf(AotCompiler compiler) {
  switch (compiler) {
    case AotCompiler::kNvcc:
      return CompilerForVendor(Vendor::kNvidia);
    case AotCompiler::kHipcc:
      return CompilerForVendor(Vendor::kAmd);
    case AotCompiler::kClang:
      break;
  }
  return AmdClangCompiler();
}

Vendor VendorOf(AotCompiler compiler) {
  return compiler == AotCompiler::kNvcc ? Vendor::kNvidia : Vendor::kAmd;
}

absl::Status Compile(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string sdk_name, Required(flags, "sdk"));
  ASSIGN_OR_RETURN(AotCompiler sdk, ParseAotCompiler(sdk_name));
  ASSIGN_OR_RETURN(std::string compiler, Required(flags, "compiler"));
  ASSIGN_OR_RETURN(std::string kernel_name, Required(flags, "kernel"));
  ASSIGN_OR_RETURN(std::string config_text, Required(flags, "config"));
  ASSIGN_OR_RETURN(std::string target, Required(flags, "target"));
  ASSIGN_OR_RETURN(std::string out, Required(flags, "out"));
  ASSIGN_OR_RETURN(std::string key_out, Required(flags, "key_out"));
  const std::string bundle_out = Optional(flags, "bundle_out");

  ASSIGN_OR_RETURN(RopeConfig config, ParseAotConfig(config_text));
  ASSIGN_OR_RETURN(RopeKernel kernel, ParseRopeKernel(kernel_name));
  ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(config, kernel, target));
  ASSIGN_OR_RETURN(Vendor vendor, VendorOfTarget(target));
  if (vendor != VendorOf(sdk)) {
    return absl::InvalidArgumentError(absl::StrCat(sdk_name, " does not build ", target));
  }
  const Compiler& jit = JitCompilerOf(sdk);
  ASSIGN_OR_RETURN(std::vector<std::string> args,
                   AotCompilerArgs(sdk, jit.Options(target), spec.defines));

  // The compilers write temporaries of their own; ours go in a private directory.
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/rope_aot_XXXXXX");
  if (mkdtemp(&dir[0]) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", dir, ": ", std::strerror(errno)));
  }
  const std::string source = absl::StrCat(dir, "/", spec.kernel, ".hip");
  const std::string raw_out = absl::StrCat(dir, "/", spec.kernel, ".out");
  absl::Cleanup remove_dir = [&] {
    std::remove(source.c_str());
    std::remove(raw_out.c_str());
    rmdir(dir.c_str());
  };
  RETURN_IF_ERROR(WriteFile(source, spec.source));

  std::vector<std::string> argv = {compiler};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {source, "-o", raw_out});
  RETURN_IF_ERROR(Run(argv));
  ASSIGN_OR_RETURN(std::string raw, ReadFile(raw_out));

  absl::string_view code = raw;
  if (sdk == AotCompiler::kHipcc) {
    ASSIGN_OR_RETURN(code, AmdCodeObjectFromBundle(raw, target));
  }
  ASSIGN_OR_RETURN(ElfFile elf, ParseElf(code));
  const uint16_t machine = vendor == Vendor::kAmd ? kElfMachineAmdgpu : kElfMachineCuda;
  if (elf.machine != machine) {
    return absl::InternalError(absl::StrCat(compiler, " produced an ELF for machine ", elf.machine,
                                            ", expected ", machine, " for ", target));
  }
  ASSIGN_OR_RETURN(CacheKey key, BakedCacheKey(spec, jit));
  RETURN_IF_ERROR(WriteFile(out, code));
  RETURN_IF_ERROR(WriteFile(key_out, absl::StrCat(key.hex, "\n", key.text)));
  if (!bundle_out.empty()) {
    RETURN_IF_ERROR(WriteFile(bundle_out, raw));
  }
  return absl::OkStatus();
}

// A C++ string literal of `bytes`: printable ASCII as is, the rest as three-digit octal
// escapes (which cannot swallow a following digit), split into lines. '?' is escaped too,
// so that no "??x" trigraph appears for a compiler in a pre-C++17 mode.
std::string Literal(absl::string_view bytes) {
  std::string out = "\"";
  size_t line = 0;
  for (unsigned char c : bytes) {
    if (line >= 96) {
      out += "\"\n    \"";
      line = 0;
    }
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '?') {
      out += static_cast<char>(c);
      line += 1;
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\%03o", c);
      out += escaped;
      line += 4;
    }
  }
  return out + "\"";
}

// The generated constant holding an SDK's identity.
std::string ProducerName(absl::string_view sdk) { return absl::StrCat("kProducer_", sdk); }

struct Unit {
  std::string kernel, config, target, sdk, code, key_hex, key_text;
};

absl::Status Pack(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string out_cc, Required(flags, "out_cc"));
  ASSIGN_OR_RETURN(std::string out_h, Required(flags, "out_h"));
  ASSIGN_OR_RETURN(std::string include, Required(flags, "include"));
  ASSIGN_OR_RETURN(std::string function, Required(flags, "function"));

  std::map<std::string, std::string> sdks;  // nvcc / hipcc / clang -> identity text
  for (auto [it, end] = flags.equal_range("sdk"); it != end; ++it) {
    std::pair<std::string, std::string> parts = absl::StrSplit(it->second, absl::MaxSplits(':', 1));
    if (!ParseAotCompiler(parts.first).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sdk=", it->second, ": nvcc, hipcc or clang, then :FILE"));
    }
    ASSIGN_OR_RETURN(sdks[parts.first], ReadFile(parts.second));
  }
  std::vector<Unit> units;
  for (auto [it, end] = flags.equal_range("unit"); it != end; ++it) {
    std::vector<std::string> parts = absl::StrSplit(it->second, '|');
    if (parts.size() != 6) {
      return absl::InvalidArgumentError(
          absl::StrCat("--unit=", it->second, ": expected KERNEL|CONFIG|TARGET|SDK|CODE|KEY"));
    }
    Unit unit;
    unit.kernel = parts[0];
    unit.config = parts[1];
    unit.target = parts[2];
    unit.sdk = parts[3];
    if (sdks.count(unit.sdk) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("no --sdk for ", unit.sdk));
    }
    ASSIGN_OR_RETURN(unit.code, ReadFile(parts[4]));
    ASSIGN_OR_RETURN(std::string key, ReadFile(parts[5]));
    std::pair<std::string, std::string> hex_text = absl::StrSplit(key, absl::MaxSplits('\n', 1));
    unit.key_hex = hex_text.first;
    unit.key_text = hex_text.second;
    units.push_back(std::move(unit));
  }

  std::string guard = absl::StrCat("ROPE_JIT_GENERATED_", include);
  for (char& c : guard) c = std::isalnum(static_cast<unsigned char>(c)) ? std::toupper(c) : '_';
  std::string header = absl::StrCat(
      "// Generated by aot/aot_tool.cc for rope_aot_library (aot/aot.bzl). Do not edit.\n",
      "#ifndef ", guard, "\n#define ", guard, "\n\n#include \"jit/baked_tier.h\"\n\n",
      "namespace rope_jit {\n\n// ", units.size(), " code objects built at build time by ",
      sdks.empty() ? "no SDK (none was installed)" : "nvcc / hipcc / clang",
      "; see jit/baked_tier.h.\n",
      "const StaticBakedTier& ", function, "();\n\n}  // namespace rope_jit\n\n#endif  // ", guard,
      "\n");

  auto view = [](absl::string_view name) {
    return absl::StrCat("absl::string_view(", name, ", sizeof(", name, ") - 1)");
  };
  std::string cc = absl::StrCat(
      "// Generated by aot/aot_tool.cc for rope_aot_library (aot/aot.bzl). Do not edit.\n",
      "#include \"", include, "\"\n\nnamespace rope_jit {\nnamespace {\n\n");
  for (const auto& [sdk, identity] : sdks) {
    absl::StrAppend(&cc, "constexpr char ", ProducerName(sdk), "[] =\n    ", Literal(identity),
                    ";\n\n");
  }
  for (size_t i = 0; i < units.size(); ++i) {
    const Unit& unit = units[i];
    absl::StrAppend(&cc, "// ", unit.kernel, " ", unit.config, " ", unit.target, "\n",
                    "constexpr char kKeyText", i, "[] =\n    ", Literal(unit.key_text), ";\n",
                    // Drivers read code objects in place: keep them aligned like a file.
                    "alignas(256) constexpr char kCode", i, "[] =\n    ", Literal(unit.code),
                    ";\n\n");
  }
  if (units.empty()) {
    absl::StrAppend(&cc, "constexpr absl::Span<const BakedEntry> kEntries;\n");
  } else {
    absl::StrAppend(&cc, "constexpr BakedEntry kEntries[] = {\n");
    for (size_t i = 0; i < units.size(); ++i) {
      const Unit& unit = units[i];
      absl::StrAppend(&cc, "    {", Literal(unit.key_hex), ", ", view(absl::StrCat("kKeyText", i)),
                      ", ", Literal(unit.kernel), ", ", Literal(unit.config), ", ",
                      Literal(unit.target), ", ", view(ProducerName(unit.sdk)), ", ",
                      view(absl::StrCat("kCode", i)), "},\n");
    }
    absl::StrAppend(&cc, "};\n");
  }
  if (sdks.empty()) {
    absl::StrAppend(&cc, "constexpr absl::Span<const BakedSdk> kSdks;\n");
  } else {
    absl::StrAppend(&cc, "constexpr BakedSdk kSdks[] = {\n");
    for (const auto& [sdk, identity] : sdks) {
      const bool nvidia = VendorOf(*ParseAotCompiler(sdk)) == Vendor::kNvidia;
      absl::StrAppend(&cc, "    {Vendor::", nvidia ? "kNvidia" : "kAmd", ", ",
                      view(ProducerName(sdk)), ", ", Literal(sdk), "},\n");
    }
    absl::StrAppend(&cc, "};\n");
  }
  absl::StrAppend(
      &cc, "\n}  // namespace\n\nconst StaticBakedTier& ", function, "() {\n",
      "  static const StaticBakedTier* const tier = new StaticBakedTier(kEntries, kSdks);\n",
      "  return *tier;\n}\n\n}  // namespace rope_jit\n");
  RETURN_IF_ERROR(WriteFile(out_h, header));
  return WriteFile(out_cc, cc);
}

// argv without the program name, with "@FILE" replaced by FILE's lines.
absl::StatusOr<std::vector<std::string>> ExpandArgs(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '@') {
      args.push_back(argv[i]);
      continue;
    }
    ASSIGN_OR_RETURN(std::string text, ReadFile(argv[i] + 1));
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      args.emplace_back(line);
    }
  }
  return args;
}

absl::Status Main(int argc, char** argv) {
  ASSIGN_OR_RETURN(std::vector<std::string> args, ExpandArgs(argc, argv));
  if (args.empty())
    return absl::InvalidArgumentError("usage: aot_tool compile|pack --name=value ...");
  const std::string command = args.front();
  args.erase(args.begin());
  ASSIGN_OR_RETURN(Flags flags, ParseFlags(args));
  if (command == "compile") return Compile(flags);
  if (command == "pack") return Pack(flags);
  return absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace
}  // namespace rope_jit

int main(int argc, char** argv) {
  absl::Status status = rope_jit::Main(argc, argv);
  if (!status.ok()) {
    std::cerr << "aot_tool: " << status << "\n";
    return 1;
  }
  return 0;
}
