# The one way the PyTorch peers in bench/ time a call (METHOD.md): untimed
# warm-up runs, then the median of CUDA-event timings. Imported by
# sdpa_bench.py, ssd_peer.py and moe_peer.py from their own directory.
import torch


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
