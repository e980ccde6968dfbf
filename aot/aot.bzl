"""rope_aot_library: RoPE code objects compiled at build time and linked into a binary as
the kernel service's baked tier (jit/baked_tier.h).

    load("@rope_jit//aot:aot.bzl", "rope_aot_library")

    rope_aot_library(
        name = "my_kernels",                       # cc_library; header "<package>/my_kernels.h"
        targets = ["gfx90a", "sm_90"],
        configs = ["dtype=bf16,style=neox,head_dim=128"],   # see aot/aot_config.h
        function = "MyBakedKernels",               # const StaticBakedTier& MyBakedKernels();
    )

Each (kernel, config, target) is one action: aot_tool (built from this repository, so from
the same code as the JIT path) writes the embedded kernel text and runs nvcc -cubin,
hipcc --genco, or (AMD processors hipcc's ROCm does not know, such as gfx942, gfx1100 and
gfx1201) clang 19, on it with the JIT compiler's own options and defines
(aot/aot_options.h), then files the code object under the key the kernel service looks up.
Each action reads its SDK's identity (third_party/gpu_sdks.bzl: version output and file
hashes), so another SDK rebuilds every code object. A target no installed SDK can build
gets no actions: the library still builds, without those entries (StaticBakedTier::HasSdk
says which SDKs were there).

Output groups of "<name>_gen": "code_objects" (what is linked in) and "bundles" (hipcc's
raw offload bundles, for the parity tests; also as the filegroup "<name>_bundles").
"""

load("@rope_jit_gpu_sdks//:defs.bzl", "ROPE_JIT_GPU_SDKS")
load("@rules_cc//cc:defs.bzl", "cc_library")

def _vendor(target):
    if target.startswith("gfx"):
        return "amd"
    if target.startswith("sm_"):
        return "nvidia"
    fail("AOT target '%s' is neither an AMD (gfx*) nor an NVIDIA (sm_*) target" % target)

def _sdk_for(target):
    """(SDK name, its ROPE_JIT_GPU_SDKS entry) that builds `target`, or (None, None).

    AMD: hipcc for the processors its device libraries have, else clang 19."""
    if _vendor(target) == "nvidia":
        return "nvidia", ROPE_JIT_GPU_SDKS.get("nvidia")
    processor = target.split(":")[0]
    hipcc = ROPE_JIT_GPU_SDKS.get("amd")
    if hipcc != None and processor in hipcc["processors"]:
        return "amd", hipcc
    clang = ROPE_JIT_GPU_SDKS.get("amd_clang")
    if clang != None:
        return "amd_clang", clang
    return None, None

# aot_tool's name of the build compiler of each SDK (it knows which JIT compiler each stands
# for: NVRTC, hipRTC, the clang JIT compiler).
_TOOL_OF_SDK = {"nvidia": "nvcc", "amd": "hipcc", "amd_clang": "clang"}

def _file_name(text):
    # Configs and target ids hold '=', ',' and ':'; keep file names plain.
    out = ""
    for c in text.elems():
        out += c if (c.isalnum() or c in "_-") else "_"
    return out

def _rope_aot_code_objects_impl(ctx):
    identities = {
        "amd": ctx.file._amd_identity,
        "amd_clang": ctx.file._amd_clang_identity,
        "nvidia": ctx.file._nvidia_identity,
    }
    units = []
    code_objects = []
    keys = []
    bundles = []
    used_sdks = {}
    for target in ctx.attr.targets:
        sdk_name, sdk = _sdk_for(target)
        if sdk == None:
            continue  # skipped cleanly; HasSdk tells the tests
        used_sdks[sdk_name] = True
        for kernel in ctx.attr.kernels:
            for config in ctx.attr.configs:
                stem = "%s/%s/%s/%s" % (ctx.label.name, _file_name(target), kernel, _file_name(config))
                code = ctx.actions.declare_file(stem + ".co")
                key = ctx.actions.declare_file(stem + ".key")
                outputs = [code, key]
                args = ctx.actions.args()
                args.add("compile")
                args.add("--compiler=" + sdk["compiler"])
                args.add("--sdk=" + _TOOL_OF_SDK[sdk_name])
                args.add("--kernel=" + kernel)
                args.add("--config=" + config)
                args.add("--target=" + target)
                args.add("--out=" + code.path)
                args.add("--key_out=" + key.path)
                if sdk_name == "amd":
                    bundle = ctx.actions.declare_file(stem + ".bundle")
                    outputs.append(bundle)
                    bundles.append(bundle)
                    args.add("--bundle_out=" + bundle.path)
                ctx.actions.run(
                    executable = ctx.executable._tool,
                    arguments = [args],
                    inputs = [identities[sdk_name]],
                    outputs = outputs,
                    mnemonic = "RopeAotCompile",
                    progress_message = "AOT-compiling %s %s for %s" % (kernel, config, target),
                    # nvcc runs the host gcc and hipcc is a perl script: both need PATH.
                    use_default_shell_env = True,
                )
                code_objects.append(code)
                keys.append(key)
                units.append("|".join([kernel, config, target, _TOOL_OF_SDK[sdk_name], code.path, key.path]))

    args = ctx.actions.args()
    args.add("pack")
    args.add("--out_cc=" + ctx.outputs.out_cc.path)
    args.add("--out_h=" + ctx.outputs.out_h.path)
    package = ctx.label.package
    args.add("--include=" + (package + "/" if package else "") + ctx.outputs.out_h.basename)
    args.add("--function=" + ctx.attr.function)
    sdk_inputs = []
    for sdk_name in sorted(used_sdks.keys()):
        args.add("--sdk=%s:%s" % (_TOOL_OF_SDK[sdk_name], identities[sdk_name].path))
        sdk_inputs.append(identities[sdk_name])
    for unit in units:
        args.add("--unit=" + unit)
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = code_objects + keys + sdk_inputs,
        outputs = [ctx.outputs.out_cc, ctx.outputs.out_h],
        mnemonic = "RopeAotPack",
        progress_message = "Packing %d AOT code objects into %s" % (len(units), ctx.outputs.out_cc.short_path),
    )
    return [
        DefaultInfo(files = depset([ctx.outputs.out_cc, ctx.outputs.out_h])),
        OutputGroupInfo(code_objects = depset(code_objects), bundles = depset(bundles)),
    ]

_rope_aot_code_objects = rule(
    implementation = _rope_aot_code_objects_impl,
    attrs = {
        "targets": attr.string_list(mandatory = True),
        "configs": attr.string_list(mandatory = True),
        "kernels": attr.string_list(default = ["rope", "position_embeddings"]),
        "function": attr.string(mandatory = True),
        "out_cc": attr.output(mandatory = True),
        "out_h": attr.output(mandatory = True),
        "_tool": attr.label(
            default = Label("//aot:aot_tool"),
            executable = True,
            cfg = "exec",
        ),
        "_amd_identity": attr.label(
            default = Label("@rope_jit_gpu_sdks//:amd_identity.txt"),
            allow_single_file = True,
        ),
        "_amd_clang_identity": attr.label(
            default = Label("@rope_jit_gpu_sdks//:amd_clang_identity.txt"),
            allow_single_file = True,
        ),
        "_nvidia_identity": attr.label(
            default = Label("@rope_jit_gpu_sdks//:nvidia_identity.txt"),
            allow_single_file = True,
        ),
    },
)

def rope_aot_library(
        name,
        targets,
        configs,
        kernels = ["rope", "position_embeddings"],
        function = "RopeAotBakedTier",
        visibility = None,
        testonly = None):
    """A cc_library whose header declares `const rope_jit::StaticBakedTier& <function>()`.

    Args:
      name: the cc_library; its header is "<package>/<name>.h".
      targets: full target ids to build for ("gfx90a", "gfx942", "gfx1201", "sm_80", "sm_90a",
        ...).
      configs: baked shapes, e.g. "dtype=bf16,style=neox,head_dim=128" (aot/aot_config.h).
      kernels: which kernels of kernels/ to build, each for every config and target.
      function: the accessor's name (unique per binary).
      visibility: of the cc_library and its bundles filegroup.
      testonly: as for any rule.
    """
    _rope_aot_code_objects(
        name = name + "_gen",
        targets = targets,
        configs = configs,
        kernels = kernels,
        function = function,
        out_cc = name + ".cc",
        out_h = name + ".h",
        testonly = testonly,
    )
    native.filegroup(
        name = name + "_bundles",
        srcs = [":" + name + "_gen"],
        output_group = "bundles",
        visibility = visibility,
        testonly = testonly,
    )
    cc_library(
        name = name,
        srcs = [name + ".cc"],
        hdrs = [name + ".h"],
        deps = [
            Label("//jit:baked_tier"),
            Label("//jit:target"),
            Label("@com_google_absl//absl/strings"),
            Label("@com_google_absl//absl/types:span"),
        ],
        visibility = visibility,
        testonly = testonly,
    )
