"""A trained run's backbone as a standalone file that maps silhouettes to embeddings.

``export_run(run_dir, "onnx" | "torchscript", out)`` writes a graph that needs neither gaitflow
nor the run folder: ONNX runs under onnxruntime, TorchScript under ``torch.jit.load``. The
graph holds the model's forward pass up to its embeddings, nothing more:

- input ``sils``: float32 ``[batch, frames, H, W]``, silhouettes in [0, 1] at the run's frame
  shape ``H x W``; the batch size and the frame count are free (dynamic axes);
- output ``embeddings``: float32 ``[batch, parts, channels]``, the model's part embeddings
  (classification logits are left out).

Limits (also in :data:`LIMITS`, and in each file's metadata):

- No ``lengths`` input: every sequence in one batch has the same number of real frames, none
  padded. Sequences of different lengths go in separate batches (or one at a time): in a padded
  batch the graph takes the padding for real frames, and the embeddings of the shorter sequences
  differ from the model's (which masks padded frames given ``lengths``).
- At least :data:`MIN_FRAMES` frames per sequence: GaitGL and MT3D tile shorter sequences in
  eager mode, and that tiling is not in the exported graph.
- The graph is the model in eval mode (BatchNorm running statistics, no dropout), on the CPU,
  in float32.

Every file is checked before it is kept: its embeddings must equal the eager model's to within
:data:`TOLERANCE` (relative to the largest embedding value) on batches of 1 and 3 sequences of
3, 5, 9 and 16 frames. The file is written under a temporary name in the target folder and renamed
only after that check passes, so a failed export leaves nothing behind (and an older file at the
same path untouched).

Formats per backbone (torch 2.13, onnxscript, onnxruntime):

- TorchScript (``torch.jit.trace``): all seven backbones. torch 2.13 marks ``torch.jit`` (trace, save,
  load) deprecated in favour of ``torch.export``; it still works, and is the format that holds GaitGL
  and MT3D.
- ONNX (``torch.export`` then ``torch.onnx.export(dynamo=True)``): gaitset, gaitpart, gln,
  deepgaitv2 and gei. gaitgl and mt3d are refused with one line: before tiling short sequences
  they read the frame count back from a tensor (``int(lengths.min())`` in
  ``gaitgl.repeat_short``), a value ``torch.export`` cannot keep symbolic, so no graph with a
  dynamic frame count comes out.
"""

from __future__ import annotations

import io
import json
import logging
import os
import traceback
import warnings
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from gaitflow.errors import GaitflowError
from gaitflow.runs import load_run

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT = "sils"  # float32 [batch, frames, H, W] in [0, 1]; all sequences of a batch have `frames` real frames
OUTPUT = "embeddings"  # float32 [batch, parts, channels]
MIN_FRAMES = 3
TOLERANCE = 1e-4  # largest |exported - eager| over the largest |eager|
CHECK_FRAMES = (3, 5, 9, 16)
CHECK_BATCHES = (1, 3)
LIMITS = (
    f"no lengths input: every sequence in a batch has the same number of real frames (no padding); "
    f"at least {MIN_FRAMES} frames per sequence; eval mode, CPU, float32"
)
# The example a graph is traced with: several sequences of several frames, so that neither axis
# is taken for a constant 1.
_EXAMPLE = (2, 8)
_MAX_BATCH, _MAX_FRAMES = 1 << 16, 1 << 20
_PACKAGE = Path(__file__).resolve().parent


class EmbeddingGraph(nn.Module):
    """The part of a backbone that is exported: silhouettes [N, S, H, W] -> embeddings [N, P, C]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, sils: torch.Tensor) -> torch.Tensor:
        return self.model(sils).embeddings


def export_run(
    run_dir: Path | str,
    fmt: str,
    out: Path | str,
    *,
    frames=CHECK_FRAMES,
    batches=CHECK_BATCHES,
    tolerance: float = TOLERANCE,
) -> dict:
    """Export a trained run's backbone to ``out`` as ``fmt`` (``onnx`` or ``torchscript``), check
    the file against the eager model on batches of ``batches`` sequences of ``frames`` frames, and
    keep it only if every check is within ``tolerance``. Returns what was written and the errors
    measured: ``max_error`` and ``errors`` (one per ``"<batch>x<frames>"``)."""
    if fmt not in FORMATS:
        raise GaitflowError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _need_onnx()
    if not frames or not batches or min(frames) < MIN_FRAMES or min(batches) < 1:
        raise GaitflowError(
            f"export checks on batches {tuple(batches)} x frames {tuple(frames)}: expected at least one batch size "
            f"(1 or more) and one frame count ({MIN_FRAMES} or more: exported graphs take at least {MIN_FRAMES} frames)"
        )
    run_dir, out = Path(run_dir), Path(out)
    if out.is_dir():
        raise GaitflowError(f"{out}: a folder; give the file to write, e.g. {out / ('model' + SUFFIXES[fmt])}")
    model, config = load_run(run_dir, device="cpu")
    backbone = config["backbone"]
    height, width = (int(v) for v in config["frame_shape"])
    graph = EmbeddingGraph(model).eval()
    example = torch.rand(*_EXAMPLE, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probe = graph(example)
    meta = {
        "backbone": backbone,
        "dataset": config["dataset"],
        "recipe": config["recipe"],
        "iteration": config["iteration"],
        "frame_shape": [height, width],
        "input": f"{INPUT}: float32 [batch, frames, {height}, {width}] in [0, 1]",
        "output": f"{OUTPUT}: float32 [batch, {probe.shape[1]}, {probe.shape[2]}]",
        "min_frames": MIN_FRAMES,
        "limits": LIMITS,
    }
    if fmt == "onnx":
        program = _to_onnx(graph, example, backbone)
        program.model.metadata_props.update({f"gaitflow.{k}": json.dumps(v) for k, v in meta.items()})
        opset = program.model.opset_imports.get("", None)

        def save(path: Path) -> None:
            program.save(path, external_data=False)

    else:
        traced = _to_torchscript(graph, example, backbone)
        opset = None

        def save(path: Path) -> None:
            torch.jit.save(traced, str(path), _extra_files={"gaitflow.json": json.dumps(meta)})

    errors: dict[str, float] = {}

    def check(path: Path) -> None:
        errors.update(_check(graph, _runner(fmt, path), backbone, fmt, (height, width), frames, batches, tolerance))

    _write_atomic(out, save, check)
    result = {
        "backbone": backbone,
        "format": fmt,
        "path": str(out),
        "bytes": out.stat().st_size,
        "run": str(run_dir),
        "iteration": config["iteration"],
        "input": {"name": INPUT, "shape": ["batch", "frames", height, width], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["batch", int(probe.shape[1]), int(probe.shape[2])], "dtype": "float32"},
        "min_frames": MIN_FRAMES,
        "limits": LIMITS,
        "tolerance": tolerance,
        "max_error": max(errors.values()),
        "errors": errors,
    }
    if opset is not None:
        result["opset"] = opset
    return result


def _need_onnx() -> None:
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise GaitflowError(
            f"ONNX export needs {', '.join(missing)}, not installed here; pip install 'gaitflow[export]' "
            "(or export as torchscript)"
        )


def _refuse(backbone: str, fmt: str, why: str):
    name = {"onnx": "ONNX", "torchscript": "TorchScript"}[fmt]
    return GaitflowError(" ".join(f"{backbone} cannot be exported to {name}: {why}".split()))


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:limit] if lines else ''}"


def _where(exc: BaseException) -> str:
    """`` at <file>:<line> (<function>: <code>)``: the innermost line of gaitflow's own code (outside
    this module) in an exception's traceback, or "" where there is none."""
    here = Path(__file__).resolve()
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for f in reversed(traceback.extract_tb(exc.__traceback__)):
            path = Path(f.filename).resolve()
            if path.is_relative_to(_PACKAGE) and path != here:
                return f" at {path.relative_to(_PACKAGE.parent).as_posix()}:{f.lineno} ({f.name}: {f.line})"
        exc = exc.__cause__ or exc.__context__
    return ""


def _why_not_dynamic(exc: BaseException) -> str:
    """One line on why torch.export gave no graph with a dynamic batch size and frame count."""
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    if isinstance(exc, GuardOnDataDependentSymNode) or "data-dependent" in str(exc):
        return (
            f"its forward branches on a value read back from a tensor{_where(exc)}, which torch.export cannot "
            "keep symbolic, so it gives no graph with a dynamic frame count; export it as torchscript instead"
        )
    fixed = [line.strip(" -") for line in str(exc).splitlines() if line.strip().startswith("- ")]
    if fixed:
        return (
            f"torch.export fixes an axis that must stay free ({fixed[0][:200]}){_where(exc)}; "
            "export it as torchscript instead"
        )
    return f"torch.export failed ({_first_line(exc)}){_where(exc)}"


class _MaxPool1dAs2d(TorchFunctionMode):
    """Writes ``max_pool1d`` as the same pooling over a map one row high while a graph is exported.

    ``torch.export`` takes the length of a ``max_pool1d`` input for a constant (the operator reads
    it as a plain integer), which would fix GaitPart's frame count to the example's; ``max_pool2d``
    keeps it symbolic and gives identical values."""

    _NAMES = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    _DEFAULTS = (None, None, None, 0, 1, False, False)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.max_pool1d or func is torch.max_pool1d:
            a = dict(zip(self._NAMES, self._DEFAULTS))
            a.update(zip(self._NAMES, args))
            a.update(kwargs)
            if not a["return_indices"]:
                kernel = _single(a["kernel_size"])
                stride = kernel if a["stride"] in (None, (), []) else _single(a["stride"])
                out = F.max_pool2d(
                    a["input"].unsqueeze(-2),
                    (1, kernel),
                    (1, stride),
                    (0, _single(a["padding"])),
                    (1, _single(a["dilation"])),
                    ceil_mode=bool(a["ceil_mode"]),
                )
                return out.squeeze(-2)
        return func(*args, **kwargs)


def _single(value) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


@contextmanager
def _quiet():
    """Keeps the exporters' notes about optional packages and deprecations off the console."""
    names = ("torch.onnx", "torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes", "onnxscript")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _to_onnx(graph: EmbeddingGraph, example: torch.Tensor, backbone: str):
    """The ONNX program of ``graph`` with free batch and frame axes (refused with one line where
    torch.export cannot keep them free)."""
    from torch.export import Dim

    dims = {INPUT: {0: Dim("batch", min=1, max=_MAX_BATCH), 1: Dim("frames", min=MIN_FRAMES, max=_MAX_FRAMES)}}
    with _quiet():
        try:  # (on failure torch.export prints the partial graph to stderr: kept off the console)
            with _MaxPool1dAs2d(), redirect_stderr(io.StringIO()):
                program = torch.export.export(graph, (example,), dynamic_shapes=dims, strict=False)
        except Exception as exc:  # noqa: BLE001 - torch.export fails in many types
            raise _refuse(backbone, "onnx", _why_not_dynamic(exc)) from None
        try:
            return torch.onnx.export(
                program,
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes={INPUT: {0: "batch", 1: "frames"}},
                external_data=False,
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001
            raise _refuse(backbone, "onnx", f"torch.onnx could not translate its graph ({_first_line(exc)})") from None


def _to_torchscript(graph: EmbeddingGraph, example: torch.Tensor, backbone: str):
    with _quiet(), torch.no_grad():
        try:
            return torch.jit.trace(graph, (example,), check_trace=False)
        except Exception as exc:  # noqa: BLE001 - tracing fails in many types
            raise _refuse(
                backbone, "torchscript", f"torch.jit.trace failed ({_first_line(exc)}){_where(exc)}"
            ) from None


def _runner(fmt: str, path: Path):
    """A function sils [N, S, H, W] -> embeddings, both torch tensors, running the file at ``path``."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(sils: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: sils.numpy()})[0])

        return run
    with _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(sils: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loaded(sils)

    return run


def _relative_error(exported: torch.Tensor, eager: torch.Tensor) -> float:
    """Largest |exported - eager| over the largest |eager|."""
    exported, eager = exported.double(), eager.double()
    scale = eager.abs().max().clamp_min(1e-12)
    return float((exported - eager).abs().max() / scale)


def _check(graph, run, backbone, fmt, frame_shape, frames, batches, tolerance) -> dict[str, float]:
    """Errors of the exported file against the eager model, one per batch size x frame count."""
    gen = torch.Generator().manual_seed(1)
    errors = {}
    for n in batches:
        for s in frames:
            sils = torch.rand(n, s, *frame_shape, generator=gen)
            with torch.no_grad():
                eager = graph(sils)
            try:
                exported = run(sils)
            except Exception as exc:  # noqa: BLE001 - runtimes fail in many types
                raise _refuse(
                    backbone, fmt, f"the exported graph fails on {n} sequence(s) of {s} frames ({_first_line(exc)})"
                ) from None
            if exported.shape != eager.shape:
                raise _refuse(
                    backbone,
                    fmt,
                    f"on {n} sequence(s) of {s} frames the exported graph gives embeddings of shape "
                    f"{tuple(exported.shape)} instead of {tuple(eager.shape)}",
                )
            err = _relative_error(exported, eager)
            if not err <= tolerance:
                raise _refuse(
                    backbone,
                    fmt,
                    f"on {n} sequence(s) of {s} frames the exported embeddings differ from the model's by "
                    f"{err:.2e} (relative), above the tolerance {tolerance:g}",
                )
            errors[f"{n}x{s}"] = err
    return errors


def _write_atomic(out: Path, save, check) -> None:
    """``save`` to a temporary name beside ``out``, ``check`` that file, then rename it to ``out``;
    on any failure remove the temporary file (and any folder made for it)."""
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with _quiet():
                save(tmp)
        except OSError as exc:
            raise GaitflowError(f"{out}: could not be written ({exc.strerror or exc})") from None
        check(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
