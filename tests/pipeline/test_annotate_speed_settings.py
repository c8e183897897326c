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


def test_the_command_line_speed_options(tmp_path):
    default = settings_of(out=tmp_path / "a")
    assert (default.detect_every, default.face_search) == (3, "heads") == (AnnotateSettings().detect_every,
                                                                          AnnotateSettings().face_search)
    chosen = settings_of("--detect-every", "5", "--face-search", "frame", out=tmp_path / "b")
    assert (chosen.detect_every, chosen.face_search) == (5, "frame")
    exact = settings_of("--exact", "--detect-every", "5", out=tmp_path / "c")
    assert (exact.detect_every, exact.face_search) == (1, "frame") and exact.vision_speed().exact
    with pytest.raises(SystemExit):
        settings_of("--detect-every", "0", out=tmp_path / "d")


def test_a_dataset_made_before_the_speed_settings_was_made_exact(tmp_path):
    book = tmp_path / "dataset" / ".annotate"
    book.mkdir(parents=True)
    old = AnnotateSettings().to_dict()
    del old["detect_every"], old["face_search"]  # 0.2.0 did not record them: it looked at every whole frame
    (book / "settings.json").write_text(json.dumps({"format": SETTINGS_FORMAT, "version": FORMAT_VERSION,
                                                    "settings": old}))
    _check_settings(book, AnnotateSettings(detect_every=1, face_search="frame"))  # the same: resumes
    with pytest.raises(BatchError, match=r"other settings \(detect_every, face_search differ\)"):
        _check_settings(book, AnnotateSettings())
