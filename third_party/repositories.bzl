"""Repository rules that make this workspace build offline from Debian packages.

Every label here is a Label() so the macros work from an embedding workspace.
"""

load(":gpu_sdks.bzl", "gpu_sdks")

# Where Debian (amd64) installs libraries and their per-architecture headers.
_DEBIAN_LIB = "/usr/lib/x86_64-linux-gnu"
_DEBIAN_ARCH_INCLUDE = "/usr/include/x86_64-linux-gnu"

def _local_mirror_impl(ctx):
    # Mirror a directory of this repository as an external repository. Used for the
    # offline stand-ins of rules_cc, rules_java and remote_coverage_tools.
    src_dir = ctx.path(ctx.attr.marker).dirname
    for entry in src_dir.readdir():
        ctx.symlink(entry, entry.basename)

_local_mirror = repository_rule(
    implementation = _local_mirror_impl,
    attrs = {"marker": attr.label(mandatory = True, allow_single_file = True)},
    local = True,
)

def _mirror_headers(ctx, system_dir, into):
    # Symlink each header of a system include directory under include/, so that the
    # repository root can hold BUILD packages named like upstream's (absl/status, ...).
    found = ctx.execute(["find", system_dir, "-type", "f"])
    if found.return_code != 0:
        fail("cannot list %s: %s" % (system_dir, found.stderr))
    prefix_len = len(system_dir) - len(into)
    for path in found.stdout.splitlines():
        ctx.symlink(path, "include/" + path[prefix_len:])

def _static_archives(ctx, pattern):
    listed = ctx.execute(["sh", "-c", "ls " + pattern])
    if listed.return_code != 0:
        fail("no static archives match %s; run ./setup.sh" % pattern)
    return sorted(listed.stdout.splitlines())

_ABSL_PACKAGES = {
    "absl/algorithm": ["algorithm", "container"],
    "absl/base": ["base", "core_headers", "config", "log_severity"],
    "absl/cleanup": ["cleanup"],
    "absl/container": ["flat_hash_map", "flat_hash_set", "node_hash_map", "btree", "fixed_array", "inlined_vector"],
    "absl/flags": ["flag", "parse", "usage"],
    "absl/functional": ["function_ref", "bind_front"],
    "absl/hash": ["hash"],
    "absl/memory": ["memory"],
    "absl/numeric": ["int128", "bits"],
    "absl/random": ["random", "distributions"],
    "absl/status": ["status", "statusor"],
    "absl/strings": ["strings", "str_format", "cord"],
    "absl/synchronization": ["synchronization"],
    "absl/time": ["time"],
    "absl/types": ["optional", "span", "variant"],
    "absl/utility": ["utility"],
}

def _system_absl_impl(ctx):
    _mirror_headers(ctx, "/usr/include/absl", "absl")
    archives = _static_archives(ctx, _DEBIAN_LIB + "/libabsl_*.a")
    ctx.file("BUILD.bazel", """
# Debian's libabsl-dev, linked statically. One group: the archives depend on each other.
cc_library(
    name = "absl",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    linkopts = ["-Wl,--start-group"] + {archives} + ["-Wl,--end-group", "-lpthread"],
    visibility = ["//visibility:public"],
)
""".format(archives = repr(archives)))
    for package, names in _ABSL_PACKAGES.items():
        lines = ["# Upstream's target names, all served by the one system library."]
        for name in names:
            lines.append('alias(name = "%s", actual = "//:absl", visibility = ["//visibility:public"])' % name)
        ctx.file(package + "/BUILD.bazel", "\n".join(lines) + "\n")

system_absl = repository_rule(implementation = _system_absl_impl, local = True)

def _system_googletest_impl(ctx):
    _mirror_headers(ctx, "/usr/include/gtest", "gtest")
    _mirror_headers(ctx, "/usr/include/gmock", "gmock")
    lib = _DEBIAN_LIB + "/"
    ctx.file("BUILD.bazel", """
# Debian's libgtest-dev / libgmock-dev (static only).
cc_library(
    name = "gtest",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    linkopts = ["{lib}libgmock.a", "{lib}libgtest.a", "-lpthread"],
    visibility = ["//visibility:public"],
)

cc_library(
    name = "gtest_main",
    linkopts = ["{lib}libgtest_main.a"],
    deps = [":gtest"],
    visibility = ["//visibility:public"],
)
""".format(lib = lib))

system_googletest = repository_rule(implementation = _system_googletest_impl, local = True)

def _system_xxhash_impl(ctx):
    ctx.symlink("/usr/include/xxhash.h", "include/xxhash.h")
    ctx.file("BUILD.bazel", """
# Debian's libxxhash-dev, linked statically.
cc_library(
    name = "xxhash",
    hdrs = ["include/xxhash.h"],
    includes = ["include"],
    linkopts = ["{lib}/libxxhash.a"],
    visibility = ["//visibility:public"],
)
""".format(lib = _DEBIAN_LIB))

system_xxhash = repository_rule(implementation = _system_xxhash_impl, local = True)

def _system_hiredis_impl(ctx):
    _mirror_headers(ctx, "/usr/include/hiredis", "hiredis")
    ctx.file("BUILD.bazel", """
# Debian's libhiredis-dev (the remote cache tier's Redis client), linked statically.
cc_library(
    name = "hiredis",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    linkopts = ["{lib}/libhiredis.a"],
    visibility = ["//visibility:public"],
)
""".format(lib = _DEBIAN_LIB))

system_hiredis = repository_rule(implementation = _system_hiredis_impl, local = True)

def _system_libcrypto_impl(ctx):
    # Both directories: Debian keeps opensslconf.h and configuration.h per architecture.
    _mirror_headers(ctx, "/usr/include/openssl", "openssl")
    _mirror_headers(ctx, _DEBIAN_ARCH_INCLUDE + "/openssl", "openssl")
    ctx.file("BUILD.bazel", """
# Debian's libssl-dev, libcrypto only (HMAC-SHA256 of remote cache entries), linked
# statically so that the binaries do not need this OpenSSL on the GPU hosts.
cc_library(
    name = "libcrypto",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    linkopts = ["{lib}/libcrypto.a", "-ldl", "-lpthread"],
    visibility = ["//visibility:public"],
)
""".format(lib = _DEBIAN_LIB))

system_libcrypto = repository_rule(implementation = _system_libcrypto_impl, local = True)

def _system_nlohmann_json_impl(ctx):
    ctx.symlink("/usr/include/nlohmann", "include/nlohmann")
    ctx.file("BUILD.bazel", """
# Debian's nlohmann-json3-dev (header only). rope/hf_config.cc parses without exceptions.
cc_library(
    name = "json",
    hdrs = glob(["include/nlohmann/**"]),
    includes = ["include"],
    visibility = ["//visibility:public"],
)
""")

system_nlohmann_json = repository_rule(implementation = _system_nlohmann_json_impl, local = True)

def rope_jit_dependencies():
    """Declares every external repository rope_jit needs. Call from a WORKSPACE."""
    existing = native.existing_rules()
    mirrors = {
        "rules_cc": Label("//third_party/rules_cc:WORKSPACE"),
        "rules_java": Label("//third_party/rules_java:WORKSPACE"),
        "remote_coverage_tools": Label("//third_party/remote_coverage_tools:WORKSPACE"),
    }
    for name, marker in mirrors.items():
        if name not in existing:
            _local_mirror(name = name, marker = marker)
    if "com_google_absl" not in existing:
        system_absl(name = "com_google_absl")
    if "com_google_googletest" not in existing:
        system_googletest(name = "com_google_googletest")
    if "xxhash" not in existing:
        system_xxhash(name = "xxhash")
    if "nlohmann_json" not in existing:
        system_nlohmann_json(name = "nlohmann_json")
    if "hiredis" not in existing:
        system_hiredis(name = "hiredis")
    if "libcrypto" not in existing:
        system_libcrypto(name = "libcrypto")
    if "rope_jit_gpu_sdks" not in existing:
        # nvcc / hipcc for build-time code objects (//aot); absent ones are skipped.
        gpu_sdks(name = "rope_jit_gpu_sdks")
