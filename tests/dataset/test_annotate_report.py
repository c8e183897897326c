"""The dataset report's figures on a manifest made by hand (exact answers), and its errors."""

import json

import cv2
import pytest

from mit_annotator.dataset.manifest import MANIFEST_FORMAT
from mit_annotator.dataset.report import write_report


def row(folder, people, seconds, ratios, faces):
    return {"folder": folder, "source": "s", "video": "v", "start": 0, "end": int(seconds * 25), "people": people,
            "frames": int(seconds * 25), "seconds": seconds, "speaking_ratio": sum(ratios) / len(ratios),
            "speaking_ratios": ratios, "face_px_1080p": faces, "camera_motion": 0.0}


def test_report_figures(tmp_path):
    clips = [row("s_v_000000to000125", 2, 5.0, [0.05, 0.45], [70.0, 100.0]),
             row("s_v_000200to000575", 3, 15.0, [0.3, 0.3, 0.95], [130.0, 200.0, 600.0]),
             row("s_w_000000to000250", 2, 10.0, [0.5, 0.5], [64.0, 64.0])]
    videos = [{"key": "s_v", "input": "v.mp4", "status": "done", "reason": None, "clips": 2, "seconds": 60.0,
               "rejections": {"too_short": 3, "camera_motion": 1}},
              {"key": "s_w", "input": "w.mp4", "status": "done", "reason": None, "clips": 1, "seconds": 12.0,
               "rejections": {"too_short": 1, "face_size": 2}},
              {"key": "s_x", "input": "x.mp4", "status": "failed", "reason": "x.mp4: no audio stream", "clips": 0,
               "seconds": None, "rejections": {}}]
    (tmp_path / "manifest.json").write_text(json.dumps({"format": MANIFEST_FORMAT, "version": 1, "clips": clips,
                                                        "videos": videos}))
    report, json_path, png_path = write_report(tmp_path)
    assert json.loads(json_path.read_text()) == report
    assert report["clips"] == 3 and report["hours"] == pytest.approx(30 / 3600, abs=1e-4)
    assert report["videos"] == {"done": 2, "failed": 1, "hours_annotated": pytest.approx(72 / 3600, abs=1e-4)}
    assert report["clips_per_people"] == {"2": 2, "3": 1}
    assert report["hours_per_people"] == {"2": pytest.approx(15 / 3600, abs=1e-4), "3": pytest.approx(15 / 3600,
                                                                                                       abs=1e-4)}
    # bins: <5, 5-7.5, 7.5-10, 10-12.5, 12.5-15, 15-20, 20-30, 30-60, >=60 (lower edge included)
    assert report["clip_seconds"]["counts"] == [0, 1, 0, 1, 0, 1, 0, 0, 0]
    assert report["speaking_ratio_per_person"]["counts"] == [0, 1, 0, 0, 2, 1, 2, 0, 0, 0, 1, 0]
    assert report["face_px_1080p"]["counts"] == [0, 3, 1, 1, 1, 0, 0, 1]
    assert report["rejections"] == {"people_count": 0, "too_short": 4, "face_size": 2, "face_ratio": 0,
                                    "occlusion": 0, "camera_motion": 1}
    assert report["failed"] == [{"video": "s_x", "reason": "x.mp4: no audio stream"}]
    image = cv2.imread(str(png_path))
    assert image.shape == (640, 1440, 3)


def test_report_of_a_folder_without_a_manifest(tmp_path):
    with pytest.raises(ValueError, match="no manifest.json"):
        write_report(tmp_path)
