"""Concurrent jobs get a GPU each (Snakemake counts GPUs but never assigns them)."""

from __future__ import annotations

import subprocess
import sys

from gaitflow import devices

CLAIM = (
    "import sys, time; from gaitflow.devices import claim_gpu; "
    "print(claim_gpu(wait=0.1, timeout=float(sys.argv[1])), flush=True); time.sleep(float(sys.argv[2]))"
)


def _claim(env, timeout=5.0, hold=0.0):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(timeout), str(hold)], env=env, stdout=subprocess.PIPE, text=True
    )


def test_each_job_is_pinned_to_a_different_free_gpu(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "3,5", "GAITFLOW_GPU_LOCKS": str(tmp_path)}
    first = _claim(env, hold=5)
    assert first.stdout.readline().strip() == "3"
    second = _claim(env, hold=5)
    assert second.stdout.readline().strip() == "5"
    third = _claim(env, timeout=0.3)  # both taken: waits, then gives up
    assert third.communicate()[0].strip() == "None"
    first.kill()  # a killed job releases its GPU
    first.wait()
    fourth = _claim(env)
    assert fourth.communicate()[0].strip() == "3"
    second.kill()
    second.wait()


def test_nothing_to_choose_leaves_the_environment_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("GAITFLOW_GPU_LOCKS", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # SLURM handed us one GPU
    assert devices.claim_gpu() is None and devices.visible_gpus() == ["7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.visible_gpus() == [] and devices.claim_gpu() is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun: each rank takes LOCAL_RANK
    assert devices.claim_gpu() is None
    assert list(tmp_path.iterdir()) == []
