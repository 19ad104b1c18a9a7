# Times the MoE layer bench/moe_bench.cc times for Tessera, in PyTorch: the nemotron-3-nano
# shape (H 2688, E 128 experts, top 6, I 1856, relu² experts, bf16), sigmoid routing with a
# correction bias (topk of the biased scores, weights from the unbiased ones, renormalised,
# times 2.5), then the tokens sorted by expert (stable argsort, bincount, cumsum), x gathered,
# torch._grouped_mm for every expert's up and down projection in one call each (a loop over
# experts with torch.mm where _grouped_mm is missing), relu² between, and the weighted rows
# added back with index_add_ into an fp32 y. CUDA events, warm-up, the median of timed repeats,
# fresh random data per size.
# With --tessera FILE (moe_bench's output from the same device run) it prints one table with
# both and the ratios (Tessera time / PyTorch time: below 1 means Tessera is faster).
# Usage: python3 moe_peer.py [--sizes 1,8,64,16384,65536] [--tessera moe_bench.txt]
import argparse
import os
import re

import torch
from torch_timing import median_ms  # bench/torch_timing.py, beside this file

H, E, K, I = 2688, 128, 6, 1856
SCALING = 2.5



def has_grouped_mm():
    if not hasattr(torch, "_grouped_mm"):
        return False
    try:
        a = torch.randn(32, 64, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(2, 48, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)  # (2, 64, 48), as up_t
        offs = torch.tensor([16, 32], device="cuda", dtype=torch.int32)
        torch._grouped_mm(a, b, offs=offs)
        torch.cuda.synchronize()
        return True
    except Exception as e:  # noqa: BLE001
        print(f"torch._grouped_mm unusable ({e}); looping over experts")
        return False


def route(logits, bias):
    scores = logits.sigmoid()
    _, ids = (scores + bias).topk(K, dim=-1)
    w = scores.gather(1, ids)
    w = w / (w.sum(-1, keepdim=True) + 1e-20) * SCALING
    return ids, w


def experts(x, ids, w, up_t, down_t, y, grouped):
    flat = ids.reshape(-1)
    order = flat.argsort(stable=True)
    tok = order // K
    xs = x[tok]  # (T·k, H), rows by expert
    counts = torch.bincount(flat, minlength=E)
    if grouped:
        offs = counts.cumsum(0).to(torch.int32)
        h = torch._grouped_mm(xs, up_t, offs=offs)  # (T·k, I)
        a = torch.relu(h).square()
        o = torch._grouped_mm(a, down_t, offs=offs)  # (T·k, H)
    else:
        o = torch.empty(xs.shape[0], H, device=x.device, dtype=x.dtype)
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n:
                a = torch.relu(xs[start:start + n] @ up_t[e]).square()
                o[start:start + n] = a @ down_t[e]
            start += n
    y.index_add_(0, tok, o.float() * w.reshape(-1)[order].unsqueeze(1))


def time_peer(T, up_t, down_t, grouped):
    gen = torch.Generator(device="cuda").manual_seed(1000 + T)
    x = (torch.rand(T, H, device="cuda", generator=gen) * 2 - 1).to(torch.bfloat16)
    logits = torch.rand(T, E, device="cuda", generator=gen) * 8 - 4
    bias = (torch.rand(E, device="cuda", generator=gen) - 0.5) * 0.1
    y = torch.zeros(T, H, device="cuda", dtype=torch.float32)
    repeats = 10 if T >= 16384 else 50
    with torch.inference_mode():
        ids, w = route(logits, bias)
        route_ms = median_ms(lambda: route(logits, bias), 3, repeats)
        experts_ms = median_ms(lambda: experts(x, ids, w, up_t, down_t, y, grouped), 3, repeats)
    finite = bool(torch.isfinite(y).all())
    return route_ms, experts_ms, finite


def read_tessera(path):
    rows = {}
    if path and os.path.exists(path):
        for line in open(path):
            m = re.match(r"RESULT T=(\d+) route_ms=([\d.]+) experts_ms=([\d.]+) dense_ms=([\d.]+) check=(\S+)", line)
            if m:
                rows[int(m.group(1))] = tuple(float(v) for v in m.groups()[1:])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,8,64,16384,65536")
    ap.add_argument("--tessera", default=None)
    args = ap.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}", flush=True)
    grouped = has_grouped_mm()
    gen = torch.Generator(device="cuda").manual_seed(7)
    up = ((torch.rand(E, I, H, device="cuda", generator=gen) - 0.5) * 0.06).to(torch.bfloat16)
    down = ((torch.rand(E, H, I, device="cuda", generator=gen) - 0.5) * 0.06).to(torch.bfloat16)
    up_t, down_t = up.transpose(1, 2), down.transpose(1, 2)  # (E, H, I), (E, I, H) column-major views
    peer = {}
    for T in sizes:
        peer[T] = time_peer(T, up_t, down_t, grouped)
        r, e, finite = peer[T]
        print(f"RESULT_PEER T={T} route_ms={r:.5f} experts_ms={e:.5f} finite={finite}", flush=True)
    tessera = read_tessera(args.tessera)
    impl = "torch._grouped_mm" if grouped else "torch.mm loop"
    print(f"\nMoE layer H={H} E={E} k={K} I={I} relu2 bf16; TFLOP/s of the active FLOPs 4·T·k·H·I; "
          f"ratios: Tessera time / other time; PyTorch = {impl} + index_add_")
    print("| T | Tessera route+experts ms | experts ms | TFLOP/s | dense cuBLAS ms | vs dense | "
          "PyTorch route+experts ms | PyTorch TFLOP/s | vs PyTorch | check |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for T in sizes:
        flops = 4.0 * T * K * H * I
        pr, pe, finite = peer[T]
        p_total = pr + pe
        if T in tessera:
            tr, te, dense, check = tessera[T]
            t_total = tr + te
            print(f"| {T} | {t_total:.4f} | {te:.4f} | {flops / te / 1e9:.1f} | {dense:.4f} | {te / dense:.2f}x | "
                  f"{p_total:.4f} | {flops / pe / 1e9:.1f} | {t_total / p_total:.2f}x | {check:.1e} |")
        else:
            print(f"| {T} | - | - | - | - | - | {p_total:.4f} | {flops / pe / 1e9:.1f} | - | - |")
        if not finite:
            print(f"  (PyTorch output not finite at T={T})")


if __name__ == "__main__":
    main()
