"""A trained run on disk, and what every step that uses one needs: the run folder's
file names, the model built from the run's configuration, its checkpoint loaded
safely, and sequences embedded with it.

``models/<dataset>/<backbone>-<recipe>-s<seed>/`` holds ``checkpoint.pt`` (model,
optimiser, scheduler, loss state, sampler and random states, iteration),
``config.yaml`` (the resolved parameters) and ``train.log`` (one JSON line per
logged iteration). Training writes it; evaluation, and anything later that loads
a run, reads it through :func:`load_run`, so they import neither the training
loop nor the losses (and an edit to a loss does not touch their code digest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from gaitflow.data.dataset import PackedDataset
from gaitflow.errors import GaitflowError
from gaitflow.models import GaitModel, create_model

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"
LOG = "train.log"
# What config.yaml must hold for a run to be rebuilt from it.
CONFIG_KEYS = ("dataset", "backbone", "recipe", "train", "backbone_params", "subjects", "frame_shape")


def resolve_device(choice: str) -> torch.device:
    """``auto`` is CUDA when there is one; asking for CUDA where there is none is one clear line."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise GaitflowError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def build_model(config: dict, frame_shape, num_classes: int) -> GaitModel:
    """The backbone a run's configuration names, at the run's width (``train.width``)."""
    params = {"width": config["train"]["width"], **config["backbone_params"]}
    return create_model(config["backbone"], frame_shape=tuple(frame_shape), num_classes=num_classes, **params)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's tensors and plain values; refuses anything that could run code, and anything
    that is not a dict with the model's tensors by name and the iteration it was trained to."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise GaitflowError(f"{path}: no checkpoint here; train the run first") from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise GaitflowError(f"{path}: not a loadable gaitflow checkpoint ({type(exc).__name__}: {first})") from None
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if (
        not isinstance(model, dict)
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items())
        or not isinstance(ckpt.get("iteration"), int)
    ):
        keys = f" keys {', '.join(map(str, ckpt))[:120]}" if isinstance(ckpt, dict) else ""
        raise GaitflowError(
            f"{path}: not a gaitflow checkpoint (expected a dict with 'model', tensors by name, and 'iteration', "
            f"an integer; found {type(ckpt).__name__}{keys})"
        )
    return ckpt


def read_config(run_dir: Path) -> dict:
    """A run's config.yaml, checked for what rebuilding its model needs."""
    path = Path(run_dir) / CONFIG
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GaitflowError(f"{path}: not found; train this run first (gaitflow train)") from None
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict) or any(k not in config for k in CONFIG_KEYS):
        raise GaitflowError(
            f"{path}: not a gaitflow run configuration (expected the keys {', '.join(CONFIG_KEYS)}); "
            "train this run again"
        )
    return config


def load_run(run_dir: Path, device: torch.device | str = "cpu") -> tuple[GaitModel, dict]:
    """The run's model with its trained weights, in eval mode on ``device``, and its configuration
    (config.yaml, plus ``iteration``: how far its checkpoint was trained)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT, device)
    try:
        model = build_model(config, config["frame_shape"], len(config["subjects"])).to(device)
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, RuntimeError) as exc:
        raise GaitflowError(
            f"{run_dir / CONFIG}: its backbone settings give no model ({type(exc).__name__}: {str(exc)[:160]}); "
            "train this run again"
        ) from None
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).splitlines()[0][:160]
        raise GaitflowError(f"{run_dir / CHECKPOINT}: its weights do not fit {config['backbone']} ({first})") from None
    config["iteration"] = int(ckpt["iteration"])
    return model.eval(), config


@torch.no_grad()
def embed_batch(model, lengths: np.ndarray, frames: np.ndarray, device) -> torch.Tensor:
    """Embeddings [len(lengths), P, C] of sequences given back to back (frames [sum(lengths), H, W]
    uint8), padded into one batch with their true lengths."""
    batch = torch.zeros(len(lengths), int(lengths.max()), *frames.shape[1:])
    start = 0
    for i, n in enumerate(lengths):
        batch[i, :n] = torch.from_numpy(frames[start : start + n]).float().div_(255)
        start += n
    return model(batch.to(device), torch.from_numpy(lengths).to(device)).embeddings.float().cpu()


@torch.no_grad()
def embed(
    model, dataset: PackedDataset, indices: np.ndarray, device, max_frames: int = 4096, progress: bool = False
) -> torch.Tensor:
    """Embeddings [len(indices), P, C] of whole sequences (all frames), batched with padding."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    out = []
    for _, lengths, frames in tqdm(
        dataset.batches(indices, max_frames), disable=not progress, desc="embed", unit="batch"
    ):
        out.append(embed_batch(model, lengths, frames, device))
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_arrays(model, sequences: list[np.ndarray], device, max_frames: int = 4096) -> torch.Tensor:
    """Embeddings [len(sequences), P, C] of sequences held as arrays [n, H, W] uint8 (not a packed set)."""
    model.eval()
    out, batch = [], []
    for seq in [*sequences, None]:
        if batch and (seq is None or sum(map(len, batch)) + len(seq) > max_frames):
            out.append(embed_batch(model, np.array([len(b) for b in batch]), np.concatenate(batch), device))
            batch = []
        if seq is not None:
            batch.append(seq)
    return torch.cat(out)
