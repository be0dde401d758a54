"""Time of one loss call (forward and backward) for every recipe in params.yaml.

    python benchmarks/bench_losses.py [--repeat 5]

Batches: CASIA-B-shaped (P=8 identities x K=16 sequences, 16 parts x 256 channels)
and large (P=32 x K=8, 16 x 256), with logits for 74 classes.
"""

from __future__ import annotations

import argparse
import time

import torch

from gaitflow.config import load_params
from gaitflow.losses.recipes import build_recipe

BATCHES = {"P8xK16": (8, 16), "P32xK8": (32, 8)}


class RandomTrainingSet:
    """Two random sequences per identity, for components that prepare from the training set (GSAM)."""

    def __init__(self, ids: int, parts: int, channels: int):
        self.labels = torch.arange(ids).repeat(2)
        self.shape = (ids * 2, parts, channels)

    def embed(self, model):
        return torch.randn(self.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--parts", type=int, default=16)
    ap.add_argument("--channels", type=int, default=256)
    args = ap.parse_args()
    recipes = load_params("params.yaml")["recipes"]
    threads = torch.get_num_threads()
    print(f"{threads} threads; {args.parts} parts x {args.channels} channels; ms per call (forward + backward)")
    print("| recipe | " + " | ".join(BATCHES) + " |")
    print("| --- | " + " | ".join("---" for _ in BATCHES) + " |")
    for name, spec in recipes.items():
        row = []
        for p, k in BATCHES.values():
            torch.manual_seed(0)
            ids = 74
            recipe = build_recipe(name, spec, ids, args.parts, args.channels)
            labels = torch.randperm(ids)[:p].repeat_interleave(k)
            emb = torch.randn(p * k, args.parts, args.channels, requires_grad=True)
            logits = torch.randn(p * k, args.parts, ids, requires_grad=True)
            recipe.prepare(None, RandomTrainingSet(ids, args.parts, args.channels))
            recipe.train()

            def call(recipe=recipe, emb=emb, logits=logits, labels=labels):
                total, _ = recipe(emb, logits, labels, 10, 100)
                total.backward()

            call()
            start = time.perf_counter()
            for _ in range(args.repeat):
                call()
            row.append((time.perf_counter() - start) / args.repeat * 1e3)
        print(f"| {name} | " + " | ".join(f"{ms:.1f}" for ms in row) + " |")


if __name__ == "__main__":
    main()
