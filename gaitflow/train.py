"""One training run: a backbone trained with a loss recipe on a packed dataset.

``gaitflow train --dataset D --backbone B --recipe R`` writes the run folder
``models/<D>/<B>-<R>/`` (its files: :mod:`gaitflow.runs`). :func:`train` reads
top to bottom: set up the processes (the device, torchrun's process group, the
threads); build the data, model, loss recipe and optimiser; resume from the
checkpoint, or start (the recipe's prepare); iterate, one step per iteration
(batch, forward, recipe, backward, log, checkpoint); finish (promote the work
folder, the summary). It knows no loss by name: whatever a loss component needs
happens in the recipe.

Safe to interrupt: checkpoints are written atomically every
``train.checkpoint_every`` iterations and at the end, and the same command
resumes from the last one, ending with the same weights as an uninterrupted run
on the CPU. SIGTERM and SIGUSR1 (a scheduler's warning before a time limit or
preemption) write a checkpoint after the current iteration and exit non-zero.
Under the workflow (``--work``) the checkpoints live in a work folder outside the
declared output, which Snakemake and DVC delete when a job fails: a killed job
resumes on the next invocation if its settings, code and data are unchanged
(``run_key``), starts over otherwise, and the finished run is promoted into the
output (its work folder kept until the workflow has the output: a kill while finishing costs no
retrain). A NaN or inf loss stops the run with one line and keeps the last
good checkpoint. Checkpoints load with ``weights_only=True``: a checkpoint from
elsewhere cannot run code.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from gaitflow.data.dataset import PackedDataset
from gaitflow.data.sampler import PKSampler, clip_batch
from gaitflow.data.transforms import augment
from gaitflow.errors import GaitflowError
from gaitflow.losses.recipes import build_recipe
from gaitflow.models.base import to_channels_last
from gaitflow.optim import build_optimizer, build_scheduler
from gaitflow.runs import CHECKPOINT, CONFIG, LOG, build_model, embed, load_checkpoint, resolve_device


def run_config(params: dict, dataset: str, backbone: str, recipe: str, seed: int | None = None) -> dict:
    """Everything that determines a run's result (written to config.yaml, hashed into the checkpoint).
    ``seed``: the training seed (default: params ``seed``)."""
    if recipe not in params["recipes"]:
        raise GaitflowError(
            f"--recipe {recipe!r}: not in params.yaml recipes; expected one of: {', '.join(sorted(params['recipes']))}"
        )
    if backbone not in params["backbones"]:
        raise GaitflowError(
            f"--backbone {backbone!r}: not in params.yaml backbones; expected one of: "
            f"{', '.join(sorted(params['backbones']))}"
        )
    return {
        "dataset": dataset,
        "backbone": backbone,
        "recipe": recipe,
        "seed": params["seed"] if seed is None else seed,
        "backbone_params": params["backbones"][backbone],
        "recipe_params": params["recipes"][recipe],
        "train": params["train"],
        "preprocess": params["preprocess"],
    }


def config_hash(config: dict) -> str:
    """A device-independent digest of the run's configuration."""
    cfg = {k: v for k, v in config.items() if k != "device"}
    cfg["train"] = {k: v for k, v in cfg["train"].items() if k not in ("device", "threads", "log_every")}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) under torchrun; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """Concatenate every process's slice of the batch; the local slice keeps its gradient, and the
    backward sums each slice's gradient over processes, so DDP's averaging gives the true gradient
    of the loss on the global batch."""
    if world == 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x))


def batch_stream(
    data, train_idx, labels, sampler, rng, cfg, rank: int, world: int, device: torch.device, prefetch: bool
):
    """Training batches (x, y, pos, state_after): `state_after` is the sampler and random state right
    after drawing the batch, which is what a checkpoint taken after its step must hold to resume
    exactly. With `prefetch` (CUDA) a background thread prepares the next batch in pinned memory
    while the GPU computes."""
    import queue
    import threading

    def make():
        pos = next(sampler)[rank::world]  # this process's slice of the global P x K batch
        clips = clip_batch(data, train_idx[pos], cfg["frames"], cfg["frame_sampling"], rng, cfg["skip"])
        x = augment(torch.from_numpy(clips).float().div_(255), rng, **cfg["augment"])
        state = {"sampler": sampler.state_dict(), "rng": rng.bit_generator.state}
        if device.type == "cuda":
            x = x.pin_memory()
        return x, torch.from_numpy(labels[pos]), pos, state

    if not prefetch:
        while True:
            yield make()
    ready: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            item = make()
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            yield ready.get()
    finally:
        stop.set()


class TrainingSet:
    """The training sequences as loss components see them before iteration 1 (``Component.prepare``)."""

    def __init__(self, data: PackedDataset, indices: np.ndarray, labels: np.ndarray, device, max_frames: int):
        self.data, self.indices, self.device, self.max_frames = data, indices, device, max_frames
        self.labels = torch.from_numpy(labels).to(device)

    def embed(self, model: torch.nn.Module) -> torch.Tensor:
        return embed(model, self.data, self.indices, self.device, self.max_frames).to(self.device)


# Free bytes below which a failed write is put down to a full disk (torch's zip writer says only
# "unexpected pos" when the disk fills under it).
_FULL_BELOW = 1 << 20


def save_atomic(obj, path: Path) -> None:
    """Write ``<path>.tmp-<pid>``, then rename it onto ``path``: a kill or a full disk leaves the
    previous file whole. A write that fails removes its partial file and raises OSError, with
    ENOSPC when the disk is full."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if isinstance(exc, RuntimeError) and shutil.disk_usage(path.parent).free >= _FULL_BELOW:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc


def _disk_full(path: Path, what: str, kept: int | None) -> GaitflowError:
    """One line for a write that found the disk full: what was lost, what is intact, how to go on."""
    free = shutil.disk_usage(path.parent).free
    intact = (
        f"the checkpoint of iteration {kept} is intact: free space and run the same command again to resume from it"
        if kept
        else "no checkpoint was written yet: free space and run the same command again"
    )
    return GaitflowError(
        f"{path}: {what} could not be written: no space left on its disk ({free:,} bytes free); {intact}"
    )


def _file_sha(path: Path) -> str:
    if not path.is_file():
        raise GaitflowError(f"--init-from: {path} not found; expected a run folder holding {CHECKPOINT}")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def start_from(model: torch.nn.Module, run_dir: Path, backbone: str, classes: int) -> list[str]:
    """Load another run's weights into a fresh model (fine-tuning). Every tensor must fit, except
    a classifier's class dimension (another dataset's identities): those start fresh. Returns the
    names of the tensors that were not taken."""
    from gaitflow.runs import read_config

    other = read_config(run_dir)
    if other["backbone"] != backbone:
        raise GaitflowError(f"--init-from {run_dir}: a {other['backbone']} run; this run trains {backbone}")
    state = load_checkpoint(run_dir / CHECKPOINT)["model"]
    ours = model.state_dict()
    fresh = []
    for key, tensor in ours.items():
        theirs = state.get(key)
        if theirs is not None and theirs.shape == tensor.shape:
            continue
        differ = (
            []
            if theirs is None or theirs.dim() != tensor.dim()
            else [i for i, (a, b) in enumerate(zip(theirs.shape, tensor.shape)) if a != b]
        )
        if len(differ) == 1 and tensor.shape[differ[0]] == classes:
            fresh.append(key)
            continue
        found = "missing" if theirs is None else f"{list(theirs.shape)}"
        raise GaitflowError(
            f"--init-from {run_dir}: its weights do not fit this {backbone} ({key}: {found}, expected "
            f"{list(tensor.shape)}); use the same train.width and backbone parameters"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in ours and k not in fresh}, strict=False)
    return fresh


def run_key(config: dict, data_dir: Path) -> str:
    """What a checkpoint must have been written under for a run to resume from it: the run's
    settings, the library code training runs and the packed data."""
    from gaitflow import workflow
    from gaitflow.tracking import data_version

    code = workflow.code_digest("train", config["backbone"], tuple(sorted(config["recipe_params"])))
    return hashlib.sha256(f"{config_hash(config)}|{code}|{data_version(data_dir)}".encode()).hexdigest()[:16]


def clear_stale(work: Path, key: str) -> str | None:
    """Remove a work folder whose checkpoint was written under another ``run_key`` (or cannot be
    read); returns a line saying so, or None when there is nothing stale."""
    ckpt = Path(work) / CHECKPOINT
    if not ckpt.exists():
        return None  # nothing trained there yet (a run id may be: it stays)
    try:
        found = load_checkpoint(ckpt)
    except GaitflowError:
        found = {}
    if found.get("run_key") == key:
        return None
    shutil.rmtree(work)
    return f"{ckpt} (iteration {found.get('iteration')}) was written with other settings, code or data; starting over"


def promote(work: Path, out: Path) -> None:
    """Put a finished run's files into the declared output, whole or not at all: hard links to the
    work folder's files (a copy across file systems) in a staging folder, moved onto ``out``. The
    work folder stays: a kill before the workflow has recorded the output (which it then deletes)
    leaves the rerun everything it needs to adopt the run without training it again; the workflow
    prunes it once the output is in place (:func:`prune`)."""
    from gaitflow.data.archive import remove_path, replace_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.promoting-{os.getpid()}")
    remove_path(staging)
    staging.mkdir()
    try:
        for f in sorted(Path(work).iterdir()):
            if f.is_file():
                try:
                    os.link(f, staging / f.name)
                except OSError:  # another file system, or one without hard links
                    shutil.copy2(f, staging / f.name)
        replace_path(staging, out)
    except BaseException:
        remove_path(staging)
        raise


def prune(work: Path, out: Path) -> bool:
    """Remove the work folder of a run whose output holds its checkpoint (the same file, or the
    same bytes), unless a process is writing it; True when removed."""
    from gaitflow import locks

    ckpt, done = Path(work) / CHECKPOINT, Path(out) / CHECKPOINT
    if not (ckpt.exists() and done.exists()):
        return False
    if not (os.path.samefile(ckpt, done) or _file_sha(ckpt) == _file_sha(done)):
        return False
    try:
        with locks.exclusive(work, "prune"):
            shutil.rmtree(work)
    except GaitflowError:  # held: a training of this run is alive
        return False
    return True


def _log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def _truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines past the checkpoint a run resumes from (they will be logged again)."""
    if not path.exists():
        return
    keep = [
        line for line in path.read_text().splitlines() if line and json.loads(line).get("iteration", 0) <= iteration
    ]
    path.write_text("".join(line + "\n" for line in keep))


@dataclass
class Processes:
    """Where this process trains: its device, and its place among torchrun's processes."""

    dev: torch.device
    rank: int
    world: int
    local_rank: int

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def setup_processes(device: str, cfg: dict) -> Processes:
    """The device; under torchrun the process group DistributedDataParallel needs; the CPU threads."""
    dev = resolve_device(device)
    rank, world, local_rank = distributed()
    if world > 1:  # several processes under torchrun: DistributedDataParallel
        import torch.distributed as dist

        if (cfg["p"] * cfg["k"]) % world:
            raise GaitflowError(f"train.p x train.k = {cfg['p'] * cfg['k']} must divide by the {world} processes")
        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    return Processes(dev, rank, world, local_rank)


def run_home(out_dir: Path, work_dir: Path | None, key: str, rank: int) -> Path:
    """Where checkpoints and the log are written: the work folder (cleared when it holds a run with
    another ``run_key``), else the output."""
    home = Path(work_dir) if work_dir else Path(out_dir)
    if work_dir and rank == 0:
        note = clear_stale(home, key)
        if note:
            print(f"gaitflow train: {note}", file=sys.stderr)
    home.mkdir(parents=True, exist_ok=True)
    return home


@dataclass
class Build:
    """Everything a run trains with; a checkpoint holds the state of each part that has one."""

    data: PackedDataset
    train_idx: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    recipe: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    sampler: PKSampler
    rng: np.random.Generator
    scaler: torch.amp.GradScaler
    use_amp: bool
    amp_dtype: torch.dtype


def build(config: dict, data_dir: Path, procs: Processes) -> Build:
    """Data, model, loss recipe, optimiser, schedule, sampler and random state, in the order that
    draws the random numbers (the seed, the model, the probe pass, the sampler, this rank's rng)."""
    cfg, dev = config["train"], procs.dev
    torch.manual_seed(config["seed"])
    data = PackedDataset(data_dir)
    train_idx = data.split("TRAIN_SET")
    labels, subjects = data.labels(train_idx)
    model = build_model(config, data.frame_shape, len(subjects)).to(dev)
    if not any(p.requires_grad for p in model.parameters()):
        raise GaitflowError(f"--backbone {config['backbone']}: it has no parameters to train; evaluate it directly")
    if cfg["channels_last"]:
        to_channels_last(model)
    with torch.no_grad():  # the embeddings' shape, which the recipe is built for
        probe = model.eval()(torch.zeros(1, max(cfg["frames"], 3), *data.frame_shape, device=dev)).embeddings
    model.train()
    classes, parts, channels = len(subjects), probe.shape[1], probe.shape[2]
    recipe = build_recipe(config["recipe"], config["recipe_params"], classes, parts, channels).to(dev)
    opt = build_optimizer(model.parameters(), cfg["optimizer"], cfg["lr"], cfg["momentum"], cfg["weight_decay"])
    sched = build_scheduler(opt, cfg["warmup"], cfg["milestones"], cfg["gamma"])
    sampler = PKSampler(labels, cfg["p"], cfg["k"], seed=config["seed"])  # the same global batches on every rank
    rng = np.random.default_rng(config["seed"] + 1 + procs.rank)  # frame sampling and augmentation of this rank's slice
    net = model
    if procs.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    use_amp = dev.type == "cuda" and cfg["precision"] != "fp32"
    amp_dtype = torch.bfloat16 if cfg["precision"] == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cfg["precision"] == "fp16")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return Build(
        data, train_idx, labels, subjects, model, net, recipe, opt, sched, sampler, rng, scaler, use_amp, amp_dtype
    )


def resume_or_start(
    built: Build,
    config: dict,
    home: Path,
    dev: torch.device,
    restart: bool,
    max_frames: int,
    logged_up_to: int | None,
) -> tuple[int, list[dict]]:
    """Load the checkpoint in ``home`` into what was built, or start afresh (from ``init_from``'s weights,
    then the recipe's prepare: GSAM's memory is initialised by one pass of the untrained extractor).
    Returns the iteration to start from, and the logged records past ``logged_up_to`` that the
    checkpoint holds (a kill kept them from ``on_log``)."""
    ckpt_path = home / CHECKPOINT
    if restart or not ckpt_path.exists():  # components that need the training data first get it
        if "init_from" in config:
            start_from(built.model, Path(config["init_from"]["run"]), config["backbone"], len(built.subjects))
        built.recipe.prepare(built.model, TrainingSet(built.data, built.train_idx, built.labels, dev, max_frames))
        return 0, []
    ckpt = load_checkpoint(ckpt_path, dev)
    if ckpt.get("config_hash") != config_hash(config):
        raise GaitflowError(
            f"{ckpt_path}: written with other parameters than this run's; pass --restart to train from scratch"
        )
    built.model.load_state_dict(ckpt["model"])
    built.opt.load_state_dict(ckpt["optimizer"])
    built.sched.load_state_dict(ckpt["scheduler"])
    built.recipe.load_state_dict(ckpt["recipe"])
    built.sampler.load_state_dict(ckpt["sampler"])
    built.rng.bit_generator.state = ckpt["rng"]
    torch.set_rng_state(ckpt["torch_rng"])
    built.scaler.load_state_dict(ckpt["scaler"])
    start = int(ckpt["iteration"])
    _truncate_log(home / LOG, start)
    if logged_up_to is None:
        return start, []
    return start, [r for r in _log_records(home / LOG) if logged_up_to < r.get("iteration", 0) <= start]


class Checkpointer:
    """The run's checkpoint and log (written by rank 0). Logged records reach ``on_log`` only once a
    checkpoint holds them, so a resumed run logs no step twice; ``replay`` (records a kill kept
    from ``on_log``) reach it at once."""

    def __init__(self, home: Path, built: Build, rank: int, identity: dict, on_log, replay: list[dict], start: int = 0):
        self.path, self.built, self.rank, self.identity, self.on_log = home / CHECKPOINT, built, rank, identity, on_log
        self.kept = start  # the iteration of the checkpoint on disk (0: none)
        self.log_file = open(home / LOG, "a") if rank == 0 else open(os.devnull, "w")
        self.pending = list(replay)
        self.flush()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.log_file.close()

    def log(self, record: dict) -> None:
        try:
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise _disk_full(
                Path(self.log_file.name), f"the log of iteration {record['iteration']}", self.kept
            ) from None
        self.pending.append(record)

    def save(self, iteration: int, stream_state: dict) -> None:
        """``stream_state``: the sampler and random state right after the last batch drawn."""
        if self.rank == 0:
            p = self.built
            try:
                self._write(iteration, stream_state, p)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise _disk_full(self.path, f"the checkpoint of iteration {iteration}", self.kept) from None
            self.kept = iteration
        self.flush()

    def _write(self, iteration: int, stream_state: dict, p: Build) -> None:
        save_atomic(
            {
                "model": p.model.state_dict(),
                "optimizer": p.opt.state_dict(),
                "scheduler": p.sched.state_dict(),
                "recipe": p.recipe.state_dict(),
                "sampler": stream_state["sampler"],
                "rng": stream_state["rng"],
                "torch_rng": torch.get_rng_state(),
                "scaler": p.scaler.state_dict(),
                "iteration": iteration,
                **self.identity,  # config_hash, run_key, backbone, recipe_name
                "subjects": p.subjects,
                "frame_shape": list(p.data.frame_shape),
            },
            self.path,
        )

    def flush(self) -> None:
        while self.pending and self.on_log:
            self.on_log(self.pending.pop(0))
        self.pending.clear()


@contextmanager
def stop_on_signals():
    """A scheduler's warning (SIGTERM, SIGUSR1: a time limit, preemption) asks the loop to checkpoint
    after the current iteration and exit non-zero: yields a dict that then names the signal."""
    stop: dict[str, str] = {}
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            handlers[sig] = signal.signal(sig, lambda signum, _: stop.setdefault("signal", signal.Signals(signum).name))
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def iterate(
    built: Build, procs: Processes, cfg: dict, start: int, saver: Checkpointer, stop: dict, desc: str, progress: bool
) -> dict:
    """Iterations ``start`` to ``train.iterations``, one step each: batch, forward, loss, backward,
    log, checkpoint. Returns the last logged record."""
    from tqdm import tqdm

    dev, rank, world, total_iters = procs.dev, procs.rank, procs.world, cfg["iterations"]
    bar = tqdm(
        range(start, total_iters),
        initial=start,
        total=total_iters,
        disable=not (progress and rank == 0),
        desc=desc,
        unit="it",
    )
    tick, last, data_time = time.perf_counter(), {}, 0.0
    prefetch = dev.type == "cuda"  # a background thread prepares the next batch while the GPU computes
    stream = batch_stream(
        built.data, built.train_idx, built.labels, built.sampler, built.rng, cfg, rank, world, dev, prefetch
    )
    try:
        for it in bar:
            fetch = time.perf_counter()
            x, y, pos, stream_state = next(stream)
            x = x.to(dev, non_blocking=True)
            data_time += time.perf_counter() - fetch
            y = gather(y.to(dev), world)
            with torch.autocast(device_type=dev.type, dtype=built.amp_dtype, enabled=built.use_amp):
                out = built.net(x)
            emb = gather(out.embeddings.float(), world)
            logits = None if out.logits is None else gather(out.logits.float(), world)
            logging = (it + 1) % cfg["log_every"] == 0 or it + 1 == total_iters
            loss, parts = built.recipe(emb, logits, y, it, total_iters, grad_norms=logging)
            if not torch.isfinite(loss):
                detail = ", ".join(f"{k} {v:.4g}" for k, v in parts.items())
                raise GaitflowError(
                    f"iteration {it}: the loss is not finite ({detail}); "
                    f"the last good checkpoint is kept at {saver.path}"
                )
            built.opt.zero_grad(set_to_none=True)
            built.scaler.scale(loss).backward()
            built.scaler.step(built.opt)
            built.scaler.update()
            built.sched.step()
            done = it + 1
            if logging:
                now = time.perf_counter()
                speed = cfg["log_every"] / max(now - tick, 1e-9)
                share = data_time / max(now - tick, 1e-9)  # of the step time spent preparing batches
                tick, data_time = now, 0.0
                last = {
                    "iteration": done,
                    **parts,
                    "lr": built.opt.param_groups[0]["lr"],
                    "iterations_per_second": speed,
                    "data_share": share,
                }
                saver.log(last)
                bar.set_postfix(loss=f"{parts['total']:.4f}", its=f"{speed:.2f}")
            if done % cfg["checkpoint_every"] == 0 or done == total_iters or stop:
                saver.save(done, stream_state)
            if stop:
                raise GaitflowError(
                    f"{stop['signal']} at iteration {done}: checkpoint written to {saver.path}; "
                    "run the same command again to resume"
                )
    finally:
        stream.close()
        bar.close()
    return last


def finish(
    procs: Processes, home: Path, out_dir: Path, work_dir: Path | None, start: int, last: dict, config: dict
) -> dict:
    """Promote a finished run from its work folder into the output; the run's summary."""
    ckpt_path = home / CHECKPOINT
    if start >= config["train"]["iterations"]:  # nothing left to train
        last = {"iteration": start}
    if work_dir and procs.rank == 0:
        promote(home, out_dir)
        ckpt_path = Path(out_dir) / CHECKPOINT
    return {
        "checkpoint": str(ckpt_path),
        "iterations": config["train"]["iterations"],
        "resumed_from": start,
        "last": last,
        "device": str(procs.dev),
        "config_hash": config_hash(config),
        "rank": procs.rank,
        "world_size": procs.world,
    }


def train(
    params: dict,
    dataset: str,
    backbone: str,
    recipe_name: str,
    data_dir: Path,
    out_dir: Path,
    device: str | None = None,
    restart: bool = False,
    progress: bool = True,
    on_log=None,
    init_from: Path | None = None,
    seed: int | None = None,
    work_dir: Path | None = None,
    logged_up_to: int | None = None,
) -> dict:
    """Train one run (resuming from out_dir/checkpoint.pt when there is one); returns a summary.
    ``init_from``: a run folder whose weights a fresh run starts from (fine-tuning)."""
    config = run_config(params, dataset, backbone, recipe_name, seed)
    if init_from is not None:  # part of what the run is: a resume checks it like any parameter
        config["init_from"] = {"run": str(init_from), "sha256": _file_sha(Path(init_from) / CHECKPOINT)}
    cfg = config["train"]
    procs = setup_processes(device or cfg["device"], cfg)
    key = run_key(config, data_dir)
    home = run_home(out_dir, work_dir, key, procs.rank)

    built = build(config, data_dir, procs)
    max_frames = params["evaluate"]["max_frames"]
    start, replay = resume_or_start(built, config, home, procs.dev, restart, max_frames, logged_up_to)
    if procs.rank == 0:
        described = {**config, "subjects": built.subjects, "frame_shape": list(built.data.frame_shape)}
        (home / CONFIG).write_text(yaml.safe_dump(described, sort_keys=False))

    identity = {"config_hash": config_hash(config), "run_key": key, "backbone": backbone, "recipe_name": recipe_name}
    try:
        with Checkpointer(home, built, procs.rank, identity, on_log, replay, start) as saver, stop_on_signals() as stop:
            last = iterate(built, procs, cfg, start, saver, stop, f"{backbone}-{recipe_name}", progress)
    finally:
        procs.close()
    return finish(procs, home, out_dir, work_dir, start, last, config)
