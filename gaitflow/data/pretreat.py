"""The standard gait pretreatment of one silhouette frame.

Published results on CASIA-B, OU-MVLP and Gait3D are computed on frames made
by GaitSet's pretreatment script (carried on as OpenGait's
datasets/pretreatment.py). To stay comparable with the literature our frames
must equal that script's to the pixel, quirks included:

1. a frame whose pixel sum is at most ``min_foreground`` (10000) is dropped;
2. rows are cropped to the silhouette's vertical extent (first to last row with
   any foreground); columns are kept whole;
3. the crop is resized to height ``size``, width ``int(size * w / h)``, with
   OpenCV's bicubic interpolation (so the frame is no longer binary);
4. the horizontal centre is the first column whose cumulative column sum
   exceeds half the total; a frame whose centre is column 0 (or none) is dropped;
5. a window of ``2 * (size // 2)`` columns around the centre is cut; when it
   runs off either side, ``size // 2`` zero columns are padded on both sides.

The model later sees this window less ``cut_width(size)`` columns on each side
(64 x 64 -> 64 x 44), done by the dataset reader.

Releases that ship frames already aligned (pickles of 64 x 64 windows, or of
64 x 44 ones already cut) are not pretreated again: :func:`fit_aligned` only
brings them to ``size`` by step 3's rule (bicubic to height ``size``, width in
proportion) and pads or trims the width symmetrically to the same
``2 * (size // 2)`` window, so the reader's cut removes the same columns.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

DROP_EMPTY = "empty frame (too little foreground)"
DROP_NO_CENTRE = "no horizontal centre"
DROP_DEGENERATE = "degenerate silhouette (resized width 0)"
DROP_FLAT = "degenerate silhouette (resized wider than MAX_FRAME_SIDE)"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The largest frame decoded (a 4K video frame is 8.3 million pixels), and the largest side: a
# PNG's header alone sets what decoding it allocates, so a small file may claim gigabytes.
MAX_FRAME_PIXELS = 1 << 24
MAX_FRAME_SIDE = 1 << 16
# Aligned frames are about as wide as high (64 x 64, 64 x 44); one far wider would be resized to
# a frame of that width before its window is cut.
MAX_ALIGNED_ASPECT = 4


def cut_width(size: int) -> int:
    """Columns removed on each side of a size x size frame: 10 at 64, 20 at 128, 5 at 32."""
    return int(round(10 * size / 64))


def pretreat(img: np.ndarray, size: int = 64, min_foreground: int = 10000) -> tuple[np.ndarray | None, str | None]:
    """One grayscale frame -> (size x 2*(size//2) uint8 frame, None) or (None, reason it was dropped)."""
    # int32 sums are exact for rows up to 8 million pixels wide, and 10x faster than float64
    rows = cv2.reduce(img, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    if int(rows.sum(dtype=np.int64)) <= min_foreground:
        return None, DROP_EMPTY
    nonzero = rows.nonzero()[0]
    crop = img[nonzero[0] : nonzero[-1] + 1]
    height, width = crop.shape
    new_width = int(size * (width / height))
    if new_width <= 0:
        return None, DROP_DEGENERATE
    if new_width > MAX_FRAME_SIDE:  # a row or two of foreground across a wide frame: no walker
        return None, DROP_FLAT
    crop = cv2.resize(crop, (new_width, size), interpolation=cv2.INTER_CUBIC)
    cumulative = cv2.reduce(crop, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel().cumsum(dtype=np.int64)
    centre = int(cumulative.searchsorted(cumulative[-1] / 2, side="right"))
    if centre == 0 or centre >= new_width:
        return None, DROP_NO_CENTRE
    half = size // 2
    left, right = centre - half, centre + half
    if left > 0 and right < new_width:
        return crop[:, left:right], None
    # The reference pads `half` zero columns on both sides and shifts the window.
    out = np.zeros((size, 2 * half), np.uint8)
    lo, hi = max(left, 0), min(right, new_width)
    out[:, lo - left : hi - left] = crop[:, lo:hi]
    return out, None


def png_size(data) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when the bytes do not start as a PNG's."""
    head = bytes(data[:24])
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def decode(data) -> np.ndarray | None:
    """A PNG's bytes as a grayscale uint8 image, or None when they are not a readable PNG or
    claim a frame larger than MAX_FRAME_PIXELS (checked in the header, before decoding)."""
    size = png_size(data)
    if size is None or max(size) > MAX_FRAME_SIDE or size[0] * size[1] > MAX_FRAME_PIXELS:
        return None
    buf = np.frombuffer(data, np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        return None
    return img


def fit_aligned(frames: np.ndarray, size: int) -> np.ndarray:
    """Already aligned frames [n, h, w] -> [n, size, 2 * (size // 2)] (see the module docstring).
    Raises ValueError for frames more than MAX_ALIGNED_ASPECT times as wide as high."""
    n, h, w = frames.shape
    if w > MAX_ALIGNED_ASPECT * h:
        raise ValueError(f"frames of {h} x {w} are not aligned windows (at most {MAX_ALIGNED_ASPECT} times as wide)")
    window = 2 * (size // 2)
    new_width = max(1, int(size * (w / h)))
    if (h, w) != (size, new_width):
        frames = np.stack([cv2.resize(f, (new_width, size), interpolation=cv2.INTER_CUBIC) for f in frames])
    if new_width == window:
        return np.ascontiguousarray(frames)
    out = np.zeros((n, size, window), np.uint8)
    if new_width < window:  # already cut at the sides (64 x 44): the cut comes back as zeros
        left = (window - new_width) // 2
        out[:, :, left : left + new_width] = frames
    else:
        left = (new_width - window) // 2
        out[:] = frames[:, :, left : left + window]
    return out
