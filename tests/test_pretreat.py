"""The reference pretreatment, frame by frame: crop, resize, centre, window."""

import cv2
import numpy as np
import pytest

from gaitflow.data.pretreat import DROP_EMPTY, DROP_NO_CENTRE, cut_width, pretreat


def reference_steps(img, size=64, min_fg=10000):
    """The published pretreatment written out step by step, slowly and literally, as an oracle."""
    if img.sum() <= min_fg:
        return None
    y_sum = img.sum(axis=1)
    y_top = (y_sum != 0).argmax(axis=0)
    y_btm = (y_sum != 0).cumsum(axis=0).argmax(axis=0)
    img = img[y_top : y_btm + 1, :]
    ratio = img.shape[1] / img.shape[0]
    img = cv2.resize(img, (int(size * ratio), size), interpolation=cv2.INTER_CUBIC)
    x_csum = img.sum(axis=0).cumsum()
    x_center = None
    for idx, csum in enumerate(x_csum):
        if csum > img.sum() / 2:
            x_center = idx
            break
    if not x_center:
        return None
    half = size // 2
    left, right = x_center - half, x_center + half
    if left <= 0 or right >= img.shape[1]:
        left += half
        right += half
        pad = np.zeros((img.shape[0], half))
        img = np.concatenate([pad, img, pad], axis=1)
    return img[:, left:right].astype("uint8")


def test_known_crop_and_centre():
    # A 64-row bar needs no resize (ratio 320/64 -> width 320), so every pixel is known.
    img = np.zeros((240, 320), np.uint8)
    img[50:114, 100:120] = 255
    out, reason = pretreat(img, 64)
    assert reason is None and out.shape == (64, 64)
    # 20 columns; the cumulative mass first exceeds half at column 110 -> window [78, 142)
    expected = np.zeros((64, 64), np.uint8)
    expected[:, 22:42] = 255
    np.testing.assert_array_equal(out, expected)


def test_window_running_off_the_left_edge_is_padded():
    img = np.zeros((240, 320), np.uint8)
    img[10:74, 0:12] = 255  # touching the left border: centre 6, window [-26, 38)
    out, _ = pretreat(img, 64)
    expected = np.zeros((64, 64), np.uint8)
    expected[:, 26:38] = 255
    np.testing.assert_array_equal(out, expected)


def test_empty_and_centreless_frames_are_dropped():
    img = np.zeros((240, 320), np.uint8)
    img[0:5, 0:7] = 255  # 35 pixels: at most 10000 in sum
    assert pretreat(img) == (None, DROP_EMPTY)
    img = np.zeros((240, 320), np.uint8)
    img[:, 0] = 255  # all the mass in column 0: the centre is 0
    assert pretreat(img) == (None, DROP_NO_CENTRE)


@pytest.mark.parametrize("size", [64, 32, 128])
def test_matches_the_reference_steps_to_the_pixel(size):
    rng = np.random.default_rng(size)
    for trial in range(40):
        img = np.zeros((240, 320), np.uint8)
        for _ in range(rng.integers(1, 6)):
            cx, cy = int(rng.integers(-20, 340)), int(rng.integers(0, 240))
            axes = (int(rng.integers(2, 60)), int(rng.integers(2, 90)))
            cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        if trial % 3 == 0:
            img[rng.random(img.shape) < 0.02] = 255  # speckle far from the body
        expected = reference_steps(img, size)
        got, _ = pretreat(img, size)
        if expected is None:
            assert got is None
        else:
            assert got is not None and got.dtype == np.uint8
            np.testing.assert_array_equal(got, expected)


def test_cut_width_keeps_the_published_aspect():
    assert cut_width(64) == 10 and cut_width(128) == 20 and cut_width(32) == 5
