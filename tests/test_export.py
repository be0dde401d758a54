"""Exporting a run (gaitflow.export): ONNX and TorchScript graphs that map silhouettes to the
model's embeddings, with a free batch size and frame count, checked against the eager model and
written whole or not at all."""

import json
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from gaitflow import export
from gaitflow.errors import GaitflowError
from gaitflow.export import export_run
from gaitflow.models import available, create_model
from gaitflow.runs import CHECKPOINT, CONFIG, load_run

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

FRAME_SHAPE = (32, 22)
# Which backbones each format takes (the module docstring says why gaitgl and mt3d have no ONNX graph).
EXPORTS = {
    "onnx": ["deepgaitv2", "gaitpart", "gaitset", "gei", "gln"],
    "torchscript": ["deepgaitv2", "gaitgl", "gaitpart", "gaitset", "gei", "gln", "mt3d"],
}
REFUSED = {"onnx": ["gaitgl", "mt3d"]}
CASES = [(fmt, b) for fmt, names in EXPORTS.items() for b in names]
# Sizes the tests check on their own (export_run checks 3, 5, 9 and 16 frames itself).
LENGTHS = (5, 9, 16, 23)
BATCHES = (1, 3)


def make_run(folder, backbone: str):
    """A run folder as training leaves it (config.yaml + checkpoint.pt), for a narrow model whose
    BatchNorm statistics are not the identity, so an exported graph must carry them."""
    torch.manual_seed(0)
    model = create_model(backbone, frame_shape=FRAME_SHAPE, width=0.25, num_classes=4)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    folder.mkdir(parents=True)
    config = {
        "dataset": "casiab-syn",
        "backbone": backbone,
        "recipe": "triplet",
        "train": {"width": 0.25},
        "backbone_params": {},
        "subjects": ["001", "002", "003", "004"],
        "frame_shape": list(FRAME_SHAPE),
    }
    (folder / CONFIG).write_text(yaml.safe_dump(config))
    torch.save({"model": model.state_dict(), "iteration": 7}, folder / CHECKPOINT)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {b: make_run(root / b, b) for b in available()}


def run_exported(fmt: str, path):
    """The exported file as a function, run the way a user without gaitflow would run it."""
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: ONNX graphs cannot be run")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["sils"]  # no lengths input
        assert [o.name for o in session.get_outputs()] == ["embeddings"]  # no logits
        assert session.get_inputs()[0].shape == ["batch", "frames", *FRAME_SHAPE]
        assert session.get_inputs()[0].type == "tensor(float)"
        return lambda x: torch.from_numpy(session.run(None, {"sils": x.numpy()})[0])
    module = torch.jit.load(str(path))
    return lambda x: module(x)


def test_every_backbone_is_covered():
    assert sorted(EXPORTS["torchscript"]) == available()
    assert sorted(EXPORTS["onnx"] + REFUSED["onnx"]) == available()


@pytest.mark.parametrize("fmt, backbone", CASES)
def test_exported_embeddings_equal_the_models(runs, tmp_path, fmt, backbone):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: ONNX graphs cannot be run")
    out = tmp_path / f"{backbone}.{fmt}"
    result = export_run(runs[backbone], fmt, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert result["backbone"] == backbone and result["format"] == fmt and result["path"] == str(out)
    assert result["iteration"] == 7 and result["input"]["shape"] == ["batch", "frames", *FRAME_SHAPE]
    assert set(result["errors"]) == {f"{n}x{s}" for n in (1, 3) for s in (3, 5, 9, 16)}
    assert result["max_error"] == max(result["errors"].values()) <= 1e-4

    model, _ = load_run(runs[backbone])
    exported = run_exported(fmt, out)
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for n in BATCHES:
            for s in LENGTHS:
                sils = (torch.rand(n, s, *FRAME_SHAPE, generator=gen) > 0.5).float()  # binary silhouettes
                eager = model(sils).embeddings
                got = exported(sils)
                assert got.shape == eager.shape == (n, *result["output"]["shape"][1:])
                scale = eager.abs().max()
                assert (got - eager).abs().max() <= 1e-4 * scale, (n, s)


def test_files_carry_what_they_were_exported_from(runs, tmp_path):
    export_run(runs["gei"], "torchscript", tmp_path / "gei.pt")
    with zipfile.ZipFile(tmp_path / "gei.pt") as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/gaitflow.json"))
        meta = json.loads(archive.read(name))
    assert meta["backbone"] == "gei" and meta["frame_shape"] == list(FRAME_SHAPE) and meta["min_frames"] == 3
    assert "same number of real frames" in meta["limits"]

    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: ONNX graphs cannot be run")
    export_run(runs["gei"], "onnx", tmp_path / "gei.onnx")
    props = ort.InferenceSession(str(tmp_path / "gei.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(props["gaitflow.backbone"]) == "gei" and json.loads(props["gaitflow.iteration"]) == 7


def test_a_padded_batch_is_not_what_the_graph_takes(runs, tmp_path):
    """The documented limit: the graph has no lengths, so padding counts as frames (batch by length instead)."""
    export_run(runs["gei"], "torchscript", tmp_path / "gei.pt")
    graph = run_exported("torchscript", tmp_path / "gei.pt")
    model, _ = load_run(runs["gei"])
    short = torch.rand(1, 5, *FRAME_SHAPE)
    padded = torch.cat([short, torch.zeros(1, 4, *FRAME_SHAPE)], 1)
    with torch.no_grad():
        assert torch.allclose(graph(short), model(padded, torch.tensor([5])).embeddings, atol=1e-6)
        assert not torch.allclose(graph(padded), model(padded, torch.tensor([5])).embeddings, atol=1e-3)


@pytest.mark.parametrize("backbone", REFUSED["onnx"])
def test_a_backbone_that_cannot_be_exported_is_one_line_and_writes_nothing(runs, tmp_path, backbone):
    out = tmp_path / "exports" / f"{backbone}.onnx"
    with pytest.raises(GaitflowError) as err:
        export_run(runs[backbone], "onnx", out)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{backbone} cannot be exported to ONNX: its forward branches on a value read back")
    assert "gaitflow/models/gaitgl.py" in message and "repeat_short" in message and "torchscript" in message
    assert list(tmp_path.iterdir()) == []  # not even the folder


def test_the_file_is_written_under_a_temporary_name_and_renamed(runs, tmp_path, monkeypatch):
    out = tmp_path / "gaitset.pt"
    out.write_bytes(b"an older export")
    seen = []
    runner = export._runner

    def checked(fmt, path):
        # while the new file is checked it lies beside the target, under another name; the old one is intact
        seen.append(path)
        assert path.parent == out.parent and path != out and path.stat().st_size > 0
        assert out.read_bytes() == b"an older export"
        return runner(fmt, path)

    monkeypatch.setattr(export, "_runner", checked)
    export_run(runs["gaitset"], "torchscript", out)
    assert len(seen) == 1 and not seen[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaitset.pt"]
    torch.jit.load(str(out))  # the new file, whole


def test_a_file_that_fails_its_check_is_not_kept(runs, tmp_path, monkeypatch):
    out = tmp_path / "gaitset.pt"
    out.write_bytes(b"an older export")
    runner = export._runner
    monkeypatch.setattr(export, "_runner", lambda fmt, path: lambda x: 1.01 * runner(fmt, path)(x))
    with pytest.raises(GaitflowError, match=r"^gaitset cannot be exported to TorchScript: on 1 sequence\(s\) of 3 "):
        export_run(runs["gaitset"], "torchscript", out)
    assert out.read_bytes() == b"an older export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaitset.pt"]

    def broken(path):
        path.write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    new = tmp_path / "new" / "deeper" / "gaitset.pt"
    monkeypatch.setattr(torch.jit, "save", lambda module, path, **kw: broken(Path(path)))
    with pytest.raises(GaitflowError, match=r"gaitset.pt: could not be written \(No space left on device\)"):
        export_run(runs["gaitset"], "torchscript", new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaitset.pt"]  # no folder, no temporary file


@pytest.mark.parametrize("args", [(3, 1, 1), (5, 1, 2), (2,), (3, 2, 1, 2), ((3,), (2,), (1,), (1,), True)])
def test_max_pool1d_is_rewritten_with_the_same_values(args):
    """GaitPart's max_pool1d goes through torch.export as max_pool2d over one row (it keeps the frame count free)."""
    x = torch.randn(2, 6, 11)
    with export._MaxPool1dAs2d():
        rewritten = torch.nn.functional.max_pool1d(x, *args)
        plain = torch.max_pool1d(x, *args)
    assert torch.equal(rewritten, torch.nn.functional.max_pool1d(x, *args)) and torch.equal(plain, rewritten)


def test_bad_requests_are_one_line(runs, tmp_path):
    with pytest.raises(GaitflowError, match=r"export format 'tflite': expected one of onnx, torchscript"):
        export_run(runs["gei"], "tflite", tmp_path / "x")
    with pytest.raises(GaitflowError, match=r"exported graphs take at least 3 frames"):
        export_run(runs["gei"], "torchscript", tmp_path / "x.pt", frames=(2, 5))
    with pytest.raises(GaitflowError, match=r"a folder; give the file to write"):
        export_run(runs["gei"], "torchscript", tmp_path)
    with pytest.raises(GaitflowError, match=r"config.yaml: not found"):
        export_run(tmp_path / "missing", "torchscript", tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_the_command_line(runs, tmp_path, capsys):
    from gaitflow.cli import main

    out = tmp_path / "m.pt"
    assert main(["export", "--run", str(runs["gaitset"]), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.exists() and "export gaitset -> " in capsys.readouterr().out
    refused = tmp_path / "g.onnx"
    assert main(["export", "--run", str(runs["gaitgl"]), "--format", "onnx", "--out", str(refused)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gaitflow export: error: gaitgl cannot be exported to ONNX") and "\n" not in err
    assert not refused.exists()
