"""``gaitflow identify``: who walks in these sequences? A trained run ranks a gallery's identities.

The gallery is a folder or an archive of silhouette sequences in any layout
gaitflow reads (CASIA-B, OU-MVLP, Gait3D, GREW, CCPG, OpenGait's trees) or
simply ``<id>/<seq>/*.png``; the layout that explains the most files is used,
and a sequence's identity is its key's subject. A probe is one sequence folder
(its PNG frames) or a folder of sequence folders. Frames get the standard
pretreatment on the fly, at the run's size (``gaitflow.data.pretreat``), and
each sequence is embedded whole with the run's model (``gaitflow.runs``). Each
probe gets the gallery's identities ranked by their nearest sequence, with
the distance.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from gaitflow.data import archive
from gaitflow.data.layouts import LAYOUTS, SequenceKey, is_labelled
from gaitflow.data.pretreat import cut_width, decode, pretreat
from gaitflow.errors import GaitflowError

# How a plain tree names a sequence: <id>/<seq>/<frame>.png (any top folders above).
PLAIN = "<id>/<seq>"
RANKS_COLUMNS = ("probe", "rank", "identity", "distance")


def _pngs(path: Path) -> list[tuple[str, bytes]]:
    """Every PNG of a folder or archive, as (name, bytes), in name order; an unreadable one's bytes
    are empty (it decodes to no frame)."""
    kind = archive.source_kind(path)
    if kind == "tar-stream":
        return sorted((name, bytes(data)) for name, data in archive.stream_tar(path, ".png"))
    reader = archive.RandomAccessReader(path, kind)
    try:
        return [(name, _read(reader.read, loc)) for name, loc in archive.list_members(path, kind, ".png")]
    finally:
        reader.close()


def _read(read, where) -> bytes:
    """A frame's bytes by ``read(where)``; empty when they cannot be had (damaged, too large, not a file)."""
    try:
        return bytes(read(where))
    except (OSError, ValueError):
        return b""


def _plain_key(name: str) -> SequenceKey | None:
    """<id>/<seq>/<frame>.png below the gallery's common top folders, exactly."""
    parts = name.split("/")
    return SequenceKey(parts[0], parts[1], "") if len(parts) == 3 else None


def _relative(names: list[str]) -> list[str]:
    """Names without the folders every one of them starts with (an archive's top folder)."""
    split = [n.replace("\\", "/").split("/") for n in names]
    common = 0  # leave the three components a plain <id>/<seq>/<frame> needs
    while all(len(p) > common + 3 for p in split) and len({p[common] for p in split}) == 1:
        common += 1
    return ["/".join(p[common:]) for p in split]


def group_sequences(names: list[str]) -> tuple[str, dict[SequenceKey, list[int]]]:
    """(layout used, frame positions per sequence): the layout that parses the most names wins."""
    best, best_groups = PLAIN, None
    relative = _relative(names)  # the generic trees are read below the common top folders
    generic = {"opengait", PLAIN}
    for layout, parse in [*((n, lay.parse) for n, lay in LAYOUTS.items()), (PLAIN, _plain_key)]:
        groups: dict[SequenceKey, list[int]] = defaultdict(list)
        for i, name in enumerate(relative if layout in generic else names):
            if (key := parse(name)) is not None:
                groups[key].append(i)
        if best_groups is None or sum(map(len, groups.values())) > sum(map(len, best_groups.values())):
            best, best_groups = layout, groups
    return best, dict(best_groups or {})


def pretreated(frames: list[bytes], size: int, min_foreground: int) -> np.ndarray:
    """A sequence's PNG frames -> its kept frames [n, size, window - 2 cut], as the reader gives them."""
    cut = cut_width(size)
    kept = []
    for data in frames:
        img = decode(data)
        if img is None:
            continue
        frame, _ = pretreat(img, size, min_foreground)
        if frame is not None:
            kept.append(frame[:, cut : frame.shape[1] - cut] if cut else frame)
    return np.stack(kept) if kept else np.zeros((0, size, 0), np.uint8)


def probe_sequences(paths: list[Path]) -> list[tuple[str, list[bytes]]]:
    """(name, PNG frames) of each probe: a folder of PNGs is one sequence; a folder of folders, several."""
    out = []
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise GaitflowError(f"--probe {path}: not a folder; expected a sequence folder of PNG frames")
        direct = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and not p.is_dir())
        if direct:
            out.append((str(path), [_read(archive.read_file, p) for p in direct]))
            continue
        subfolders = sorted(p for p in path.iterdir() if p.is_dir())
        if not subfolders:
            out.append((str(path), []))  # no frame at all: reported with the other unusable probes
        for sub in subfolders:
            frames = sorted(p for p in sub.glob("*.png") if not p.is_dir())
            out.append((str(sub), [_read(archive.read_file, p) for p in frames]))
    return out


def identify(run_dir: Path, gallery: Path, probes: list[Path], top: int = 5, device: str = "cpu") -> dict:
    """Rank the gallery's identities for every probe; returns {"ranks": {probe: [(id, distance)]},
    "unusable": [probe names without a usable frame], "layout": ..., "gallery": counts}."""
    from gaitflow.evaluate.distances import pairwise_distance
    from gaitflow.runs import embed_arrays, load_run

    model, config = load_run(run_dir, device)
    size, floor = config["preprocess"]["img_size"], config["preprocess"]["min_foreground"]
    files = _pngs(Path(gallery))
    if not files:
        raise GaitflowError(f"--gallery {gallery}: no PNG frames found; expected sequences of silhouette PNGs")
    layout, groups = group_sequences([name for name, _ in files])
    ids, seqs = [], []
    for key in sorted(groups):
        if not is_labelled(key):
            continue  # a release's identity-less probes are no gallery
        frames = pretreated([files[i][1] for i in groups[key]], size, floor)
        if len(frames):
            ids.append(key.subject)
            seqs.append(frames)
    if not seqs:
        raise GaitflowError(f"--gallery {gallery}: no sequence with a usable frame ({len(files)} PNG files read)")
    if tuple(seqs[0].shape[1:]) != tuple(config["frame_shape"]):
        raise GaitflowError(
            f"{run_dir}: the run was trained on {config['frame_shape'][0]} x {config['frame_shape'][1]} frames, "
            f"the pretreated gallery gives {seqs[0].shape[1]} x {seqs[0].shape[2]}"
        )
    gallery_emb = embed_arrays(model, seqs, device).numpy()
    names, probe_seqs, unusable = [], [], []
    for name, frames in probe_sequences(probes):
        kept = pretreated(frames, size, floor)
        if len(kept):
            names.append(name)
            probe_seqs.append(kept)
        else:
            unusable.append(name)
    ranks = {}
    if probe_seqs:
        distances = pairwise_distance(embed_arrays(model, probe_seqs, device).numpy(), gallery_emb)
        gallery_ids = np.array(ids)
        for name, row in zip(names, distances):
            best: dict[str, float] = {}
            for j in np.argsort(row, kind="stable"):
                best.setdefault(str(gallery_ids[j]), float(row[j]))
            ranks[name] = list(best.items())[:top]
    return {
        "ranks": ranks,
        "unusable": unusable,
        "layout": layout,
        "gallery": {"sequences": len(seqs), "identities": len(set(ids))},
    }


def ranks_csv(ranks: dict[str, list[tuple[str, float]]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RANKS_COLUMNS)
    for probe, ranked in ranks.items():
        for k, (identity, distance) in enumerate(ranked, start=1):
            writer.writerow((probe, k, identity, f"{distance:.6g}"))
    return buf.getvalue()
