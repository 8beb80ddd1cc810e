#!/usr/bin/env python3
"""Times the full-size ViT-B/16 CLIP vision tower (random weights, the real config) on the
CPU: `transformers` in PyTorch against hipl's candle tower, in one run, and prints the ratio
(PyTorch time / hipl time; above 1 means hipl is faster).

Run from the repository root after building the example:
  cargo build --release --features candle --example clip_vision_bench
  python tools/bench_clip_vision.py [--batch 4] [--iters 5] [--threads 2]
Needs: pip install torch transformers safetensors.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
from transformers import CLIPConfig, CLIPModel

# openai/clip-vit-base-patch16
VIT_B16 = dict(
    text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8,
                     num_hidden_layers=12, eos_token_id=2),
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                       num_hidden_layers=12, image_size=224, patch_size=16),
    projection_dim=512,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--exe", default="target/release/examples/clip_vision_bench")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as d:
        model = CLIPModel(CLIPConfig(**VIT_B16, attn_implementation="eager")).eval()
        model.save_pretrained(d, safe_serialization=True)

        x = torch.randn(a.batch, 3, 224, 224)
        # full-size parity: the same pixels through both
        px, out_npy = os.path.join(d, "pixels.npy"), os.path.join(d, "embeds.npy")
        np.save(px, x.numpy())
        subprocess.run([a.exe, d, str(a.batch), "1", px, out_npy], check=True,
                       capture_output=True)
        with torch.inference_mode():
            ref = model.get_image_features(pixel_values=x)
        ref = getattr(ref, "pooler_output", ref).numpy()
        diff = float(np.abs(np.load(out_npy) - ref).max())
        print(f"ViT-B/16 image embeddings, hipl vs transformers: max abs diff {diff:.2e} "
              f"(|ref| max {np.abs(ref).max():.2f})")
        rounds = []
        for _ in range(2):  # alternate to even out other load on the machine
            with torch.inference_mode():
                model.get_image_features(pixel_values=x)
                ts = []
                for _ in range(a.iters):
                    t = time.perf_counter()
                    model.get_image_features(pixel_values=x)
                    ts.append(time.perf_counter() - t)
            torch_min = min(ts)
            env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
            out = subprocess.run([a.exe, d, str(a.batch), str(a.iters)], check=True,
                                 capture_output=True, text=True, env=env).stdout
            hipl_min = json.loads(out.strip().splitlines()[-1])["min_s"]
            rounds.append((torch_min, hipl_min))
        torch_min = min(r[0] for r in rounds)
        hipl_min = min(r[1] for r in rounds)
    print(f"ViT-B/16 vision tower, batch {a.batch}, {a.threads} threads, f32, best of "
          f"{2 * a.iters}: transformers {torch_min:.3f} s, hipl {hipl_min:.3f} s, "
          f"speed ratio hipl/PyTorch = {torch_min / hipl_min:.2f}x")


if __name__ == "__main__":
    main()
