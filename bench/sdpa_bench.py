# PyTorch scaled_dot_product_attention at the size of ssd_scan_bench's attention
# (L=8192, Hq=32, Hkv=8, D=128, causal), bf16 and fp32, median of CUDA-event
# timings after warm-up. Run on the GPU host: python3 bench/sdpa_bench.py [L]
import sys
import torch
import torch.nn.functional as F

L = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
Hq, Hkv, D = 32, 8, 128


def median_ms(fn, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]


flops = 4.0 * L * L * D * Hq / 2.0
for dtype in (torch.bfloat16, torch.float32):
    q = torch.randn(1, Hq, L, D, device="cuda", dtype=dtype)
    k = torch.randn(1, Hkv, L, D, device="cuda", dtype=dtype)
    v = torch.randn(1, Hkv, L, D, device="cuda", dtype=dtype)
    ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    print(f"torch SDPA {str(dtype):15s} L={L} Hq={Hq} Hkv={Hkv} D={D} causal: {ms:.3f} ms "
          f"({flops / ms / 1e9:.1f} TFLOP/s)  torch {torch.__version__}")
