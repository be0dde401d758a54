"""GaitGL training-step time on the CPU, gaitflow next to the reference framework (OpenGait).

    python benchmarks/bench_gaitgl_step.py [--steps 5] [--warmup 2] [--pairs 2] [--threads 2]
                                     [--reference /tmp/ogref] [--gaitflow-src DIR] [--profile]

The step, the same work on both sides: CASIA-B GaitGL (channels 32-64-128, 74
classes) at the papers' shape, a batch of 8 x 4 sequences of 30 binary-noise
silhouettes of 64 x 44 (float32 [32, 30, 64, 44]), forward in train mode, the
loss ``embeddings.mean() + logits.mean()`` (so that the loss costs the same on
both sides), backward and an SGD step (lr 0.1, momentum 0.9, weight decay 5e-4).
gaitflow's model runs as training runs it: ``to_channels_last`` applied when
``train.channels_last`` is set in params.yaml.

Each side runs in its own process with ``torch.set_num_threads(threads)``: after
``--warmup`` steps, ``--steps`` steps are timed one by one and the median is
reported, with the median CPU time of a step (all threads; on a shared machine
the wall-clock time also holds waits for other processes, and the load average
is printed before and after). The pair (gaitflow, then the reference) is run
``--pairs`` times one after the other, to show the spread, and the ratio
gaitflow / reference is printed for each pair. ``--gaitflow-src`` times the
gaitflow package of another source tree (another checkout), to compare revisions.

The reference side imports OpenGait's own GaitGL class from a checkout outside
this project, with that checkout's Python environment: ``<reference>/OpenGait``
(the repository), ``<reference>/venv`` (its interpreter), ``<reference>/standin``
(a stand-in for torchvision, which the model code imports but does not use).
The class is built without OpenGait's training framework (``build_network`` and
``init_parameters`` on a bare instance). Without that checkout the reference
side is skipped and only gaitflow's figures are printed.

``--profile`` prints, instead, a torch.profiler table of one gaitflow step
(operators sorted by their own CPU time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH = (8, 4)
FRAMES = 30
FRAME_SHAPE = (64, 44)
CHANNELS = [32, 64, 128]
CLASSES = 74
ROOT = Path(__file__).resolve().parents[1]


def _inputs():
    import torch

    torch.manual_seed(0)
    p, k = BATCH
    return (torch.rand(p * k, FRAMES, *FRAME_SHAPE) > 0.5).float()


def _time_steps(step, warmup: int, steps: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (all threads of the process) of each timed step."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def _optimizer(model):
    import torch

    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def gaitflow_step():
    """gaitflow's GaitGL, set up as training sets it up, and one training step over it."""
    import torch
    import yaml

    import gaitflow
    from gaitflow.models import create_model
    from gaitflow.models.base import to_channels_last

    torch.manual_seed(0)
    model = create_model("gaitgl", frame_shape=FRAME_SHAPE, width=1.0, num_classes=CLASSES)
    params = yaml.safe_load((Path(gaitflow.__file__).parents[1] / "params.yaml").read_text())
    channels_last = bool(params["train"]["channels_last"])
    if channels_last:
        to_channels_last(model)
    model.train()
    opt = _optimizer(model)
    sils = _inputs()

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(sils)
        loss = out.embeddings.mean() + out.logits.mean()
        loss.backward()
        opt.step()

    return step, {"channels_last": channels_last, "source": str(Path(gaitflow.__file__).parent)}


def reference_step(reference: Path):
    """OpenGait's GaitGL class (CASIA-B config), built outside its framework, and one training step."""
    import importlib
    import types

    import torch
    import torch.nn as nn
    import yaml

    sys.path[:0] = [str(reference / "standin"), str(reference / "OpenGait" / "opengait")]
    pkg = types.ModuleType("modeling.models")  # the package's __init__ imports every model
    pkg.__path__ = [str(reference / "OpenGait" / "opengait" / "modeling" / "models")]
    import modeling  # noqa: F401 - the parent package must be imported before its stand-in child

    sys.modules["modeling.models"] = pkg
    cls = importlib.import_module("modeling.models.gaitgl").GaitGL

    cfg = yaml.safe_load((reference / "OpenGait" / "configs" / "gaitgl" / "gaitgl.yaml").read_text())
    cfg["model_cfg"] = {**cfg["model_cfg"], "channels": CHANNELS, "class_num": CLASSES}

    class Log:
        def log_info(self, *a, **k):
            pass

        log_warning = log_info

    torch.manual_seed(0)
    model = cls.__new__(cls)
    nn.Module.__init__(model)
    model.cfgs, model.msg_mgr = cfg, Log()
    model.build_network(cfg["model_cfg"])
    model.init_parameters()
    model.train()
    opt = _optimizer(model)
    sils = _inputs()
    labels = torch.arange(BATCH[0]).repeat_interleave(BATCH[1])

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(([sils], labels, None, None, None))["training_feat"]
        loss = out["triplet"]["embeddings"].mean() + out["softmax"]["logits"].mean()
        loss.backward()
        opt.step()

    commit = "unknown"
    head = reference / "OpenGait" / ".git" / "HEAD"
    if head.exists():
        try:
            commit = subprocess.check_output(
                ["git", "-C", str(reference / "OpenGait"), "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL
            ).strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return step, {"commit": commit}


def run_side(args) -> None:
    """One side, in this process: prints one JSON line with its step times."""
    import torch

    torch.set_num_threads(args.threads)
    if args.side == "gaitflow":
        step, info = gaitflow_step()
    else:
        step, info = reference_step(Path(args.reference))
    wall, cpu = _time_steps(step, args.warmup, args.steps)
    info.update(times=wall, cpu=cpu, threads=torch.get_num_threads(), torch=torch.__version__)
    print(json.dumps(info))


def spawn(python: str, side: str, args) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup), "--threads", str(args.threads), "--reference", str(args.reference)]
    env = dict(os.environ, PYTHONPATH=str(args.gaitflow_src) if side == "gaitflow" else "")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def profile(args) -> None:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(args.threads)
    step, _ = gaitflow_step()
    for _ in range(args.warmup):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--pairs", type=int, default=2, help="how many times the pair of sides is run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference", default="/tmp/ogref", help="OpenGait checkout with its venv and stand-ins")
    ap.add_argument(
        "--gaitflow-src",
        default=str(ROOT),
        help="folder whose gaitflow package is timed (another checkout, to compare revisions); this one by default",
    )
    ap.add_argument("--profile", action="store_true", help="profile one gaitflow step instead")
    ap.add_argument("--side", choices=["gaitflow", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        run_side(args)
        return
    if args.profile:
        profile(args)
        return

    reference = Path(args.reference)
    ref_python = reference / "venv" / "bin" / "python"
    have_ref = (reference / "OpenGait" / "opengait" / "modeling" / "models" / "gaitgl.py").exists()
    have_ref = have_ref and ref_python.exists()
    if not have_ref:
        print(f"reference skipped: no OpenGait checkout with its venv at {reference} (see --reference)")
    p, k = BATCH
    print(
        f"GaitGL CASIA-B train step, [{p * k}, {FRAMES}, {FRAME_SHAPE[0]}, {FRAME_SHAPE[1]}] float32, "
        f"{args.threads} threads, median of {args.steps} steps after {args.warmup} warm-up steps"
    )
    print(f"load average before: {_load()}")
    columns = ["pair", "gaitflow s/step", "reference s/step", "gaitflow / reference", "gaitflow CPU s/step"]
    print("| " + " | ".join([*columns, "reference CPU s/step"]) + " |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i in range(args.pairs):
        ours = spawn(sys.executable, "gaitflow", args)
        t_ours, c_ours = statistics.median(ours["times"]), statistics.median(ours["cpu"])
        if have_ref:
            theirs = spawn(str(ref_python), "reference", args)
            t_ref, c_ref = statistics.median(theirs["times"]), statistics.median(theirs["cpu"])
            print(f"| {i + 1} | {t_ours:.3f} | {t_ref:.3f} | {t_ours / t_ref:.2f} | {c_ours:.2f} | {c_ref:.2f} |")
        else:
            print(f"| {i + 1} | {t_ours:.3f} | skipped | - | {c_ours:.2f} | - |")
        sys.stdout.flush()
    print(f"load average after: {_load()}")
    print(f"gaitflow: {ours['source']}, torch {ours['torch']}, channels_last {ours['channels_last']}")
    print(f"  last pair's steps (s): {_rounded(ours['times'])}")
    if have_ref:
        print(f"reference: OpenGait {theirs['commit']}, torch {theirs['torch']}")
        print(f"  last pair's steps (s): {_rounded(theirs['times'])}")


def _load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine inflates wall-clock times."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _rounded(times: list[float]) -> list[float]:
    return [round(t, 3) for t in times]


if __name__ == "__main__":
    main()
