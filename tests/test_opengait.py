"""Importing the reference framework's (OpenGait's) checkpoints (gaitflow.opengait).

The fixtures in tests/fixtures/opengait/ are outputs of OpenGait's own model code
(ShiqiYu/OpenGait@0efafd4779f127fbce34f22aff301bd82e923da5), run outside this
project on random weights at a small width: for each backbone a checkpoint in
OpenGait's format ({"model", "optimizer", "scheduler", "iteration"}), and the
reference's ``inference_feat["embeddings"]`` (and its logits) for the three
sequences of inputs.pt (13, 6 and 2 frames of 64 x 44, uint8 / 255), each run
alone in eval mode. docs/opengait.md says how they were made.
"""

import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, as_sets

from gaitflow.cli import main
from gaitflow.errors import GaitflowError
from gaitflow.opengait import TRANSLATE, build, import_checkpoint, read_checkpoint
from gaitflow.runs import CHECKPOINT, CONFIG, load_run

FIXTURES = Path(__file__).parent / "fixtures" / "opengait"
# fixture -> (backbone, what the importer must find in its shapes)
CASES = {
    "gaitset": ("gaitset", {}),
    "gaitpart": ("gaitpart", {}),
    "gaitgl-casiab": ("gaitgl", {"variant": "casia-b"}),
    "gaitgl-oumvlp": ("gaitgl", {"variant": "ou-mvlp"}),
    "gln-phase1": ("gln", {"phase": 1}),
    "gln-phase2": ("gln", {"phase": 2}),
    "deepgaitv2-p3d": ("deepgaitv2", {"mode": "p3d", "layers": [1, 2, 2, 1]}),
    "deepgaitv2-3d": ("deepgaitv2", {"mode": "3d"}),
    "deepgaitv2-2d": ("deepgaitv2", {"mode": "2d"}),
}
TOLERANCE = 1e-5  # largest difference relative to the largest magnitude of the reference's output


def _inputs() -> list[torch.Tensor]:
    return [x.float() / 255 for x in torch.load(FIXTURES / "inputs.pt", weights_only=True)["inputs"]]


def _expected(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.expected.pt", weights_only=True)


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _ours_as_theirs(logits: torch.Tensor, backbone: str) -> torch.Tensor:
    """Our logits [P, K] in the reference's layout: [K, P], or GLN's [1, K]."""
    return logits if backbone == "gln" else logits.T


def test_every_fixture_comes_from_the_named_reference_commit():
    for name in CASES:
        assert _expected(name)["reference"] == "ShiqiYu/OpenGait@0efafd4779f127fbce34f22aff301bd82e923da5"
    assert {b for b, _ in CASES.values()} == set(TRANSLATE)  # every importable backbone has a fixture


@pytest.mark.parametrize("name", CASES)
def test_embeddings_equal_the_reference_models(name):
    backbone, found = CASES[name]
    model, params, _, _ = build(backbone, read_checkpoint(FIXTURES / f"{name}.pt")["model"], (64, 44))
    assert {k: params[k] for k in found} == found
    expected = _expected(name)
    errors = []
    with torch.no_grad():
        for x, emb, logits in zip(_inputs(), expected["embeddings"], expected["logits"]):
            out = model(x[None])
            errors.append(_relative(out.embeddings[0].T, emb))  # ours [P, C], theirs [C, P]
            assert (out.logits is None) == (logits is None)
            if logits is not None:
                errors.append(_relative(_ours_as_theirs(out.logits[0], backbone), logits))
    print(f"{name}: largest relative error {max(errors):.1e}")  # a figure, reported by -s
    assert max(errors) <= TOLERANCE


@pytest.mark.parametrize(
    "name", ["gaitset", "gaitpart", "gaitgl-casiab", "gaitgl-oumvlp", "gln-phase1", "deepgaitv2-p3d"]
)
def test_a_padded_batch_gives_what_the_reference_gives_each_sequence_alone(name):
    backbone, _ = CASES[name]
    model, *_ = build(backbone, read_checkpoint(FIXTURES / f"{name}.pt")["model"], (64, 44))
    inputs = _inputs()
    lengths = torch.tensor([len(x) for x in inputs])
    batch = torch.zeros(len(inputs), int(lengths.max()), 64, 44)
    for i, x in enumerate(inputs):
        batch[i, : len(x)] = x
    with torch.no_grad():
        out = model(batch, lengths).embeddings
    for i, emb in enumerate(_expected(name)["embeddings"]):
        assert _relative(out[i].T, emb) <= TOLERANCE


def test_an_imported_run_loads_embeds_and_records_where_it_came_from(tmp_path):
    out = tmp_path / "models" / "imported" / "gaitgl-zoo"
    done = import_checkpoint(FIXTURES / "gaitgl-oumvlp.pt", "gaitgl", out, label="GaitGL (OpenGait zoo)")
    assert done["params"] == {"variant": "ou-mvlp"} and done["classes"] == 12 and done["iteration"] == 3
    model, config = load_run(out)
    assert config["label"] == "GaitGL (OpenGait zoo)" and config["name"] == "gaitgl-zoo"
    assert config["imported"]["format"] == "opengait" and config["iteration"] == 3
    with torch.no_grad():
        emb = model(_inputs()[0][None]).embeddings[0].T
    assert _relative(emb, _expected("gaitgl-oumvlp")["embeddings"][0]) <= TOLERANCE
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT, CONFIG]


def test_the_command_line_imports_and_evaluate_scores_it(project, capsys):
    sets = as_sets(TINY + ["preprocess.img_size=64", "tracking.enabled=false"])
    assert main(["synth", "--quiet", *sets]) == 0
    assert main(["preprocess", "--quiet", *sets]) == 0
    args = ["--checkpoint", str(FIXTURES / "gaitset.pt"), "--backbone", "gaitset", "--label", "GaitSet (zoo)"]
    assert main(["import-checkpoint", "--format", "opengait", *args, "--out", "zoo", *sets]) == 0
    assert "gaitset embedding=256, width 0.125" in capsys.readouterr().out
    metrics_file = project / "m.json"
    assert main(["evaluate", "--imported", "zoo", "--run", "zoo", "--out", str(metrics_file), "--quiet", *sets]) == 0
    metrics = yaml.safe_load(metrics_file.read_text())
    assert metrics["method"] == "zoo" and metrics["label"] == "GaitSet (zoo)" and metrics["recipe"] is None
    assert metrics["imported"]["iteration"] == 3 and 0 <= metrics["rank1"]["NM"] <= 100


def test_fine_tuning_starts_from_the_imported_weights(project):
    from gaitflow.models import create_model
    from gaitflow.train import start_from

    import_checkpoint(FIXTURES / "deepgaitv2-p3d.pt", "deepgaitv2", project / "zoo")
    _, config = load_run(project / "zoo")
    fresh = create_model("deepgaitv2", width=1.0, num_classes=4, **config["backbone_params"])
    skipped = start_from(fresh, project / "zoo", "deepgaitv2", 4)
    assert skipped == ["bnneck.weight"]  # 10 classes there, 4 here: the classifier starts fresh
    imported = torch.load(project / "zoo" / CHECKPOINT, weights_only=True)["model"]
    ours = fresh.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in imported.items() if k != "bnneck.weight")
    with pytest.raises(GaitflowError, match="a deepgaitv2 run; this run trains gaitset"):
        start_from(create_model("gaitset"), project / "zoo", "gaitset", 4)
    narrow = create_model("deepgaitv2", width=0.5, num_classes=4, **config["backbone_params"])
    with pytest.raises(GaitflowError, match="its weights do not fit this deepgaitv2"):
        start_from(narrow, project / "zoo", "deepgaitv2", 4)


def test_train_init_from_an_imported_run(project, capsys):
    sets = as_sets(
        TINY
        + ["datasets.casiab-syn.synth.ids=6", "preprocess.img_size=64", "train.width=0.125", "train.p=2"]
        + ["train.k=2", "train.frames=4", "train.iterations=2", "train.warmup=1", "train.milestones=[1]"]
        + ["train.threads=1", "tracking.enabled=false"]
    )
    assert main(["synth", "--quiet", *sets]) == 0
    assert main(["preprocess", "--quiet", *sets]) == 0
    assert (
        main(["import-checkpoint", "--checkpoint", str(FIXTURES / "gaitset.pt"), "--backbone", "gaitset", *sets]) == 0
    )
    zoo = project / "models" / "imported" / "gaitset"
    args = ["train", "--backbone", "gaitset", "--recipe", "triplet", "--init-from", str(zoo), "--quiet", *sets]
    assert main([*args, "--out", "tuned"]) == 0
    config = yaml.safe_load((project / "tuned" / CONFIG).read_text())
    assert config["init_from"]["run"] == str(zoo)
    assert main([*args, "--out", "tuned"]) == 0  # the same command resumes (nothing left to train)
    assert "iterations" in capsys.readouterr().out


# ---- bad checkpoints: one line each, nothing written


def _import(path, backbone, out, *extra):
    return main(["import-checkpoint", "--checkpoint", str(path), "--backbone", backbone, "--out", str(out), *extra])


def _bad(tmp_path, capsys, path, backbone, message, *extra):
    out = tmp_path / "run"
    assert _import(path, backbone, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path, capsys, project):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": Evil()}, protocol=2))
    _bad(tmp_path, capsys, path, "gaitset", "not only tensors and plain values; refused")
    assert not (tmp_path / "pwned").exists()


def test_not_a_reference_checkpoint(tmp_path, capsys, project):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    _bad(tmp_path, capsys, text, "gaitset", "not a readable PyTorch checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, plain)
    _bad(tmp_path, capsys, plain, "gaitset", "not an OpenGait checkpoint (expected a dict with model")
    _bad(tmp_path, capsys, tmp_path / "missing.pt", "gaitset", "no such checkpoint file")


def test_a_checkpoint_for_another_backbone_or_variant(tmp_path, capsys, project):
    _bad(tmp_path, capsys, FIXTURES / "gaitset.pt", "gaitgl", "not an OpenGait gaitgl checkpoint")
    _bad(
        tmp_path,
        capsys,
        FIXTURES / "gaitgl-casiab.pt",
        "gaitgl",
        "its weights are for gaitgl variant=casia-b, not variant=ou-mvlp",
        "--expect",
        "variant=ou-mvlp",
    )
    ckpt = torch.load(FIXTURES / "gaitgl-casiab.pt", weights_only=True)
    ckpt["model"]["Head0.fc_bin"] = ckpt["model"]["Head0.fc_bin"][:32]  # 32 parts: not this architecture
    cut = tmp_path / "cut.pt"
    torch.save(ckpt, cut)
    _bad(tmp_path, capsys, cut, "gaitgl", "shapes do not fit gaitgl variant=casia-b width=0.125 at 64x44: head.weight")
    _bad(tmp_path, capsys, FIXTURES / "gaitset.pt", "mt3d", "OpenGait checkpoints can be imported for gaitset")


def test_the_params_schema_lists_the_importable_backbones():
    from gaitflow.config import schema

    entry = schema()["properties"]["imported"]["additionalProperties"]["properties"]
    assert sorted(entry["backbone"]["enum"]) == sorted(TRANSLATE)
