# Times mamba_ssm's Triton SSD (mamba_chunk_scan_combined, the kernel vLLM and SGLang run
# for Mamba-2 prefill) at the shapes bench/ssd_bench.cc times Tessera's SsdScan: the
# nemotronh-8b Mamba layer (H 128 heads of P 64, N 128, G 8 groups, chunk 128), bf16 x, B, C,
# fp32 dt (already positive: no softplus, no bias), A and D, zero initial state, final state
# returned. CUDA events around each call, warm-up first (Triton compiles and autotunes on the
# first call), the median of timed repeats, fresh random inputs per length.
# With --tessera FILE (ssd_bench's output from the same device run) it prints one table with
# both and the ratios; quote the ratios, not the absolute times.
# Needs mamba_ssm's Triton sources (no build) at $MAMBA_SSM_SRC: ../shared/bench/README.md.
# Usage: python3 ssd_peer.py [--lengths 4096,16384,65536] [--tessera ssd_bench.txt]
import argparse
import os
import re
import sys

import torch
from torch_timing import median_ms  # bench/torch_timing.py, beside this file

sys.path.insert(0, os.environ.get("MAMBA_SSM_SRC",
                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "mamba_src")))
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: E402

H, P, N, G, Q = 128, 64, 128, 8, 128



def time_peer(L):
    gen = torch.Generator(device="cuda").manual_seed(L)
    uniform = lambda shape, lo, hi, dtype: (torch.rand(shape, device="cuda", generator=gen) * (hi - lo) + lo).to(dtype)
    x = uniform((1, L, H, P), -1.0, 1.0, torch.bfloat16)
    B = uniform((1, L, G, N), -1.0, 1.0, torch.bfloat16)
    C = uniform((1, L, G, N), -1.0, 1.0, torch.bfloat16)
    dt = uniform((1, L, H), 0.01, 0.2, torch.float32)
    A = uniform((H,), -8.0, -1.0, torch.float32)
    D = uniform((H,), 0.5, 1.5, torch.float32)
    out = {}

    def run():
        out["y"], out["state"] = mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=Q, D=D,
                                                           return_final_states=True)

    with torch.inference_mode():
        ms = median_ms(run, 3, 20)
    finite = bool(torch.isfinite(out["y"]).all()) and bool(torch.isfinite(out["state"]).all())
    return ms, finite, out["y"].dtype


def read_tessera(path):
    rows = {}
    if path and os.path.exists(path):
        for line in open(path):
            m = re.match(r"RESULT L=(\d+) bf16_ms=([\d.]+) f32_ms=([\d.]+) y_rel_l2_bf16_vs_f32=(\S+)"
                         r"(?: mma_ms=([\d.]+))?", line)
            if m:
                mma = float(m.group(5)) if m.group(5) else None
                rows[int(m.group(1))] = (float(m.group(2)), float(m.group(3)), float(m.group(4)), mma)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="4096,16384,65536")
    ap.add_argument("--tessera", default=None)
    args = ap.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}", flush=True)
    peer = {}
    for L in lengths:
        ms, finite, ydtype = time_peer(L)
        peer[L] = ms
        print(f"mamba_chunk_scan_combined L={L}: {ms:.3f} ms (y {ydtype}, outputs finite: {finite})", flush=True)
    tessera = read_tessera(args.tessera)
    print()
    print(f"SsdScan, nemotronh-8b layer (H {H}, P {P}, N {N}, G {G}, Q {Q}), bf16 x/B/C, one H200, "
          "CUDA-event medians; ratio = mamba_ssm ms / Tessera ms (>1: Tessera faster)")
    print("(Tessera bf16: the kernel SsdScan picks; mma: the mma.sync kernel, TESSERA_SSD_KERNEL=mma)")
    print("| L | Tessera bf16 ms | Tessera mma ms | Tessera fp32 ms | mamba_ssm bf16 ms | ratio bf16 | ratio mma "
          "| ratio fp32 | y bf16 vs fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for L in lengths:
        if L in tessera:
            b, f, d, mma = tessera[L]
            mma_ms, mma_ratio = ("-", "-") if mma is None else (f"{mma:.3f}", f"{peer[L] / mma:.2f}x")
            print(f"| {L} | {b:.3f} | {mma_ms} | {f:.3f} | {peer[L]:.3f} | {peer[L] / b:.2f}x | {mma_ratio} "
                  f"| {peer[L] / f:.2f}x | {d:.2e} |")
        else:
            print(f"| {L} | - | - | - | {peer[L]:.3f} | - | - | - | - |")


if __name__ == "__main__":
    main()
