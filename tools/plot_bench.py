#!/usr/bin/python3
"""Plots achieved bandwidth against tokens from the benchmark JSON of one GPU run.

Reads rope_bench's JSON (rope_jit and its device-to-device copy), optionally the peer
harness's JSON (FlashInfer's and SGLang's RoPE, their copy, FlashInfer's fused RoPE + FP8 +
paged KV append) and torch_rope_bench's JSON (eager and torch.compile'd PyTorch), and draws
one panel per head layout (columns) and RoPE style (rows), plus a panel for the fused
RoPE + KV-cache rows when there are any. Every line is GB/s against tokens (both axes log).

GB/s counts the same bytes for every implementation of a shape: Q and K read once and
written once (a row's `copy_bytes`, 2 x (Q+K bytes)) over the median time per apply, so the
lines compare times, and the copy line is the memory-bound ceiling. The fused panel counts
each row's own read + written bytes (its `copy_bytes`).

Runs on the development machine with Debian's matplotlib (python3-matplotlib, installed by
setup.sh), hence /usr/bin/python3:
  tools/plot_bench.py --rope_bench benchmarks/h200-X/rope_bench.json \
      --peers benchmarks/h200-X/peers.json --torch benchmarks/h200-X/torch_rope_bench.json \
      --out benchmarks/h200-X/bandwidth.png
"""

import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

HEAD_LAYOUTS = [(32, 8), (8, 1)]
STYLES = ["neox", "interleaved"]
MAX_RATIO_SHOWN = 2.5


def parse_args(argv):
    p = argparse.ArgumentParser(description="GB/s against tokens from rope_bench/peer/torch JSON")
    p.add_argument("--rope_bench", required=True, help="rope_bench --json output")
    p.add_argument("--peers", help="peer harness JSON (peers.json)")
    p.add_argument("--torch", help="torch_rope_bench.py --json output")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--head_dim", type=int, default=128)
    return p.parse_args(argv)


def load(path):
    with open(path) as f:
        return json.load(f)


def median_us(timing):
    if not isinstance(timing, dict):
        return None
    value = timing.get("median_us")
    return value if isinstance(value, (int, float)) and value > 0 else None


def gbps(row_bytes, timing):
    us = median_us(timing)
    return None if us is None or not row_bytes else row_bytes / us / 1e3


class Series:
    """Points (tokens, GB/s) per (panel, label), drawn in insertion order."""

    def __init__(self):
        self.points = {}  # (panel, label) -> {tokens: gbps}
        self.ratios = {}  # (panel, label) -> {tokens: time / the same run's copy time}
        self.styles = {}  # label -> matplotlib keyword arguments

    def add(self, panel, label, tokens, value, ratio=None, **style):
        if value is None:
            return
        self.points.setdefault((panel, label), {})[tokens] = value
        if ratio is not None:
            self.ratios.setdefault((panel, label), {})[tokens] = ratio
        self.styles.setdefault(label, style)

    def labels(self, panel):
        return [label for (p, label) in self.points if p == panel]


def ratio(timing, copy):
    """Time over the copy's time from the same run (the tables' ratio column)."""
    us, copy_us = median_us(timing), median_us(copy)
    return None if us is None or copy_us is None else us / copy_us


def matches(row, dtype, head_dim):
    return row.get("dtype") == dtype and row.get("head_dim") == head_dim


OURS = dict(color="black", marker="o", linewidth=2)
COPY = dict(color="gray", linestyle="--", marker="s")
PEER_COPY = dict(color="silver", linestyle=":", marker=None)
PEER_COLORS = {"flashinfer": "tab:blue", "flashinfer_pos_ids": "tab:cyan", "sglang": "tab:red",
               "sglang_no_pdl": "tab:orange", "flashinfer_fp8_append": "tab:blue",
               "flashinfer_fp8_append_pdl": "tab:cyan"}


def add_timing(series, panel, label, row, key, style, row_bytes=None):
    """One point of `label`: the bytes (row["copy_bytes"] by default) over row[key]'s median
    time, and that time over row["copy"]'s."""
    row_bytes = row["copy_bytes"] if row_bytes is None else row_bytes
    series.add(panel, label, row["tokens"], gbps(row_bytes, row.get(key)),
               ratio(row.get(key), row.get("copy")), **style)


def rope_panel(row):
    return (row["q_heads"], row["kv_heads"], row["style"])


def fused_panel(row):
    return ("fused", row["q_heads"], row["kv_heads"], row["style"])


def collect(args):
    series = Series()
    rope = load(args.rope_bench)
    commits = [f"rope_jit {rope.get('commit', '?')}"]
    for row in rope.get("kernels", []):
        if matches(row, args.dtype, args.head_dim):
            add_timing(series, rope_panel(row), "rope_jit", row, "kernel", OURS)
            add_timing(series, rope_panel(row), "D2D copy", row, "copy", COPY)
    # Our fused RoPE + KV-cache write (rope_bench part 5, "kv_cache": NeoX rows, a bf16
    # and an E4M3 cache): GB/s of the bytes it moves ("fused_bytes"); the ratio is against
    # the same run's copy of the QKV bytes.
    for row in rope.get("kv_cache", []):
        panel = ("fused", row["q_heads"], row["kv_heads"], row.get("style", "neox"))
        e4m3 = row.get("cache_dtype") == "fp8_e4m3"
        label = "rope_jit fused, e4m3 cache" if e4m3 else "rope_jit fused, bf16 cache"
        style = OURS if e4m3 else dict(color="dimgray", marker="o", linewidth=1)
        add_timing(series, panel, label, row, "fused", style, row_bytes=row["fused_bytes"])

    if args.peers:
        peers = load(args.peers)
        for peer in peers.get("peers", []):
            commits.append(f"{peer.get('name')} {str(peer.get('commit', '?'))[:12]}")
        for row in peers.get("kernels", []):
            if matches(row, args.dtype, args.head_dim):
                style = dict(color=PEER_COLORS.get(row["peer"]), marker="^")
                add_timing(series, rope_panel(row), row["peer"], row, "kernel", style)
                add_timing(series, rope_panel(row), "D2D copy (peer run)", row, "copy",
                           PEER_COPY)
        for row in peers.get("fused_kv", []):
            style = dict(color=PEER_COLORS.get(row["peer"]), marker="^")
            add_timing(series, fused_panel(row), row["peer"], row, "kernel", style)
            add_timing(series, fused_panel(row), "D2D copy (fused bytes)", row, "copy", COPY)

    if args.torch:
        torch_run = load(args.torch)
        commits.append(f"torch {torch_run.get('torch', '?')}")
        for row in torch_run.get("kernels", []):
            if matches(row, args.dtype, args.head_dim):
                qk_rw_bytes = 2 * row["qk_bytes"]
                add_timing(series, rope_panel(row), "torch.compile", row, "compiled",
                           dict(color="tab:green", marker="v"), qk_rw_bytes)
                add_timing(series, rope_panel(row), "eager PyTorch", row, "eager",
                           dict(color="tab:olive", marker="v", linestyle="-."), qk_rw_bytes)
    return series, rope.get("card", "?"), commits


def panel_title(panel):
    if panel[0] == "fused":
        _, q, kv, style = panel
        return f"fused RoPE + KV cache, {q}q/{kv}kv, {style}"
    q, kv, style = panel
    return f"{q}q/{kv}kv, {style}"


def draw(series, card, commits, args):
    panels = [(q, kv, style) for style in STYLES for (q, kv) in HEAD_LAYOUTS]
    fused = sorted({p for (p, _) in series.points if p[0] == "fused"},
                   key=lambda p: (p[1], p[2], STYLES.index(p[3]) if p[3] in STYLES else 9))
    panels = [p for p in panels if series.labels(p)] + fused
    if not panels:
        sys.exit(f"plot_bench: no {args.dtype} head_dim {args.head_dim} rows in the input")
    columns = len(HEAD_LAYOUTS)
    rows = (len(panels) + columns - 1) // columns
    # Each panel: GB/s on top, time over the same run's copy below (the tables' ratios,
    # where a few percent are visible).
    fig = plt.figure(figsize=(6.5 * columns, 6.0 * rows))
    grid = fig.add_gridspec(2 * rows, columns, height_ratios=[2.2, 1] * rows)
    for index, panel in enumerate(panels):
        row, column = divmod(index, columns)
        top = fig.add_subplot(grid[2 * row, column])
        bottom = fig.add_subplot(grid[2 * row + 1, column], sharex=top)
        highest = 1.0
        for label in series.labels(panel):
            points = sorted(series.points[(panel, label)].items())
            style = series.styles[label]
            top.plot([t for t, _ in points], [g for _, g in points], label=label, **style)
            ratios = sorted(series.ratios.get((panel, label), {}).items())
            if ratios:
                bottom.plot([t for t, _ in ratios], [r for _, r in ratios], **style)
                highest = max(highest, max(r for _, r in ratios))
        if highest > MAX_RATIO_SHOWN:  # PyTorch's 3-17x would flatten the few percent that matter
            bottom.set_ylim(0.95, MAX_RATIO_SHOWN)
            bottom.text(0.99, 0.95, f"off scale above {MAX_RATIO_SHOWN}x", ha="right", va="top",
                        transform=bottom.transAxes, fontsize=7)
        top.set_xscale("log", base=2)
        top.set_yscale("log")
        is_fused = panel[0] == "fused"
        top.set_ylabel("GB/s (read + written)" if is_fused else "GB/s (Q+K read + written)")
        top.set_title(panel_title(panel))
        top.grid(True, which="both", alpha=0.3)
        top.legend(fontsize=7)
        top.tick_params(labelbottom=False)
        bottom.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        bottom.set_ylabel("time / copy time")
        bottom.set_xlabel("tokens")
        bottom.grid(True, which="both", alpha=0.3)
    title = f"{card}, {args.dtype}, head_dim {args.head_dim}: " + ", ".join(commits)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(args.out, dpi=110)
    print(f"plot_bench: wrote {args.out} ({len(panels)} panels)")


def main(argv):
    args = parse_args(argv)
    series, card, commits = collect(args)
    draw(series, card, commits, args)


if __name__ == "__main__":
    main(sys.argv[1:])
