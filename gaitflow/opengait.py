"""Checkpoints of the reference framework (OpenGait) as gaitflow runs.

OpenGait saves ``{"model", "optimizer", "scheduler", "iteration"}`` with its own
module names (``set_block1.forward_block.0.conv.weight``, ``Head.fc_bin``, ...).
:func:`import_checkpoint` reads such a file without running any code from it
(``weights_only=True``; the only class it lets through by name is
``collections.Counter``, which ``MultiStepLR`` keeps its milestones in), finds
the architecture's sizes in the tensors' shapes (width, variant, mode, phase,
classes), renames and reshapes every tensor into the gaitflow backbone's
``state_dict`` and writes a run folder (:mod:`gaitflow.runs`) that evaluate,
identify, export and ``train --init-from`` use like a trained run.

Every renaming is exact: the gaitflow backbones compute what the reference's do
on the same weights (tests/test_opengait.py compares embeddings with the
reference's own outputs; docs/opengait.md says how those were made).
"""

from __future__ import annotations

import collections
import hashlib
import re
import tempfile
from pathlib import Path

import torch
import yaml

from gaitflow.errors import GaitflowError
from gaitflow.runs import CHECKPOINT, CONFIG

FORMAT = "opengait"
REFERENCE_KEYS = ("model", "optimizer", "scheduler", "iteration")
# Plain classes a reference checkpoint may hold besides tensors and builtins, allowed by name.
SAFE_CLASSES = (collections.Counter,)


def read_checkpoint(path: Path) -> dict:
    """The reference checkpoint's tensors and plain values, or one line saying why not."""
    path = Path(path)
    if not path.is_file():
        raise GaitflowError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(list(SAFE_CLASSES)):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = found.group(1) if found else "a class"
            raise GaitflowError(
                f"{path}: holds {what}, not only tensors and plain values; refused (nothing from it was run)"
            ) from None
        raise GaitflowError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise GaitflowError(
            f"{path}: not an OpenGait checkpoint (expected a dict with {', '.join(REFERENCE_KEYS)}; "
            f"found {type(ckpt).__name__}{' keys ' + ', '.join(map(str, ckpt)) if isinstance(ckpt, dict) else ''})"
        )
    state = ckpt["model"]
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise GaitflowError(f"{path}: its 'model' entry holds {bad[0]!r}, not a tensor; not an OpenGait checkpoint")
    # weights saved from a DistributedDataParallel wrapper carry a 'module.' prefix
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return {**ckpt, "model": state}


# ---- one translation per backbone: (backbone params, gaitflow state_dict) from the reference's


def _conv_rename(state: dict, out: dict, pairs: list[tuple[str, str]]) -> None:
    for src, dst in pairs:
        for key in [k for k in state if k.startswith(src + ".")]:
            out[dst + key[len(src) :]] = state[key]


def _take(state: dict, key: str) -> torch.Tensor:
    if key not in state:
        raise KeyError(key)
    return state[key]


def _gaitset(state: dict) -> tuple[dict, float, dict]:
    c0 = _take(state, "set_block1.forward_block.0.conv.weight").shape[0]
    width = c0 / 32
    emb = _take(state, "Head.fc_bin").shape[2]
    out = {}
    for i in (1, 2, 3):
        for j in (0, 2):
            out[f"set{i}.block.{j}.weight"] = _take(state, f"set_block{i}.forward_block.{j}.conv.weight")
    for i in (2, 3):
        for j in (0, 2):
            out[f"global{i}.{j}.weight"] = _take(state, f"gl_block{i}.{j}.conv.weight")
    out["head.weight"] = state["Head.fc_bin"]
    return {"embedding": round(emb / width)}, width, out


def _gaitpart(state: dict) -> tuple[dict, float, dict]:
    width = _take(state, "Backbone.forward_block.feature.0.conv.weight").shape[0] / 32
    out = {}
    for j in (0, 2):
        out[f"backbone.block.{j}.weight"] = state[f"Backbone.forward_block.feature.{j}.conv.weight"]
    for j in (5, 7, 10, 12):
        out[f"backbone.block.{j}.conv.weight"] = _take(state, f"Backbone.forward_block.feature.{j}.conv.weight")
    for ours, theirs in (("mtb1", "conv1d3x1"), ("mtb2", "conv1d3x3")):
        prefix = f"TFA.pooling_func.{theirs}."
        parts = sorted({int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)})
        if not parts:
            raise KeyError(prefix + "0.0.conv.weight")
        # one module per part there; one grouped convolution here (the parts' weights stacked)
        out[f"{ours}.conv1.weight"] = torch.cat([state[f"{prefix}{p}.0.conv.weight"] for p in parts])
        out[f"{ours}.conv2.weight"] = torch.cat([state[f"{prefix}{p}.2.conv.weight"] for p in parts])
    emb = _take(state, "Head.fc_bin").shape[2]
    out["head.weight"] = state["Head.fc_bin"]
    return {"embedding": round(emb / width)}, width, out


def _gaitgl(state: dict) -> tuple[dict, float, dict]:
    if "BNNecks.fc_bin" in state:
        raise GaitflowError(
            "GaitGL with a BNNeck head (OpenGait's gaitgl_GREW_BNNeck) is not supported; "
            "expected the original head (Bn, Head1)"
        )
    deep = "conv3d.2.conv3d.weight" in state
    c0 = _take(state, "conv3d.0.conv3d.weight").shape[0]
    width = c0 / 32
    out = {"stem.0.weight": state["conv3d.0.conv3d.weight"], "lta.0.weight": _take(state, "LTA.0.conv3d.weight")}
    if deep:
        out["stem.2.weight"] = state["conv3d.2.conv3d.weight"]
        layers = ["GLConvA0.0", "GLConvA0.1", None, "GLConvA1.0", "GLConvA1.1", "GLConvB2.0", "GLConvB2.1"]
    else:
        layers = ["GLConvA0", None, "GLConvA1", "GLConvB2"]
    for i, name in enumerate(layers):
        if name is not None:
            for kind in ("global", "local"):
                out[f"layers.{i}.{kind}_conv.weight"] = _take(state, f"{name}.{kind}_conv3d.conv3d.weight")
    out["hpp.p"] = _take(state, "HPP.p")
    out["head.weight"] = _take(state, "Head0.fc_bin")
    _conv_rename(state, out, [("Bn", "bn")])
    out["classifier.weight"] = _take(state, "Head1.fc_bin")
    return {"variant": "ou-mvlp" if deep else "casia-b"}, width, out


def _gln(state: dict) -> tuple[dict, float, dict]:
    width = _take(state, "sil_stage_0.forward_block.0.conv.weight").shape[0] / 32
    out = {}
    for i in (0, 1, 2):
        for j in (0, 2):
            out[f"sil{i}.block.{j}.weight"] = _take(state, f"sil_stage_{i}.forward_block.{j}.conv.weight")
    for i in (1, 2):
        for j in (0, 2):
            out[f"set{i}.{j}.weight"] = _take(state, f"set_stage_{i}.{j}.conv.weight")
    for i in (0, 1, 2):
        out[f"lateral.{i}.weight"] = _take(state, f"lateral_layer{i + 1}.weight")
        out[f"smooth.{i}.weight"] = _take(state, f"smooth_layer{i + 1}.weight")
    out["head.weight"] = _take(state, "Head.fc_bin")
    phase = 2 if "encoder_bn.weight" in state else 1
    if phase == 2:
        _conv_rename(state, out, [("encoder_bn", "compact.0"), ("reduce_fc", "compact.3"), ("reduce_bn", "compact.4")])
        out["classifier.weight"] = _take(state, "reduce_cls.weight")
    lateral = state["lateral_layer1.weight"].shape[0]
    emb = state["Head.fc_bin"].shape[2]
    return {"phase": phase, "lateral": round(lateral / width), "embedding": round(emb / width)}, width, out


def _deepgaitv2(state: dict) -> tuple[dict, float, dict]:
    stem = _take(state, "layer0.forward_block.0.weight")
    if "layer2.0.shortcut3d.weight" in state:
        mode = "p3d"
    elif "layer2.0.conv1.weight" in state and state["layer2.0.conv1.weight"].dim() == 5:
        mode = "3d"
    elif "layer2.forward_block.0.conv1.weight" in state:
        mode = "2d"
    else:
        raise KeyError("layer2.0.conv1.forward_block.0.weight")
    out = {}
    _conv_rename(state, out, [("layer0.forward_block.0", "stem.block.0"), ("layer0.forward_block.1", "stem.block.1")])
    channels, layers, b = [], [], 0
    for stage in (1, 2, 3, 4):
        prefix = f"layer{stage}.forward_block." if stage == 1 or mode == "2d" else f"layer{stage}."
        count = len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})
        if not count:
            raise KeyError(prefix + "0.conv1.weight")
        layers.append(count)
        for j in range(count):
            src, dst = f"{prefix}{j}", f"blocks.{b}"
            if stage == 1 or mode == "2d":
                pairs = [("conv1", "body.block.0"), ("bn1", "body.block.1"), ("conv2", "body.block.3")]
                pairs.append(("bn2", "body.block.4"))
            elif mode == "p3d":
                pairs = [("conv1.forward_block.0", "conv1.block.0"), ("conv1.forward_block.1", "conv1.block.1")]
                pairs += [("conv2.forward_block.0", "conv2.block.0"), ("conv2.forward_block.1", "conv2.block.1")]
                pairs += [("shortcut3d", "temporal.0"), ("sbn", "temporal.1")]
            else:
                pairs = [("conv1", "body.0"), ("bn1", "body.1"), ("conv2", "body2.0"), ("bn2", "body2.1")]
            _conv_rename(state, out, [(f"{src}.{a}", f"{dst}.{z}") for a, z in pairs])
            if f"{src}.downsample.0.weight" in state:
                # a 1x1(x1) convolution there, the same per-frame 1x1 convolution here
                w = state[f"{src}.downsample.0.weight"]
                out[f"{dst}.shortcut.block.0.weight"] = w.reshape(*w.shape[:2], 1, 1)
                _conv_rename(state, out, [(f"{src}.downsample.1", f"{dst}.shortcut.block.1")])
            b += 1
        first = f"{prefix}0.conv1.forward_block.0.weight" if mode == "p3d" and stage > 1 else f"{prefix}0.conv1.weight"
        channels.append(int(_take(state, first).shape[0]))
    fc = _take(state, "FCs.fc_bin")
    out["fc.weight"] = fc
    out["bnneck.weight"] = _take(state, "BNNecks.fc_bin")
    _conv_rename(state, out, [("BNNecks.bn1d", "bnneck.bn")])
    if channels[0] != stem.shape[0]:
        raise KeyError("layer1.forward_block.0.conv1.weight")
    params = {"mode": mode, "channels": channels, "layers": layers, "embedding": int(fc.shape[2])}
    return params, 1.0, out


TRANSLATE = {
    "gaitset": _gaitset,
    "gaitpart": _gaitpart,
    "gaitgl": _gaitgl,
    "gln": _gln,
    "deepgaitv2": _deepgaitv2,
}
# where each backbone's classifier is, for the number of classes (None: the backbone has none)
CLASSIFIER = {
    "gaitgl": ("classifier.weight", 2),
    "gln": ("classifier.weight", 0),
    "deepgaitv2": ("bnneck.weight", 2),
}


def translate(state: dict, backbone: str, source: str = "checkpoint") -> tuple[dict, float, dict, int]:
    """(backbone params, width, gaitflow state_dict, classes) from a reference ``state_dict``."""
    if backbone not in TRANSLATE:
        raise GaitflowError(f"--backbone {backbone!r}: OpenGait checkpoints can be imported for {', '.join(TRANSLATE)}")
    try:
        params, width, out = TRANSLATE[backbone](state)
    except KeyError as exc:
        raise GaitflowError(
            f"{source}: not an OpenGait {backbone} checkpoint (it has no {exc.args[0]!r}); is it for another backbone?"
        ) from None
    except (IndexError, ValueError, ZeroDivisionError, RuntimeError) as exc:  # a tensor of too few dimensions or none
        raise GaitflowError(
            f"{source}: its tensors' shapes are not an OpenGait {backbone}'s ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
    where = CLASSIFIER.get(backbone)
    classes = int(out[where[0]].shape[where[1]]) if where and where[0] in out else 74
    return params, width, out, classes


def build(backbone: str, state: dict, frame_shape, overrides: dict | None = None, source: str = "checkpoint"):
    """The gaitflow model holding a reference ``state_dict``'s weights (eval mode), its params and width."""
    from gaitflow.models import create_model

    params, width, ours, classes = translate(state, backbone, source)
    for key, value in (overrides or {}).items():
        if key in params and params[key] != value:
            raise GaitflowError(
                f"{source}: its weights are for {backbone} {key}={params[key]}, not {key}={value}; "
                "leave the option out or pick the matching checkpoint"
            )
        params[key] = value
    try:
        model = create_model(backbone, frame_shape=tuple(frame_shape), width=width, num_classes=classes, **params)
    except (ValueError, RuntimeError) as exc:
        raise GaitflowError(f"{source}: its shapes give no valid {backbone} ({exc})") from None
    expected = model.state_dict()
    extra = sorted(set(ours) - set(expected))
    missing = sorted(set(expected) - set(ours))
    if extra or missing:
        raise GaitflowError(
            f"{source}: its weights do not fit {backbone} ({'missing ' + missing[0] if missing else ''}"
            f"{'; ' if missing and extra else ''}{'unexpected ' + extra[0] if extra else ''})"
        )
    for key, tensor in ours.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise GaitflowError(
                f"{source}: shapes do not fit {backbone} {_describe(params, width)} at {frame_shape[0]}x"
                f"{frame_shape[1]}: {key} is {list(tensor.shape)}, expected {list(expected[key].shape)}"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in ours.items()})
    return model.eval(), params, width, classes


def _describe(params: dict, width: float) -> str:
    shown = {k: v for k, v in params.items() if k in ("variant", "mode", "phase")}
    return " ".join(f"{k}={v}" for k, v in shown.items()) + f" width={width:g}"


def import_checkpoint(
    checkpoint: Path,
    backbone: str,
    out: Path,
    frame_shape=(64, 44),
    overrides: dict | None = None,
    label: str | None = None,
    name: str | None = None,
) -> dict:
    """Write a run folder at ``out`` holding the reference checkpoint's weights as a gaitflow run.

    ``name`` (default: the folder's name) is the method's name in results and tables, ``label``
    its row label. Nothing is written unless the whole checkpoint fits.
    """
    from gaitflow.data.archive import replace_path

    checkpoint, out = Path(checkpoint), Path(out)
    ckpt = read_checkpoint(checkpoint)
    model, params, width, classes = build(backbone, ckpt["model"], frame_shape, overrides, str(checkpoint))
    iteration = ckpt.get("iteration", 0)
    iteration = int(iteration) if isinstance(iteration, int) else 0
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    source = {"format": FORMAT, "checkpoint": str(checkpoint), "sha256": digest, "iteration": iteration}
    name = name or out.name
    config = {
        "dataset": None,
        "backbone": backbone,
        "recipe": None,
        "name": name,
        "label": label or name,
        "imported": source,
        "backbone_params": params,
        "train": {"width": width},
        "subjects": [str(i) for i in range(classes)],
        "frame_shape": list(frame_shape),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staging = Path(tmp) / "run"
        staging.mkdir()
        torch.save(
            {"model": model.state_dict(), "iteration": iteration, "imported": source},
            staging / CHECKPOINT,
        )
        (staging / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
        replace_path(staging, out)
    return {"path": out, "backbone": backbone, "params": params, "width": width, "classes": classes, **source}
