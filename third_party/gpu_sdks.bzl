"""The GPU SDKs that build-time (AOT) code objects are compiled with: nvcc, hipcc, and clang
(LLVM 19) for the AMD processors hipcc's ROCm does not know.

gpu_sdks(name = "rope_jit_gpu_sdks") creates a repository holding

  defs.bzl               ROPE_JIT_GPU_SDKS: {"amd": {"compiler": "/usr/bin/hipcc",
                         "processors": ["gfx1030", ...]}, "amd_clang": {"compiler":
                         "/usr/lib/llvm-19/bin/clang"}, "nvidia": ...}, one entry per SDK found
                         (hipcc's processors: those its device libraries have an ISA file for);
                         an absent SDK has no entry, so //aot rules produce nothing for it and
                         the build still succeeds
  amd_identity.txt       what the SDK is: its version output and the sha256 of every file
  amd_clang_identity.txt that decides the code (compiler driver, front and back ends, linker,
  nvidia_identity.txt    device libraries). Every AOT compile action reads its SDK's file, so a
                         different SDK rebuilds every code object; "absent: ..." when missing
  tool_paths.h           llvm-objdump and clang-offload-bundler of the LLVM that hipcc drives,
                         and llvm-objdump / llvm-readelf of clang's LLVM, for the AOT/JIT parity
                         and ISA tests ("" when absent)

The rule is `local` and `configure`: it runs again when the Bazel server restarts, on
`bazel sync --configure`, and when CUDA_HOME, ROCM_PATH or the ROPE_JIT_AOT_* variables
change. ROPE_JIT_AOT_NVCC / ROPE_JIT_AOT_HIPCC / ROPE_JIT_AOT_CLANG name a compiler
explicitly; "none" turns one off (e.g. `bazel build --repo_env=ROPE_JIT_AOT_HIPCC=none ...`).
"""

_ENVIRON = [
    "CUDA_HOME",
    "CUDA_PATH",
    "ROCM_PATH",
    "ROPE_JIT_AOT_NVCC",
    "ROPE_JIT_AOT_HIPCC",
    "ROPE_JIT_AOT_CLANG",
]

def _first_existing(ctx, candidates):
    for candidate in candidates:
        if candidate and ctx.path(candidate).exists:
            return candidate
    return None

def _find_compiler(ctx, override_var, candidates):
    """(path, why_absent): an explicit override wins, "none" disables."""
    override = ctx.os.environ.get(override_var, "")
    if override == "none":
        return None, "disabled by %s=none" % override_var
    if override:
        if ctx.path(override).exists:
            return override, ""
        return None, "%s=%s does not exist" % (override_var, override)
    found = _first_existing(ctx, candidates)
    if found:
        return found, ""
    return None, "none of %s exists" % ", ".join([c for c in candidates if c])

def _real_path(ctx, path):
    result = ctx.execute(["readlink", "-f", path])
    return result.stdout.strip() if result.return_code == 0 else path

def _sha256_lines(ctx, paths):
    """One "sha256 <hex> <path> [-> <real path>]" line per file, in the given order."""
    lines = []
    for path in paths:
        result = ctx.execute(["sha256sum", path])
        if result.return_code != 0:
            fail("gpu_sdks: cannot hash %s: %s" % (path, result.stderr))
        real = _real_path(ctx, path)
        lines.append("sha256 %s %s%s" % (
            result.stdout.split(" ")[0],
            path,
            "" if real == path else " -> " + real,
        ))
    return lines

def _version_lines(ctx, argv):
    # Only stdout: hipcc --version also runs rocm_agent_enumerator, whose complaints about
    # a machine without a GPU go to stderr and vary.
    result = ctx.execute(argv)
    return [line.rstrip() for line in result.stdout.splitlines() if line.strip()]

def _nvidia(ctx):
    cuda_homes = [ctx.os.environ.get("CUDA_HOME", ""), ctx.os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    nvcc, why = _find_compiler(ctx, "ROPE_JIT_AOT_NVCC", [h + "/bin/nvcc" for h in cuda_homes if h])
    if not nvcc:
        return None, "absent: " + why + "\n"
    bin_dir = str(ctx.path(nvcc).dirname)
    root = str(ctx.path(bin_dir).dirname)

    # nvcc runs cicc (front end + NVVM, with libdevice) and ptxas; nvcc.profile sets their
    # paths. It preprocesses with the host gcc, whose version it also passes to cicc.
    files = [nvcc]
    for candidate in [bin_dir + "/nvcc.profile", root + "/nvvm/bin/cicc", bin_dir + "/ptxas"]:
        if ctx.path(candidate).exists:
            files.append(candidate)
    libdevice = root + "/nvvm/libdevice"
    if ctx.path(libdevice).exists:
        files += sorted([str(p) for p in ctx.path(libdevice).readdir() if p.basename.endswith(".bc")])
    lines = ["nvcc " + nvcc]
    lines += _version_lines(ctx, [nvcc, "--version"])
    lines += ["host " + line for line in _version_lines(ctx, ["gcc", "--version"])[:1]]
    lines += _sha256_lines(ctx, files)
    return {"compiler": nvcc}, "\n".join(lines) + "\n"

def _amd(ctx):
    rocm = ctx.os.environ.get("ROCM_PATH", "")
    hipcc, why = _find_compiler(
        ctx,
        "ROPE_JIT_AOT_HIPCC",
        [rocm + "/bin/hipcc" if rocm else "", "/usr/bin/hipcc", "/opt/rocm/bin/hipcc"],
    )
    if not hipcc:
        return None, "absent: " + why + "\n", None

    # What hipcc would run for a device-only compile: clang, lld, clang-offload-bundler and
    # every device library it links (-mlink-builtin-bitcode), as absolute paths.
    plan = ctx.execute([hipcc, "-###", "--genco", "--offload-arch=gfx90a", "-x", "hip", "/dev/null", "-o", "/dev/null"])
    if plan.return_code != 0:
        return None, "absent: %s -### failed: %s\n" % (hipcc, plan.stderr), None
    files = [hipcc]
    for sibling in ["hipcc.pl", "hipvars.pm"]:
        path = str(ctx.path(hipcc).dirname) + "/" + sibling
        if ctx.path(path).exists:
            files.append(path)
    clang = None
    bitcode_dirs = []
    for token in (plan.stdout + plan.stderr).split("\""):
        if not token.startswith("/") or token == "/dev/null" or token in files:
            continue
        if ctx.execute(["test", "-f", token]).return_code != 0:
            continue
        if token.endswith(".bc"):
            # The plan names gfx90a's libraries; other processors link siblings of them.
            directory = str(ctx.path(token).dirname)
            if directory not in bitcode_dirs:
                bitcode_dirs.append(directory)
            continue
        files.append(token)
        if token.endswith("/clang") and not clang:
            clang = token
    processors = []
    for directory in bitcode_dirs:
        bitcode = sorted([p.basename for p in ctx.path(directory).readdir() if p.basename.endswith(".bc")])
        files += [directory + "/" + name for name in bitcode]

        # One ISA library per processor the device libraries (so hipcc) can build for.
        processors += [
            "gfx" + name[len("oclc_isa_version_"):-len(".bc")]
            for name in bitcode
            if name.startswith("oclc_isa_version_")
        ]
    lines = ["hipcc " + hipcc]
    lines += _version_lines(ctx, [hipcc, "--version"])
    lines += _sha256_lines(ctx, files)
    return {"compiler": hipcc, "processors": sorted(processors)}, "\n".join(lines) + "\n", clang

def _amd_clang(ctx):
    """clang 19 for the AMD processors hipcc does not know (jit/rocm/clang_compiler.h)."""
    clang, why = _find_compiler(
        ctx,
        "ROPE_JIT_AOT_CLANG",
        ["/usr/bin/clang-19", "/usr/lib/llvm-19/bin/clang"],
    )
    if not clang:
        return None, "absent: " + why + "\n", ""
    real = _real_path(ctx, clang)
    bin_dir = str(ctx.path(real).dirname)
    lld = bin_dir + "/ld.lld"
    if not ctx.path(lld).exists:
        return None, "absent: %s has no ld.lld next to it (install lld-19)\n" % real, ""

    # The code comes from clang, the LLVM libraries it loads (front end, AMDGPU back end)
    # and lld.
    files = [clang, lld]
    listing = ctx.execute(["ldd", real])
    for line in listing.stdout.splitlines():
        parts = line.strip().split(" ")  # "libLLVM.so.19.1 => /lib/.../libLLVM.so.19.1 (0x...)"
        if len(parts) < 3 or parts[1] != "=>":
            continue
        if parts[0].startswith("libLLVM") or parts[0].startswith("libclang"):
            files.append(parts[2])
    lines = ["clang " + clang]
    lines += _version_lines(ctx, [clang, "--version"])
    lines += _sha256_lines(ctx, files)
    return {"compiler": clang}, "\n".join(lines) + "\n", bin_dir

def _llvm_tool(ctx, clang, name):
    # The tool of the LLVM that hipcc drives understands exactly what it emits.
    candidates = []
    if clang:
        candidates.append(str(ctx.path(clang).dirname) + "/" + name)
    for version in ["15", "16", "17", "14"]:
        candidates.append("/usr/lib/llvm-%s/bin/%s" % (version, name))
    return _first_existing(ctx, candidates) or ""

def _gpu_sdks_impl(ctx):
    sdks = {}
    nvidia, nvidia_identity = _nvidia(ctx)
    if nvidia:
        sdks["nvidia"] = nvidia
    amd, amd_identity, clang = _amd(ctx)
    if amd:
        sdks["amd"] = amd
    amd_clang, amd_clang_identity, clang_bin = _amd_clang(ctx)
    if amd_clang:
        sdks["amd_clang"] = amd_clang
    ctx.file("nvidia_identity.txt", nvidia_identity)
    ctx.file("amd_identity.txt", amd_identity)
    ctx.file("amd_clang_identity.txt", amd_clang_identity)
    ctx.file("defs.bzl", "# Generated by gpu_sdks (rope_jit). Do not edit.\nROPE_JIT_GPU_SDKS = %s\n" % repr(sdks))
    ctx.file("tool_paths.h", """// Generated by gpu_sdks (rope_jit). Do not edit. Empty strings: not installed.
#ifndef ROPE_JIT_GPU_SDKS_TOOL_PATHS_H_
#define ROPE_JIT_GPU_SDKS_TOOL_PATHS_H_
#define ROPE_JIT_LLVM_OBJDUMP "{objdump}"
#define ROPE_JIT_CLANG_OFFLOAD_BUNDLER "{bundler}"
// Of the clang that builds AMD code without ROCm (LLVM 19: knows gfx942, gfx1100, gfx1201).
#define ROPE_JIT_CLANG_LLVM_OBJDUMP "{clang_objdump}"
#define ROPE_JIT_CLANG_LLVM_READELF "{clang_readelf}"
#endif  // ROPE_JIT_GPU_SDKS_TOOL_PATHS_H_
""".format(
        objdump = _llvm_tool(ctx, clang, "llvm-objdump"),
        bundler = _llvm_tool(ctx, clang, "clang-offload-bundler"),
        clang_objdump = _first_existing(ctx, [clang_bin + "/llvm-objdump"] if clang_bin else []) or "",
        clang_readelf = _first_existing(ctx, [clang_bin + "/llvm-readelf"] if clang_bin else []) or "",
    ))
    ctx.file("BUILD.bazel", """# Generated by gpu_sdks (rope_jit). Do not edit.
exports_files(
    ["amd_identity.txt", "amd_clang_identity.txt", "nvidia_identity.txt", "defs.bzl"],
    visibility = ["//visibility:public"],
)

cc_library(
    name = "tool_paths",
    hdrs = ["tool_paths.h"],
    visibility = ["//visibility:public"],
)
""")

gpu_sdks = repository_rule(
    implementation = _gpu_sdks_impl,
    environ = _ENVIRON,
    local = True,
    configure = True,
)
