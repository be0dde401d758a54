"""The synthetic walker: deterministic, in the real layout, scaled by params."""

import hashlib
import zipfile

import cv2
import numpy as np

from gaitflow.data import synth, walker
from gaitflow.data.layouts import LAYOUTS


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(tiny_params, tmp_path):
    spec = tiny_params["datasets"]["casiab-syn"]
    spec["synth"]["ids"] = 2
    a, b, c = tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip"
    synth.synthesize(spec, 0, a, "zip", workers=1, progress=False)
    synth.synthesize(spec, 0, b, "zip", workers=2, progress=False)
    synth.synthesize(spec, 1, c, "zip", workers=1, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_archive_holds_the_casia_b_layout(tiny_archive, tiny_params):
    syn = tiny_params["datasets"]["casiab-syn"]["synth"]
    with zipfile.ZipFile(tiny_archive) as zf:
        names = zf.namelist()
        keys = {LAYOUTS["casia-b"].parse(n) for n in names}
        assert None not in keys
        assert len(keys) == syn["ids"] * 10 * len(syn["views"])
        assert {k.type for k in keys} == {f"nm-0{i}" for i in range(1, 7)} | {"bg-01", "bg-02", "cl-01", "cl-02"}
        img = cv2.imdecode(np.frombuffer(zf.read(names[0]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (syn["height"], syn["width"]) and img.dtype == np.uint8
    assert set(np.unique(img)) <= {0, 255}


def test_ou_mvlp_preset_writes_its_layout(project, tmp_path):
    from gaitflow.config import load_params

    params = load_params("params.yaml", ["datasets.oumvlp-syn.synth.ids=2", "datasets.oumvlp-syn.synth.frames=3"])
    jobs = synth.jobs_for(params["datasets"]["oumvlp-syn"], 0)
    assert len(jobs) == 2 * 2 * 14
    files = synth.render_job(jobs[0])
    assert files[0][0] == "Silhouette_000-00/00001/0001.png"
    assert {j.key.type for j in jobs} == {"00", "01"}


def test_identity_is_in_the_body_not_the_frame():
    """Two shots of one identity differ in size and position; proportions are the identity's."""
    body = synth.body_of(0, 3)
    assert body == synth.body_of(0, 3) and body != synth.body_of(0, 4)
    shots = [walker.sample_shot(walker.seeded(0, 2, 3, 0, k, 90), body, "nm", 20, 90) for k in (1, 2)]
    assert shots[0].stature_px != shots[1].stature_px and shots[0].x_frac != shots[1].x_frac


def test_coat_widens_and_bag_adds_to_the_outline():
    body = synth.body_of(0, 5)
    area = {}
    for cond in ("nm", "bg", "cl"):
        shot = walker.sample_shot(walker.seeded(9), body, cond, 12, 90)
        frames = walker.render(body, shot, 320, 240)
        area[cond] = np.mean([(f > 0).sum() for f in frames])
    assert area["cl"] > area["nm"] * 1.1
    assert area["bg"] > area["nm"]


def test_noise_rate_zero_is_clean_and_high_rate_drops_frames():
    body = synth.body_of(0, 1)
    shot = walker.sample_shot(walker.seeded(1), body, "nm", 40, 90)
    clean = walker.render(body, shot, 320, 240)
    rng = np.random.default_rng(0)
    assert all(np.array_equal(f, walker.add_noise(f.copy(), rng, 0.0)) for f in clean)
    noisy = [walker.add_noise(f.copy(), rng, 1.0) for f in clean]
    assert sum(int(f.sum() == 0) for f in noisy) > 0  # missing frames appear
    assert sum(int(not np.array_equal(a, b)) for a, b in zip(clean, noisy)) == len(clean)
