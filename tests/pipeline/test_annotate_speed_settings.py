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
    library = AnnotateSettings()
    assert ((default.detect_every, default.face_search, default.encode_preset) == (3, "heads", "veryfast")
            == (library.detect_every, library.face_search, library.encode_preset))
    chosen = settings_of("--detect-every", "5", "--face-search", "frame", "--encode-preset", "slow", out=tmp_path / "b")
    assert (chosen.detect_every, chosen.face_search, chosen.encode_preset) == (5, "frame", "slow")
    exact = settings_of("--exact", "--detect-every", "5", out=tmp_path / "c")
    assert (exact.detect_every, exact.face_search, exact.encode_preset) == (1, "frame", "medium")
    assert exact.vision_speed().exact
    for bad in (["--detect-every", "0"], ["--encode-preset", "quick"]):
        with pytest.raises(SystemExit):
            settings_of(*bad, out=tmp_path / "d")
    with pytest.raises(ValueError, match="encode_preset must be one of ultrafast, .*, got 'quick'"):
        AnnotateSettings(encode_preset="quick")


def test_a_dataset_made_before_the_speed_settings_was_made_exact(tmp_path):
    book = tmp_path / "dataset" / ".annotate"
    book.mkdir(parents=True)
    old = AnnotateSettings().to_dict()
    del old["detect_every"], old["face_search"], old["encode_preset"]  # 0.2.0 did not record them
    (book / "settings.json").write_text(json.dumps({"format": SETTINGS_FORMAT, "version": FORMAT_VERSION,
                                                    "settings": old}))
    # 0.2.0 looked at every whole frame and encoded with x264's medium preset: what --exact does
    _check_settings(book, AnnotateSettings(detect_every=1, face_search="frame", encode_preset="medium"))
    with pytest.raises(BatchError, match=r"other settings \(detect_every, encode_preset, face_search differ\)"):
        _check_settings(book, AnnotateSettings())
