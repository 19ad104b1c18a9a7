# PyTorch scaled_dot_product_attention at bench/attention_bench's shape (Hq=32,
# Hkv=8, D=128 or $SDPA_HEAD_DIM, causal, bf16, q_len = kv_len = L) through each backend named
# (cuDNN and flash by default), median of CUDA-event timings after warm-up, on
# random inputs. TFLOP/s count causal FLOPs as 4·L²·D·Hq / 2, as the C++ bench
# does. A backend that refuses GQA is given K and V with their heads repeated
# (same FLOPs; marked "kv expanded"). Run on the GPU host:
#   python3 bench/sdpa_bench.py [L ...]            (default 4096 16384 65536)
#   SDPA_BACKENDS=cudnn,flash,efficient python3 bench/sdpa_bench.py 16384
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_timing import median_ms  # bench/torch_timing.py, beside this file

Hq, Hkv = 32, 8
D = int(os.environ.get("SDPA_HEAD_DIM", "128"))
BACKENDS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}



def main():
    lengths = [int(a) for a in sys.argv[1:]] or [4096, 16384, 65536]
    names = os.environ.get("SDPA_BACKENDS", "cudnn,flash").split(",")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name()}")
    rows = []
    for L in lengths:
        flops = 4.0 * L * L * D * Hq / 2.0
        # (batch, heads, tokens, head_dim) views of (tokens, heads, head_dim) storage,
        # the layout cuda::Attention reads.
        q = torch.randn(1, L, Hq, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
        k = torch.randn(1, L, Hkv, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
        v = torch.randn(1, L, Hkv, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
        for name in names:
            note = ""
            try:
                with sdpa_kernel(BACKENDS[name]):
                    run = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                 enable_gqa=True)
                    run()
                    ms = median_ms(run)
            except RuntimeError as e:
                ke = k.repeat_interleave(Hq // Hkv, dim=1)
                ve = v.repeat_interleave(Hq // Hkv, dim=1)
                note = "kv expanded"
                try:
                    with sdpa_kernel(BACKENDS[name]):
                        run = lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
                        run()
                        ms = median_ms(run)
                except RuntimeError as e2:
                    print(f"sdpa {name:9s} L={L}: unavailable ({str(e).splitlines()[0]}; "
                          f"{str(e2).splitlines()[0]})")
                    continue
                finally:
                    del ke, ve
            rows.append((L, name, ms, flops / ms / 1e9, note))
            print(f"sdpa {name:9s} L={L:6d}: {ms:9.3f} ms  {flops / ms / 1e9:6.1f} TFLOP/s {note}",
                  flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    print("\n| L | kernel | ms | TFLOP/s |\n|---|---|---|---|")
    for L, name, ms, tflops, note in rows:
        print(f"| {L} | sdpa {name}{' (' + note + ')' if note else ''} D{D} | {ms:.3f} | "
              f"{tflops:.1f} |")


if __name__ == "__main__":
    main()
