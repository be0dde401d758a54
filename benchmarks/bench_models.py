"""Training-step time of every backbone: forward, backward and an optimiser step.

    python benchmarks/bench_models.py [--models gaitset gaitgl] [--shapes cpu paper]
                                      [--steps 3] [--channels-last] [--compile] [--device cuda]

Shapes:
- default: params.yaml's training, 32 x 22 frames, 16 frames per clip, P8 x K4, width 0.25;
- cpu:   the CPU profile, 32 x 22 frames, 16 frames per clip, P4 x K4, width 0.5;
- paper: 64 x 44, 30 frames, P8 x K8, width 1 (the papers' setting);
- ref:   64 x 44, 30 frames, P8 x K4, width 1 (the shape of the reference timing:
         GaitSet takes about 6.8 s per step in fp32 on 2 cores in the widely used implementation).

On CUDA the step runs under bf16 autocast. The loss is a stand-in (mean squared
embedding, plus cross-entropy where the model has logits): its cost is negligible
next to the backbone's.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from gaitflow.models import available, create_model
from gaitflow.models.base import to_channels_last

SHAPES = {
    "default": {"frame_shape": (32, 22), "frames": 16, "batch": (8, 4), "width": 0.25},
    "cpu": {"frame_shape": (32, 22), "frames": 16, "batch": (4, 4), "width": 0.5},
    "paper": {"frame_shape": (64, 44), "frames": 30, "batch": (8, 8), "width": 1.0},
    "ref": {"frame_shape": (64, 44), "frames": 30, "batch": (8, 4), "width": 1.0},
}


def step_time(name: str, shape: dict, steps: int, device: str, channels_last: bool, compile_: bool) -> float:
    torch.manual_seed(0)
    p, k = shape["batch"]
    model = create_model(name, frame_shape=shape["frame_shape"], width=shape["width"], num_classes=p).to(device)
    if channels_last:
        to_channels_last(model)
    run = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sils = (torch.rand(p * k, shape["frames"], *shape["frame_shape"], device=device) > 0.5).float()
    labels = torch.arange(p, device=device).repeat_interleave(k)

    def one():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            out = run(sils)
            loss = out.embeddings.float().pow(2).mean()
            if out.logits is not None:
                logits = out.logits.float()
                loss = loss + F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), labels.repeat_interleave(logits.shape[1])
                )
        loss.backward()
        opt.step()

    one()  # warm-up (and compilation)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=[m for m in available() if m != "gei"])
    ap.add_argument("--shapes", nargs="*", default=["cpu", "paper"], choices=list(SHAPES))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--channels-last", action="store_true", help="also time channels-last memory format")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = ap.parse_args()
    print(f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    variants = [("eager", False, False)]
    if args.channels_last:
        variants.append(("channels-last", True, False))
    if args.compile:
        variants.append(("compiled", False, True))
    print("| model | shape | " + " | ".join(f"{v[0]} s/step" for v in variants) + " | sequences/s |")
    print("| --- | --- | " + " | ".join("---" for _ in variants) + " | --- |")
    for name in args.models:
        for shape_name in args.shapes:
            shape = SHAPES[shape_name]
            times = []
            for _, cl, comp in variants:
                try:
                    times.append(step_time(name, shape, args.steps, args.device, cl, comp))
                except Exception as exc:  # noqa: BLE001 - a variant that does not apply is reported, not fatal
                    print(f"  {name} {shape_name}: {type(exc).__name__}: {exc}".splitlines()[0])
                    times.append(float("nan"))
            p, k = shape["batch"]
            best = min(t for t in times if t == t) if any(t == t for t in times) else float("nan")
            print(f"| {name} | {shape_name} | " + " | ".join(f"{t:.3f}" for t in times) + f" | {p * k / best:.1f} |")


if __name__ == "__main__":
    main()
