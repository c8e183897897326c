"""The speed settings of `annotate`: the command line's, and datasets made before they existed."""

import json

import pytest

from mit_annotator.core.documents import FORMAT_VERSION
from mit_annotator.pipeline.annotate import AnnotateSettings
from mit_annotator.pipeline.batch import SETTINGS_FORMAT, BatchError, _check_settings
from mit_annotator.pipeline.cli import build_parser
from mit_annotator.pipeline.cli.dataset_commands import annotate_settings


def settings_of(*options, out):
    return annotate_settings(build_parser().parse_args(["annotate", "videos", "--out", str(out), *options]))


def speeds(settings):
    return (settings.detect_every, settings.face_search, settings.faces_every, settings.detector_input,
            settings.encode_preset)


def test_the_command_line_speed_options(tmp_path):
    default = settings_of(out=tmp_path / "a")
    assert speeds(default) == (3, "heads", 2, "fit", "veryfast") == speeds(AnnotateSettings())
    chosen = settings_of("--detect-every", "5", "--face-search", "frame", "--faces-every", "3", "--detector-input",
                         "square", "--encode-preset", "slow", out=tmp_path / "b")
    assert speeds(chosen) == (5, "frame", 3, "square", "slow")
    exact = settings_of("--exact", "--detect-every", "5", "--faces-every", "4", out=tmp_path / "c")
    assert speeds(exact) == (1, "frame", 1, "square", "medium")
    assert exact.vision_speed().exact
    for bad in (["--detect-every", "0"], ["--encode-preset", "quick"], ["--faces-every", "6"],
                ["--detector-input", "wide"]):
        with pytest.raises(SystemExit):
            settings_of(*bad, out=tmp_path / "d")
    with pytest.raises(ValueError, match="encode_preset must be one of ultrafast, .*, got 'quick'"):
        AnnotateSettings(encode_preset="quick")


def folder_made_with(tmp_path, settings: dict):
    book = tmp_path / "dataset" / ".annotate"
    book.mkdir(parents=True)
    (book / "settings.json").write_text(json.dumps({"format": SETTINGS_FORMAT, "version": FORMAT_VERSION,
                                                    "settings": settings}))
    return book


def test_a_dataset_made_before_the_speed_settings_was_made_exact(tmp_path):
    old = AnnotateSettings().to_dict()
    for setting in ("detect_every", "face_search", "encode_preset", "faces_every", "detector_input"):
        del old[setting]  # 0.2.0 recorded none of them
    book = folder_made_with(tmp_path, old)
    # 0.2.0 looked at every whole frame and encoded with x264's medium preset: what --exact does
    _check_settings(book, AnnotateSettings(detect_every=1, face_search="frame", faces_every=1,
                                           detector_input="square", encode_preset="medium"))
    with pytest.raises(BatchError, match=r"other settings \(detect_every, detector_input, encode_preset, "
                                         r"face_search, faces_every differ\)"):
        _check_settings(book, AnnotateSettings())


def test_a_dataset_made_before_faces_at_a_stride_searched_every_frame_on_the_square(tmp_path):
    made_by_0_3 = AnnotateSettings().to_dict()
    del made_by_0_3["faces_every"], made_by_0_3["detector_input"]  # 0.3 recorded the other speeds
    book = folder_made_with(tmp_path, made_by_0_3)
    _check_settings(book, AnnotateSettings(faces_every=1, detector_input="square"))
    with pytest.raises(BatchError, match=r"other settings \(detector_input, faces_every differ\)"):
        _check_settings(book, AnnotateSettings())
