#!/usr/bin/env python3
"""PyTorch baselines for rope_bench: eager and torch.compile'd RoPE on the same shapes.

Runs on a GPU host with PyTorch (and Triton, for torch.compile). Measures, per shape:
  * eager PyTorch RoPE, the Hugging Face formula: q*cos + rotate_half(q)*sin with cos/sin
    gathered by position from a cached [max_position, head_dim] table stored in the
    tensor dtype (as HF's rotary embedding returns cos/sin .to(x.dtype)); the interleaved
    (GPT-J) variant pairs x[2i], x[2i+1] with a repeat_interleave'd table;
  * torch.compile of the same function;
  * a torch copy of the same Q+K bytes (the memory-bound floor), and the ratios;
  * for decode shapes, CUDA-graph replay per apply (eager and compiled), which takes the
    Python/launch overhead out the way rope_bench's graph column does;
and the accuracy of both at long positions (32k and 1M, theta 5e5) against a float64
computation of the exact rotation, to set beside rope_bench's accuracy table.

Timing follows rope_bench: CUDA events around batches of back-to-back calls after
warm-up (a batch lasts >= --min_batch_ms), median of --batches batches, calls rotating
through buffer sets whose total exceeds 4x L2 so that repeated calls read DRAM. Unlike
rope_bench there is no spin kernel in front of a batch: eager decode numbers are
host-bound (that is what an eager model pays); the graph column is the device time.

Eager and compiled RoPE here are out of place (HF returns new tensors); ours is timed in
place. Both read Q and K once and write them once, so the bytes compared are the same.

Output: one JSON object per measured row on stdout as it completes (lines starting
with '{'), then a table; --json PATH writes everything as one JSON document.

Usage (on the GPU host):
  python3 tools/torch_rope_bench.py --quick --json torch_quick.json
  python3 tools/torch_rope_bench.py --json torch_full.json   # full matrix, a few minutes
"""

import argparse
import datetime
import json
import math
import os
import signal
import socket
import statistics
import sys
import time

DECODE_TOKENS = [1, 8, 64]
PREFILL_TOKENS = [4096, 32768]
MAX_DECODE_TOKENS = 64
BENCH_MAX_POSITION = 131072  # positions of the timed calls: uniform in [0, this)
ACCURACY_THETA = 500000.0
ACCURACY_TOKENS = 64


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch eager / torch.compile RoPE baselines for rope_bench (same shapes and flags).")
    p.add_argument("--quick", action="store_true",
                   help="small matrix: tokens 1,64,32768; 32/8 heads; head_dim 128; bf16,f32; both styles")
    p.add_argument("--shapes", help="decode, prefill, all, or token counts (comma-separated)")
    p.add_argument("--heads", help="Q/KV head counts, e.g. 32/8,8/1")
    p.add_argument("--head_dims", help="e.g. 64,128,256")
    p.add_argument("--dtypes", help="f32,f16,bf16 or all")
    p.add_argument("--styles", help="neox,interleaved or both")
    p.add_argument("--json", dest="json_path", help="write all numbers as one JSON document here")
    p.add_argument("--commit", default=os.environ.get("ROPE_JIT_COMMIT", "unknown"))
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--min_batch_ms", type=float, default=1.0)
    p.add_argument("--batches", type=int, default=None, help="median over N batches (default 7; --quick 5)")
    p.add_argument("--rotate_mib", type=int, default=256,
                   help="working set the calls rotate through; at least 4x L2 is used anyway")
    p.add_argument("--graph_applies", type=int, default=20,
                   help="applies captured per CUDA graph (eager RoPE is ~12 kernels an apply; default 20)")
    p.add_argument("--time_budget_s", type=float, default=0,
                   help="stop starting new rows after this many seconds (0: no limit); the JSON says what was skipped")
    p.add_argument("--no_compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no_graph", action="store_true", help="skip CUDA-graph replay figures")
    p.add_argument("--skip_accuracy", action="store_true")
    p.add_argument("--skip_kernels", action="store_true")
    a = p.parse_args(argv)

    def items(text):
        return [s.strip() for s in text.split(",") if s.strip()]

    try:
        if a.shapes:
            tokens = []
            for s in items(a.shapes):
                if s in ("decode", "all"):
                    tokens += DECODE_TOKENS
                if s in ("prefill", "all"):
                    tokens += PREFILL_TOKENS
                if s not in ("decode", "prefill", "all"):
                    t = int(s)
                    if not 1 <= t <= (1 << 24):
                        raise ValueError(s)
                    tokens.append(t)
            a.tokens = list(dict.fromkeys(tokens))
        else:
            a.tokens = [1, 64, 32768] if a.quick else DECODE_TOKENS + PREFILL_TOKENS
        if a.heads:
            a.head_pairs = []
            for s in items(a.heads):
                q, kv = s.replace("q", "/").replace("kv", "").split("/")[:2]
                a.head_pairs.append((int(q), int(kv)))
        else:
            a.head_pairs = [(32, 8)] if a.quick else [(32, 8), (8, 1)]
        if a.head_dims:
            a.head_dim_list = [int(s) for s in items(a.head_dims)]
            if any(d < 32 or d > 512 or d % 2 for d in a.head_dim_list):
                raise ValueError(a.head_dims)
        else:
            a.head_dim_list = [128] if a.quick else [64, 128, 256]
        names = {"f32": "f32", "fp32": "f32", "float32": "f32", "f16": "f16", "fp16": "f16",
                 "float16": "f16", "bf16": "bf16", "bfloat16": "bf16"}
        if a.dtypes:
            dts = []
            for s in items(a.dtypes):
                dts += ["f32", "f16", "bf16"] if s == "all" else [names[s]]
            a.dtype_list = list(dict.fromkeys(dts))
        else:
            a.dtype_list = ["bf16", "f32"] if a.quick else ["f32", "f16", "bf16"]
        if a.styles:
            sts = []
            for s in items(a.styles):
                sts += ["neox", "interleaved"] if s in ("both", "all") else \
                    [{"neox": "neox", "interleaved": "interleaved", "gptj": "interleaved"}[s]]
            a.style_list = list(dict.fromkeys(sts))
        else:
            a.style_list = ["neox", "interleaved"]
    except (ValueError, KeyError) as e:
        p.error(f"bad selection: {e}")
    if a.batches is None:
        a.batches = 5 if a.quick else 7
    return a


# --------------------------------------------------------------------------------------
# The RoPE variants (the Hugging Face formula and its GPT-J / interleaved form)

def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_every_two(x):
    x1 = x[..., 0::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope_neox(q, k, cos_table, sin_table, positions):
    cos = cos_table[positions].unsqueeze(1)  # [tokens, 1, head_dim]
    sin = sin_table[positions].unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def rope_interleaved(q, k, cos_table, sin_table, positions):
    cos = cos_table[positions].unsqueeze(1)
    sin = sin_table[positions].unsqueeze(1)
    return q * cos + rotate_every_two(q) * sin, k * cos + rotate_every_two(k) * sin


ROPE_FNS = {"neox": rope_neox, "interleaved": rope_interleaved}


def hf_inv_freq(head_dim, theta, device):
    # HF's default rope init, in float32.
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))


def hf_tables(positions_f32, head_dim, theta, style, dtype):
    """cos/sin rows for the given float32 positions, HF-style: float32 phase, cast to dtype."""
    inv_freq = hf_inv_freq(head_dim, theta, positions_f32.device)
    freqs = positions_f32[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1) if style == "neox" else freqs.repeat_interleave(2, dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


# --------------------------------------------------------------------------------------
# Timing

def time_calls(op, args):
    """Median per-call microseconds of op(i) over batches, timed with CUDA events."""
    for i in range(3):
        op(i)
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(8):
        op(3 + i)
    stop.record()
    stop.synchronize()
    estimate_ms = max(start.elapsed_time(stop) / 8, 1e-6)
    n = max(8, min(512, math.ceil(args.min_batch_ms / estimate_ms)))
    samples = []
    index = 11
    for _ in range(args.batches):
        start.record()
        for _ in range(n):
            op(index)
            index += 1
        stop.record()
        stop.synchronize()
        samples.append(1000.0 * start.elapsed_time(stop) / n)
    return {"median_us": statistics.median(samples), "min_us": min(samples), "max_us": max(samples),
            "calls_per_batch": n, "batches": args.batches}


def time_graphs(fn, views, sets, applies, graphs, args):
    """Per-apply microseconds of replayed CUDA graphs; graph g applies fn to sets g*A .. g*A+A-1."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up outside capture, as torch.cuda.graph requires
        for j in range(3):
            fn(*views(j))
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    captured = []
    pool = None
    for g in range(graphs):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            for j in range(applies):
                fn(*views((g * applies + j) % sets))
        pool = graph.pool()
        captured.append(graph)
    timing = time_calls(lambda i: captured[i % len(captured)].replay(), args)
    for key in ("median_us", "min_us", "max_us"):
        timing[key] /= applies
    timing["graphs_rotated"] = graphs
    return timing


# --------------------------------------------------------------------------------------
# One shape

DTYPES = {}


def measure_row(args, compiled, tables, tokens, hq, hkv, head_dim, dtype_name, style, rotate_bytes):
    dtype = DTYPES[dtype_name]
    elem = torch.tensor([], dtype=dtype).element_size()
    q_elems, k_elems = tokens * hq * head_dim, tokens * hkv * head_dim
    qk_bytes = (q_elems + k_elems) * elem
    set_elems = q_elems + k_elems
    sets = max(2, math.ceil(rotate_bytes / qk_bytes))
    arena = torch.randn(sets, set_elems, device="cuda", dtype=torch.float32).to(dtype)
    gen = torch.Generator(device="cuda").manual_seed(2000 + tokens)
    positions = torch.randint(0, BENCH_MAX_POSITION, (tokens,), device="cuda", dtype=torch.int64, generator=gen)
    cos_table, sin_table = tables[(head_dim, dtype_name, style)]

    def views(s):
        row = arena[s]
        return (row[:q_elems].view(tokens, hq, head_dim), row[q_elems:].view(tokens, hkv, head_dim),
                cos_table, sin_table, positions)

    row = {"tokens": tokens, "q_heads": hq, "kv_heads": hkv, "head_dim": head_dim, "dtype": dtype_name,
           "style": style, "qk_bytes": qk_bytes, "buffer_sets": sets,
           # read Q,K + write Q,K + gathered cos and sin rows (tokens x head_dim each) + positions
           "eager_bytes": 2 * qk_bytes + 2 * tokens * head_dim * elem + 8 * tokens,
           "copy_bytes": 2 * qk_bytes}
    eager_fn = ROPE_FNS[style]
    row["eager"] = time_calls(lambda i: eager_fn(*views(i % sets)), args)
    compiled_fn = compiled.get(style) if compiled else None
    if compiled_fn is not None:
        try:
            row["compiled"] = time_calls(lambda i: compiled_fn(*views(i % sets)), args)
        except Exception as e:  # a compile failure is a result, not a reason to stop
            row["compiled"] = None
            row["compiled_error"] = f"{type(e).__name__}: {e}"[:500]
    flat = arena.view(sets, -1)
    row["copy"] = time_calls(lambda i: flat[(i + 1) % sets].copy_(flat[i % sets]), args)
    if tokens <= MAX_DECODE_TOKENS and not args.no_graph:
        # At most 16 graphs: capturing eager RoPE (~12 kernels an apply) costs far more than
        # rope_bench's one launch an apply, and decode is latency-bound, not DRAM-bound.
        graphs = max(1, min(16, math.ceil(rotate_bytes / (args.graph_applies * qk_bytes))))
        for name, fn in (("eager_graph", eager_fn), ("compiled_graph", compiled_fn)):
            if fn is None:
                continue
            try:
                row[name] = time_graphs(fn, views, sets, args.graph_applies, graphs, args)
            except Exception as e:
                row[name] = None
                row[name + "_error"] = f"{type(e).__name__}: {e}"[:500]
    copy_us = row["copy"]["median_us"]
    row["eager_over_copy"] = row["eager"]["median_us"] / copy_us
    if row.get("compiled"):
        row["compiled_over_copy"] = row["compiled"]["median_us"] / copy_us
    del arena, flat
    return row


# --------------------------------------------------------------------------------------
# Accuracy at long positions

def measure_accuracy(args, compiled):
    rows = []
    hq, hkv, head_dim = 32, 8, 128
    for dtype_name in args.dtype_list:
        dtype = DTYPES[dtype_name]
        for style in args.style_list:
            for end in (32768, 1 << 20):
                gen = torch.Generator(device="cuda").manual_seed(100 + end)
                q = torch.randn(ACCURACY_TOKENS, hq, head_dim, device="cuda", generator=gen).to(dtype)
                k = torch.randn(ACCURACY_TOKENS, hkv, head_dim, device="cuda", generator=gen).to(dtype)
                positions = torch.arange(end - ACCURACY_TOKENS, end, device="cuda", dtype=torch.int64)
                # The HF table rows for these positions (identical to rows of a full table).
                cos_t, sin_t = hf_tables(positions.float(), head_dim, ACCURACY_THETA, style, dtype)
                index = torch.arange(ACCURACY_TOKENS, device="cuda")
                # float64 truth from the same (rounded) inputs.
                inv64 = 1.0 / (ACCURACY_THETA ** (torch.arange(0, head_dim, 2, device="cuda",
                                                              dtype=torch.float64) / head_dim))
                phase = positions.double()[:, None] * inv64[None, :]
                emb = torch.cat((phase, phase), -1) if style == "neox" else phase.repeat_interleave(2, -1)
                cos64, sin64 = emb.cos()[:, None, :], emb.sin()[:, None, :]
                rot = rotate_half if style == "neox" else rotate_every_two
                refs = [x.double() * cos64 + rot(x.double()) * sin64 for x in (q, k)]
                # The best any implementation storing `dtype` can do: the truth rounded to it.
                floor = max((ref.to(dtype).double() - ref).abs().max().item() for ref in refs)
                variants = [("eager", ROPE_FNS[style])]
                if compiled and compiled.get(style) is not None:
                    variants.append(("compiled", compiled[style]))
                for variant, fn in variants:
                    try:
                        outs = fn(q, k, cos_t, sin_t, index)
                    except Exception as e:
                        rows.append({"variant": variant, "dtype": dtype_name, "style": style,
                                     "error": f"{type(e).__name__}: {e}"[:500]})
                        continue
                    err2 = ref2 = 0.0
                    max_abs = 0.0
                    for out, ref in zip(outs, refs):
                        d = out.double() - ref
                        max_abs = max(max_abs, d.abs().max().item())
                        err2 += (d * d).sum().item()
                        ref2 += (ref * ref).sum().item()
                    rows.append({"variant": variant, "dtype": dtype_name, "style": style,
                                 "first_position": end - ACCURACY_TOKENS, "tokens": ACCURACY_TOKENS,
                                 "theta": ACCURACY_THETA, "max_abs_error": max_abs, "rounding_floor": floor,
                                 "rel_l2_error": math.sqrt(err2 / ref2)})
                    print(json.dumps({"accuracy": rows[-1]}), flush=True)
    return rows


# --------------------------------------------------------------------------------------

def fmt(x, spec):
    if x is None:  # keep the column: pad the dash to the width the spec names
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(width or 1))
    return format(x, spec)


def print_table(report):
    print("\n== Accuracy vs float64 (64 tokens, 32q/8kv, head_dim 128, theta 5e5; HF tables in the tensor dtype) ==")
    print("floor = max abs error of the float64 result rounded to the dtype: the best any kernel can do")
    print(f"{'variant':<9} {'dtype':<5} {'style':<12} {'positions':>17} {'max abs err':>12} {'floor':>12} "
          f"{'rel L2 err':>12}")
    for a in report["accuracy"]:
        if "error" in a:
            print(f"{a['variant']:<9} {a['dtype']:<5} {a['style']:<12} error: {a['error']}")
            continue
        pos = f"{a['first_position']}..{a['first_position'] + a['tokens'] - 1}"
        print(f"{a['variant']:<9} {a['dtype']:<5} {a['style']:<12} {pos:>17} "
              f"{a['max_abs_error']:12.3g} {a['rounding_floor']:12.3g} {a['rel_l2_error']:12.3g}")
    if report["kernels"]:
        print("\n== PyTorch RoPE (out of place) vs torch copy of the same Q+K; medians per call in us ==")
        print("eager decode figures include Python/launch overhead; graph = per apply in replayed CUDA graphs")
        print(f"{'tokens':>6} {'heads':>6} {'hd':>4} {'dtype':>5} {'style':<11} {'eager':>9} {'compiled':>9} "
              f"{'copy':>9} {'eager/cp':>8} {'comp/cp':>8} {'eagerG':>8} {'compG':>8}")
    for r in report["kernels"]:
        get = lambda key: (r.get(key) or {}).get("median_us")
        print(f"{r['tokens']:6d} {str(r['q_heads']) + '/' + str(r['kv_heads']):>6} {r['head_dim']:4d} "
              f"{r['dtype']:>5} {r['style']:<11} {fmt(get('eager'), '9.2f')} {fmt(get('compiled'), '9.2f')} "
              f"{fmt(get('copy'), '9.2f')} {fmt(r.get('eager_over_copy'), '8.2f')} "
              f"{fmt(r.get('compiled_over_copy'), '8.2f')} {fmt(get('eager_graph'), '8.2f')} "
              f"{fmt(get('compiled_graph'), '8.2f')}")
    sys.stdout.flush()


def main(argv):
    args = parse_args(argv)
    global torch
    try:
        import torch  # noqa: F401  (imported here so --help works without it)
    except ImportError as e:
        print(f"torch_rope_bench: cannot import torch: {e}", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("torch_rope_bench: no CUDA device visible to PyTorch", file=sys.stderr)
        return 3
    DTYPES.update({"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16})
    torch.cuda.set_device(args.device)
    props = torch.cuda.get_device_properties(args.device)
    l2 = getattr(props, "L2_cache_size", 0) or 0
    rotate_bytes = max(args.rotate_mib << 20, 4 * l2)
    report = {"tool": "torch_rope_bench", "commit": args.commit,
              "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "host": socket.gethostname(), "card": torch.cuda.get_device_name(args.device),
              "torch": torch.__version__, "cuda": torch.version.cuda, "l2_bytes": l2,
              "rotate_bytes": rotate_bytes, "positions": f"int64, uniform random in [0, {BENCH_MAX_POSITION})",
              "accuracy": [], "kernels": [], "error": ""}
    try:
        import triton
        report["triton"] = triton.__version__
    except ImportError:
        report["triton"] = None
    print(f"torch_rope_bench on {report['card']}, torch {report['torch']} (CUDA {report['cuda']}), "
          f"triton {report['triton']}, commit {args.commit}, {report['timestamp']}", flush=True)

    compiled = None
    if not args.no_compile:
        # Many shapes and dtypes: let dynamo keep them all instead of falling back to eager.
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 1024)
        compiled = {style: torch.compile(fn) for style, fn in ROPE_FNS.items()}

    class Stop(Exception):
        pass

    def on_signal(signum, frame):  # `timeout` sends SIGTERM: stop, but keep the JSON
        raise Stop(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    report["skipped_rows"] = []
    try:
        torch.manual_seed(0)
        if not args.skip_accuracy:
            report["accuracy"] = measure_accuracy(args, compiled)
        if not args.skip_kernels:
            tables = {}
            for head_dim in args.head_dim_list:
                for dtype_name in args.dtype_list:
                    for style in args.style_list:
                        pos = torch.arange(BENCH_MAX_POSITION, device="cuda", dtype=torch.float32)
                        tables[(head_dim, dtype_name, style)] = hf_tables(pos, head_dim, 10000.0, style,
                                                                          DTYPES[dtype_name])
            for dtype_name in args.dtype_list:
                for head_dim in args.head_dim_list:
                    for style in args.style_list:
                        for hq, hkv in args.head_pairs:
                            for tokens in args.tokens:
                                if args.time_budget_s and time.time() - started > args.time_budget_s:
                                    report["skipped_rows"].append([tokens, hq, hkv, head_dim, dtype_name, style])
                                    continue
                                row_started = time.time()
                                row = measure_row(args, compiled, tables, tokens, hq, hkv, head_dim, dtype_name,
                                                  style, rotate_bytes)
                                row["elapsed_s"] = time.time() - row_started
                                report["kernels"].append(row)
                                print(json.dumps(row), flush=True)
    except (Exception, KeyboardInterrupt, Stop) as e:  # keep what was measured; say what failed
        report["error"] = f"{type(e).__name__}: {e}"
        print(f"torch_rope_bench: FAILED: {report['error']}", file=sys.stderr)
    report["elapsed_s"] = time.time() - started
    print_table(report)
    if report["skipped_rows"]:
        print(f"\n{len(report['skipped_rows'])} rows skipped: --time_budget_s={args.time_budget_s} ran out")
    print(f"\nelapsed {report['elapsed_s']:.1f} s")
    if args.json_path:
        tmp = args.json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.json_path)
        print(f"\nJSON written to {args.json_path}")
    return 1 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
