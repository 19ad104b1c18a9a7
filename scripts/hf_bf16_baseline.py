#!/usr/bin/env python3
"""A plain bf16 implementation's error on the fixtures: the bar for Tessera's bf16 bounds.

Issue 13 bounds bf16 by "within 2x of a plain bf16 implementation's error". The plain implementation is
transformers itself: this loads each fixture's checkpoint in bfloat16 on the GPU, runs the reference
prompts uncached (as the fp32 references were made), and prints the same numbers `tessera eval` prints
against reference.safetensors: relative L2 over all prompt logits and the largest per-row relative L2
(a routing flip shows there), for every prompt length.

  python3 scripts/hf_bf16_baseline.py FIXTURE_DIR [FIXTURE_DIR ...]   (GPU host: torch + transformers)

Output: one line per fixture and length, `fixture NAME L=LEN prompt_rel_l2 X max_row_rel_l2 Y`, and the
versions used, so the numbers can be recorded with their provenance (tests/data/hf-tiny/bf16_baseline.txt).
"""
import json
import os
import struct
import sys

import torch
import transformers


def read_safetensors(path):
    """Tensors of a safetensors file as float32/int64 torch tensors (no safetensors package needed)."""
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        data = f.read()
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out, header.get("__metadata__", {})


def relative_l2(ours, ref):
    return float(torch.linalg.vector_norm(ours - ref) / torch.linalg.vector_norm(ref))


def main(dirs):
    print(f"torch {torch.__version__} transformers {transformers.__version__} device "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for d in dirs:
        name = os.path.basename(os.path.normpath(d))
        ref, meta = read_safetensors(os.path.join(d, "reference.safetensors"))
        lengths = json.loads(meta.get("lengths", "[]"))
        for dtype in (torch.float32, torch.bfloat16):
            try:
                model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=dtype)
            except TypeError:  # transformers 4.x spells it torch_dtype
                model = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=dtype)
            model = model.to(device).eval()
            for length in lengths:
                ids = ref[f"input_ids.{length}"].unsqueeze(0).to(device)
                with torch.no_grad():
                    logits = model(input_ids=ids, use_cache=False).logits[0].float().cpu()
                want = ref[f"logits.{length}"]
                rows = torch.linalg.vector_norm(logits - want, dim=-1) / torch.linalg.vector_norm(want, dim=-1)
                print(f"fixture {name} {str(dtype).replace('torch.', '')} L={length} "
                      f"prompt_rel_l2 {relative_l2(logits, want):.3e} max_row_rel_l2 {float(rows.max()):.3e}",
                      flush=True)
            del model


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
