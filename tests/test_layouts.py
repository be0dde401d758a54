"""Dataset file naming: written paths parse back to the same sequence key."""

import pytest

from gaitflow.data.layouts import LAYOUTS, SequenceKey, condition_of, parse_pkl


@pytest.mark.parametrize(
    "name, condition, number, view, expected",
    [
        ("casia-b", "bg", 2, 72, "012/bg-02/072/012-bg-02-072-007.png"),
        ("ou-mvlp", "nm", 2, 195, "Silhouette_195-01/00012/0007.png"),
    ],
)
def test_write_then_parse_round_trip(name, condition, number, view, expected):
    lay = LAYOUTS[name]
    key = SequenceKey(lay.subject(12, 124), lay.sequence_type(condition, number), lay.view(view))
    path = lay.frame_path(key, 7)
    assert path == expected
    assert lay.parse(path) == key
    assert lay.parse("GaitDatasetB-silh/" + path) == key  # a top folder in the archive is fine


def test_real_release_names_parse():
    assert LAYOUTS["casia-b"].parse("001/nm-01/090/001-nm-01-090-045.png") == ("001", "nm-01", "090")
    assert LAYOUTS["ou-mvlp"].parse("Silhouette_000-00/10307/0001.png") == ("10307", "00", "000")
    assert LAYOUTS["gait3d"].parse("2D_Silhouettes/0000/camid0_videoid2/seq0/human_crop_f11200.png") == (
        "0000",
        "camid0_videoid2",
        "seq0",
    )
    assert LAYOUTS["opengait"].parse("root/7/00/000/a.png") == ("7", "00", "000")


@pytest.mark.parametrize(
    "name, path",
    [
        ("casia-b", "001/xx-01/090/a.png"),  # unknown condition
        ("casia-b", "001/nm-01/90/a.png"),  # view not 3 digits
        ("casia-b", "nm-01/090/a.png"),  # too shallow
        ("casia-b", "001/nm-01/090/a.jpg"),  # not a PNG
        ("ou-mvlp", "Silhouette_000/00001/0001.png"),
        ("opengait", "1/00/000/1-gei.png"),  # GEI images are not frames
    ],
)
def test_paths_outside_the_layout_are_rejected(name, path):
    assert LAYOUTS[name].parse(path) is None


def test_conditions_and_pickles():
    assert condition_of("cl-02") == "cl"
    assert condition_of("00") == "00"
    assert parse_pkl("x/001/nm-01/000/000.pkl") == ("001", "nm-01", "000")
    assert parse_pkl("001/nm-01/000.pkl") is None
