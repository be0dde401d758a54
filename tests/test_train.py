"""Training runs: reproducible, resumable after a real kill, stopped cleanly on NaN, safe checkpoints."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY

from gaitflow.cli import main
from gaitflow.errors import GaitflowError
from gaitflow.train import load_checkpoint

TRAIN = TINY + [
    "datasets.casiab-syn.synth.ids=6",
    "train.p=2",
    "train.k=2",
    "train.frames=4",
    "train.iterations=6",
    "train.width=0.25",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.warmup=2",
    "train.milestones=[4]",
    "train.threads=1",
    "tracking.enabled=false",
]


def _sets(extra=()):
    return [a for s in [*TRAIN, *extra] for a in ("--set", s)]


@pytest.fixture
def packed(project):
    assert main(["synth", "--quiet", *_sets()]) == 0
    assert main(["preprocess", "--quiet", *_sets()]) == 0
    return project


def _weights(path):
    return load_checkpoint(path)["model"]


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_same_seed_same_weights_and_evaluation(packed):
    for out in ("a", "b"):
        assert (
            main(
                [
                    "train",
                    "--quiet",
                    "--backbone",
                    "gaitset",
                    "--recipe",
                    "triplet+drpl+gsam",
                    "--out",
                    f"models/{out}",
                    *_sets(),
                ]
            )
            == 0
        )
    assert _same(_weights(packed / "models/a/checkpoint.pt"), _weights(packed / "models/b/checkpoint.pt"))
    log = [json.loads(line) for line in (packed / "models/a/train.log").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert {"triplet_ba", "drpl_bh", "gsam_ce", "gsam_variance", "lr", "iterations_per_second", "data_share"} <= set(
        log[-1]
    )
    assert 0 < log[-1]["data_share"] < 1
    assert (
        main(
            [
                "evaluate",
                "--quiet",
                "--backbone",
                "gaitset",
                "--recipe",
                "triplet+drpl+gsam",
                "--run",
                "models/a",
                *_sets(),
            ]
        )
        == 0
    )
    metrics = json.loads((packed / "results/casiab-syn/gaitset-triplet+drpl+gsam-s0/metrics.json").read_text())
    assert set(metrics["rank1"]) == {"NM", "BG", "CL"} and metrics["iterations"] == 6
    assert {"rank1", "rank5", "mAP", "mINP"} <= set(metrics["retrieval"])


def test_resume_after_a_real_kill_ends_with_the_same_weights(packed):
    longer = ["train.iterations=40", "train.checkpoint_every=5", "train.milestones=[30]"]
    assert (
        main(
            [
                "train",
                "--quiet",
                "--backbone",
                "gaitpart",
                "--recipe",
                "triplet+gsam",
                "--out",
                "models/whole",
                *_sets(longer),
            ]
        )
        == 0
    )
    cmd = [
        sys.executable,
        "-m",
        "gaitflow.cli",
        "train",
        "--quiet",
        "--backbone",
        "gaitpart",
        "--recipe",
        "triplet+gsam",
        "--out",
        "models/killed",
        *_sets(longer),
    ]
    ckpt = packed / "models/killed/checkpoint.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint(ckpt)["iteration"]
    assert 0 < stopped_at < 40, "the run must be killed part-way"
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed from iteration {stopped_at}" in done.stdout
    assert _same(_weights(packed / "models/whole/checkpoint.pt"), _weights(ckpt))
    iterations = [
        json.loads(line)["iteration"] for line in (packed / "models/killed/train.log").read_text().splitlines()
    ]
    assert iterations == sorted(set(iterations))  # no iteration logged twice


def test_nan_loss_stops_with_one_line_and_keeps_the_last_checkpoint(packed, monkeypatch, capsys):
    import gaitflow.train as tr

    real = tr.build_recipe

    def poisoned(*args, **kwargs):
        recipe = real(*args, **kwargs)
        forward = recipe.forward

        def nan_at_three(emb, logits, labels, t=0, T=1, **options):
            total, parts = forward(emb, logits, labels, t, T, **options)
            return (total * float("nan"), parts) if t == 3 else (total, parts)

        recipe.forward = nan_at_three
        return recipe

    monkeypatch.setattr(tr, "build_recipe", poisoned)
    rc = main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", *_sets()])
    err = capsys.readouterr().err
    assert rc == 2 and "iteration 3: the loss is not finite (triplet" in err and err.count("\n") == 1
    assert load_checkpoint(packed / "models/casiab-syn/gaitset-triplet-s0/checkpoint.pt")["iteration"] == 2


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"model": Evil()}, protocol=2))
    with pytest.raises(GaitflowError, match="not a loadable gaitflow checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_unknown_backbone_or_recipe_is_one_line(packed, capsys):
    assert main(["train", "--backbone", "gaitnet", "--recipe", "triplet", *_sets()]) == 2
    assert "--backbone 'gaitnet': not in params.yaml backbones" in capsys.readouterr().err
    assert main(["train", "--backbone", "gaitset", "--recipe", "arcface", *_sets()]) == 2
    assert "--recipe 'arcface': not in params.yaml recipes" in capsys.readouterr().err


def test_two_processes_under_torchrun_train_with_gloo(packed):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "gaitflow.cli",
        "train",
        "--quiet",
        "--backbone",
        "gaitset",
        "--recipe",
        "triplet+gsam",
        "--out",
        "models/ddp",
        *_sets(),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("train gaitset-triplet+gsam") == 1  # rank 0 reports
    ckpt = load_checkpoint(packed / "models/ddp/checkpoint.pt")
    assert ckpt["iteration"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_evaluate_refuses_a_broken_run_folder(project, capsys):
    run = project / "models/casiab-syn/gaitset-triplet-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("dataset: casiab-syn\n")
    assert main(["evaluate", "--backbone", "gaitset", "--recipe", "triplet", *_sets()]) == 2
    err = capsys.readouterr().err
    assert "config.yaml: not a gaitflow run configuration" in err and err.count("\n") == 1


def test_prefetched_stream_resumes_from_the_state_after_each_batch(packed):
    """The background producer runs ahead; the state saved with batch i must regenerate batch i + 1."""
    import numpy as np

    from gaitflow.config import load_params
    from gaitflow.data.dataset import PackedDataset
    from gaitflow.data.sampler import PKSampler
    from gaitflow.train import batch_stream

    cfg = load_params("params.yaml", TRAIN)["train"]
    data = PackedDataset(packed / "data/processed/casiab-syn")
    train_idx = data.split("TRAIN_SET")
    labels, _ = data.labels(train_idx)

    def fresh():
        return PKSampler(labels, cfg["p"], cfg["k"], seed=0), np.random.default_rng(1)

    sampler, rng = fresh()
    ahead = batch_stream(data, train_idx, labels, sampler, rng, cfg, 0, 1, torch.device("cpu"), prefetch=True)
    first = [next(ahead) for _ in range(3)]
    time.sleep(0.2)  # let the producer run ahead of the consumer
    ahead.close()
    sampler2, rng2 = fresh()
    sampler2.load_state_dict(first[1][3]["sampler"])
    rng2.bit_generator.state = first[1][3]["rng"]
    resumed = next(
        batch_stream(data, train_idx, labels, sampler2, rng2, cfg, 0, 1, torch.device("cpu"), prefetch=False)
    )
    assert torch.equal(resumed[0], first[2][0]) and np.array_equal(resumed[2], first[2][2])


def test_the_log_holds_each_components_loss_and_gradient_norm(packed, tmp_path):
    from gaitflow.plots import loss_curve

    assert main(["train", "--backbone", "gaitset", "--recipe", "triplet+gsam", "--quiet", *_sets()]) == 0
    log = packed / "models" / "casiab-syn" / "gaitset-triplet+gsam-s0" / "train.log"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 6  # log_every=1
    for row in rows:
        assert {"loss/triplet", "grad_norm/triplet", "loss/gsam", "grad_norm/gsam"} <= set(row)
        assert row["grad_norm/triplet"] > 0
    assert rows[0]["grad_norm/gsam"] == 0  # gamma_t = 0 at t = 0: GSAM has no weight yet
    assert all(row["grad_norm/gsam"] > 0 for row in rows[1:])
    assert loss_curve(log, tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_schedulers_signal_checkpoints_at_once_and_exits_non_zero(packed, sig):
    """SIGTERM / SIGUSR1 (a time limit or preemption ahead): a checkpoint after the current
    iteration, exit non-zero, and the same command resumes from there."""
    longer = ["train.iterations=400", "train.checkpoint_every=1000", "train.milestones=[300]"]
    cmd = [sys.executable, "-m", "gaitflow.cli", "train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet"]
    cmd += ["--out", "models/done", "--work", "models/work", *_sets(longer)]
    log = packed / "models/work/train.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while (not log.exists() or log.stat().st_size < 300) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)  # a few iterations logged: well before the first periodic checkpoint (1000)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    name = signal.Signals(sig).name
    stopped = int(err.split(f"{name} at iteration ")[1].split(":")[0])
    assert 0 < stopped < 400 and err.count("\n") == 1
    logged = [json.loads(line)["iteration"] for line in log.read_text().splitlines()]
    assert load_checkpoint(packed / "models/work/checkpoint.pt")["iteration"] == stopped >= logged[-1]
    assert not (packed / "models/done").exists()  # not promoted: the run is not finished
    done = subprocess.run(cmd, capture_output=True, text=True)  # the same command
    assert done.returncode == 0, done.stderr
    assert f"resumed from iteration {stopped}" in done.stdout
    assert load_checkpoint(packed / "models/done/checkpoint.pt")["iteration"] == 400
    # promoted into --out as hard links; the work folder stays until the output is known safe
    assert os.path.samefile(packed / "models/work/checkpoint.pt", packed / "models/done/checkpoint.pt")


def test_a_work_checkpoint_from_other_settings_is_set_aside_and_training_starts_over(packed):
    cmd = [sys.executable, "-m", "gaitflow.cli", "train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet"]
    cmd += ["--out", "models/done", "--work", "models/work"]
    first = subprocess.run([*cmd, *_sets(["train.iterations=4"])], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    # the finished run's work folder, as a killed job's rerun finds it
    assert (packed / "models/work/checkpoint.pt").exists()
    changed = subprocess.run([*cmd, *_sets(["train.iterations=4", "train.lr=0.05"])], capture_output=True, text=True)
    assert changed.returncode == 0, changed.stderr
    assert "was written with other settings, code or data; starting over" in changed.stderr
    assert "resumed" not in changed.stdout


def test_a_negative_seed_is_one_line(project, capsys):
    assert main(["train", "--backbone", "gaitset", "--recipe", "triplet", "--seed", "-1", *_sets()]) == 2
    err = capsys.readouterr().err
    assert "--seed -1: expected a non-negative integer" in err and err.count("\n") == 1
