#!/usr/bin/env python3
"""Markdown tables for BENCHMARKS.md from one GPU run's JSON: rope_bench.json (ours) and the
peer harness's peers.json (FlashInfer, SGLang), measured in the same call on the same card.

  python3 tools/bench_tables.py --rope_bench R.json --peers P.json

Ratios are against the copy of the same bytes measured by the same program in the same run;
"fastest peer / ours" above 1 means every peer was slower than ours."""
import argparse
import json


def median(timing):
    return timing["median_us"] if timing else None


def fmt(value, spec="%.2f"):
    return "-" if value is None else spec % value


def index(rows, key_fields):
    return {tuple(r[f] for f in key_fields): r for r in rows}


def layout_table(ours, peers, q, kv):
    print(f"\n### {q}q/{kv}kv, head_dim 128, bf16\n")
    print("| shape | ours us | copy us | ours / copy | FlashInfer us | SGLang us | ours, PDL us |"
          " SGLang, PDL us | FlashInfer / copy | SGLang / copy | fastest peer / ours |"
          " SGLang PDL / ours PDL |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for style in ("neox", "interleaved"):
        for tokens in (1, 64, 4096, 32768):
            key = (tokens, q, kv, 128, "bf16", style)
            mine = ours.get(key)
            fi = peers.get(("flashinfer",) + key)
            sg = peers.get(("sglang_no_pdl",) + key)
            sg_pdl = peers.get(("sglang",) + key)
            if mine is None:
                continue
            ours_us = median(mine["kernel"])
            ours_pdl_us = median(mine.get("kernel_pdl"))
            copy_us = median(mine["copy"])
            fi_us = median(fi["kernel"]) if fi else None
            sg_us = median(sg["kernel"]) if sg else None
            sg_pdl_us = median(sg_pdl["kernel"]) if sg_pdl else None
            fi_copy = fi_us / median(fi["copy"]) if fi else None
            sg_copy = sg_us / median(sg["copy"]) if sg else None
            plain_peers = [v for v in (fi_us, sg_us) if v is not None]
            fastest = min(plain_peers) / ours_us if plain_peers else None
            pdl_ratio = sg_pdl_us / ours_pdl_us if sg_pdl_us and ours_pdl_us else None
            print(f"| {tokens} tok, {style} | {fmt(ours_us)} | {fmt(copy_us)} | "
                  f"{fmt(ours_us / copy_us, '%.3fx')} | {fmt(fi_us)} | {fmt(sg_us)} | "
                  f"{fmt(ours_pdl_us)} | {fmt(sg_pdl_us)} | "
                  f"{fmt(fi_copy, '%.3fx')} | {fmt(sg_copy, '%.3fx')} | {fmt(fastest, '%.3f')} | "
                  f"{fmt(pdl_ratio, '%.3f')} |")


def graph_table(ours, peers):
    print("\n### Decode in a CUDA graph (per apply, dependent launches)\n")
    print("| shape | ours us | ours, PDL us | ours, PDL + early positions us |"
          " the same on the other kernel us | FlashInfer us |"
          " SGLang, no PDL us | SGLang, PDL us | fastest peer / ours with PDL |"
          " fastest peer / ours, early positions |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tokens in (1, 64):
        for q, kv in ((32, 8), (8, 1)):
            for style in ("neox", "interleaved"):
                key = (tokens, q, kv, 128, "bf16", style)
                mine = ours.get(key)
                if mine is None:
                    continue
                g = median(mine.get("graph_per_apply"))
                g_pdl = median(mine.get("graph_pdl_per_apply"))
                g_early = median(mine.get("graph_pdl_early_positions_per_apply"))
                g_other = median(mine.get("graph_pdl_early_positions_other_kernel_per_apply"))
                cells = []
                for name in ("flashinfer", "sglang_no_pdl", "sglang"):
                    row = peers.get((name,) + key)
                    cells.append(median(row.get("graph_per_apply")) if row else None)
                present = [c for c in cells if c is not None]
                ratio = min(present) / g_pdl if present and g_pdl else None
                ratio_early = min(present) / g_early if present and g_early else None
                print(f"| {tokens} tok, {q}q/{kv}kv, {style} | {fmt(g)} | {fmt(g_pdl)} | "
                      f"{fmt(g_early)} | {fmt(g_other)} | " + " | ".join(fmt(c) for c in cells)
                      + f" | {fmt(ratio, '%.3f')} | {fmt(ratio_early, '%.3f')} |")


def fused_table(ours_fused, peer_fused):
    print("\n### Fused RoPE + FP8 (E4M3) + paged KV-cache write, 32q/8kv, hd128\n")
    print("| shape | ours fused us | ours unfused us | ours copy us | ours / copy |"
          " FlashInfer us | FlashInfer, PDL us | FlashInfer copy us | FlashInfer / copy | FlashInfer / ours |"
          " ours, PDL us | ours, PDL + early positions us | FlashInfer PDL / ours PDL + early |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for style in ("neox", "interleaved"):
        for tokens in (1, 64, 4096, 32768):
            mine = ours_fused.get((tokens, style, "e4m3"))
            fi = peer_fused.get(("flashinfer_fp8_append", tokens, style))
            fi_pdl = peer_fused.get(("flashinfer_fp8_append_pdl", tokens, style))
            if mine is None and fi is None:
                continue
            f_us = median(mine["fused"]) if mine else None
            u_us = median(mine["unfused"]) if mine and mine.get("unfused") else None
            c_us = median(mine["copy"]) if mine else None
            fi_us = median(fi["kernel"]) if fi else None
            fi_pdl_us = median(fi_pdl["kernel"]) if fi_pdl else None
            fi_c = median(fi["copy"]) if fi else None
            f_pdl = median(mine.get("fused_pdl")) if mine else None
            f_early = median(mine.get("fused_pdl_early_positions")) if mine else None
            print(f"| {tokens} tok, {style} | {fmt(f_us)} | {fmt(u_us)} | {fmt(c_us)} | "
                  f"{fmt(f_us / c_us if f_us and c_us else None, '%.3fx')} | {fmt(fi_us)} | {fmt(fi_pdl_us)} | "
                  f"{fmt(fi_c)} | {fmt(fi_us / fi_c if fi_us and fi_c else None, '%.3fx')} | "
                  f"{fmt(fi_us / f_us if fi_us and f_us else None, '%.3f')} | "
                  f"{fmt(f_pdl)} | {fmt(f_early)} | "
                  f"{fmt(fi_pdl_us / f_early if fi_pdl_us and f_early else None, '%.3f')} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rope_bench", required=True)
    parser.add_argument("--peers", required=True)
    args = parser.parse_args()
    ours_json = json.load(open(args.rope_bench))
    peers_json = json.load(open(args.peers))
    fields = ("tokens", "q_heads", "kv_heads", "head_dim", "dtype", "style")
    ours = index(ours_json["kernels"], fields)
    peers = index(peers_json["kernels"], ("peer",) + fields)
    print(f"card: {ours_json.get('card')}; rope_jit commit {ours_json.get('commit')}; peers: "
          + ", ".join(f"{p['name']} {p['commit'][:12]}" for p in peers_json.get("peers", [])))
    for q, kv in ((32, 8), (8, 1)):
        layout_table(ours, peers, q, kv)
    graph_table(ours, peers)
    ours_fused = {}
    for row in ours_json.get("kv_cache", []):
        if row.get("q_heads") == 32 and row.get("kv_heads") == 8 and row.get("head_dim") == 128:
            cache = "e4m3" if row.get("cache_dtype") == "fp8_e4m3" else row.get("cache_dtype")
            ours_fused[(row["tokens"], row.get("style", "neox"), cache)] = row
    peer_fused = index(peers_json.get("fused_kv", []), ("peer", "tokens", "style"))
    fused_table(ours_fused, peer_fused)


if __name__ == "__main__":
    main()
