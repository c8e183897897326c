"""The annotator's vision pass (shots, people, DWPose, tracks, faces) on ComfyUI images."""

from __future__ import annotations

import numpy as np
import onnxruntime  # noqa: F401  (imported here so that a missing onnxruntime leaves these nodes out at load)
from mit_annotator.detection import PersonDetector
from mit_annotator.models import COMFY_FOLDER, KNOWN_MODELS
from mit_annotator.people import annotate_frames
from mit_annotator.pose import WholeBodyPose
from mit_annotator.render import draw_people

from .comfy_bridge import frames_to_image, image_to_frames, model_folder_files, progress_callback


def _choices(default: str) -> list[str]:
    files = model_folder_files(COMFY_FOLDER)
    return [default] + sorted(f for f in files if f != default and f.endswith(".onnx"))


class TrackPeople:
    DESCRIPTION = ("Finds everyone in the frames (YOLOX person detector), estimates 133 whole-body keypoints "
                   "(DWPose) and follows each person with a stable id; ids never cross a shot cut. Models are "
                   "looked for in ComfyUI/models/dwpose/.")
    CATEGORY = "MIT-CovOG/annotate"
    FUNCTION = "track"
    RETURN_TYPES = ("MIT_TRACKS",)
    RETURN_NAMES = ("tracks",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 120.0,
                                  "tooltip": "Frame rate of the images."}),
                "detector": (_choices(KNOWN_MODELS["yolox_l"].filename), {
                    "tooltip": "YOLOX person detector (DWPose's yolox_l.onnx or another YOLOX export)."}),
                "pose_model": (_choices(KNOWN_MODELS["dwpose"].filename), {
                    "tooltip": "133-keypoint whole-body model (DWPose's dw-ll_ucoco_384.onnx)."}),
                "detection_threshold": ("FLOAT", {"default": 0.5, "min": 0.05, "max": 0.99, "step": 0.05}),
                "device": (["auto", "cpu", "cuda", "tensorrt"], {"default": "auto"}),
                "download_missing": ("BOOLEAN", {"default": False, "tooltip": (
                    "Download DWPose's files from Hugging Face into ComfyUI/models/dwpose when missing.")}),
            },
        }

    def track(self, images, fps, detector, pose_model, detection_threshold, device, download_missing):
        models_dir = _models_dir()
        detector_model = PersonDetector(_model_name(detector), score_threshold=detection_threshold,
                                        device=device, models_dir=models_dir, download=download_missing)
        pose = WholeBodyPose(_model_name(pose_model), device=device, models_dir=models_dir,
                             download=download_missing)
        total = int(images.shape[0])
        return (annotate_frames(image_to_frames(images), fps, detector_model, pose,
                                progress=progress_callback(total), total=total),)


class DrawTracks:
    DESCRIPTION = "Draws each tracked person's skeleton, hands, face points, face box and id on the frames."
    CATEGORY = "MIT-CovOG/annotate"
    FUNCTION = "draw"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "tracks": ("MIT_TRACKS",)}}

    def draw(self, images, tracks):
        if images.shape[0] != tracks.num_frames or (images.shape[2], images.shape[1]) != (tracks.width,
                                                                                          tracks.height):
            raise ValueError(f"the tracks were made for {tracks.num_frames} frames of {tracks.width}x"
                             f"{tracks.height}, the images are {images.shape[0]} frames of "
                             f"{images.shape[2]}x{images.shape[1]}")
        drawn = np.stack([draw_people(frame, tracks, k) for k, frame in enumerate(image_to_frames(images))])
        return (frames_to_image(drawn),)


def _model_name(choice: str) -> str:
    """A file name of a known model becomes its name, so that every place it may be is searched."""
    for name, known in KNOWN_MODELS.items():
        if known.filename == choice:
            return name
    return choice


def _models_dir():
    try:
        import folder_paths

        return folder_paths.get_folder_paths(COMFY_FOLDER)[0]
    except (ImportError, AttributeError, KeyError, IndexError):
        return None


NODE_CLASS_MAPPINGS = {"MITCovOG_TrackPeople": TrackPeople, "MITCovOG_DrawTracks": DrawTracks}
NODE_DISPLAY_NAME_MAPPINGS = {"MITCovOG_TrackPeople": "Track People + DWPose (MIT-CovOG)",
                              "MITCovOG_DrawTracks": "Draw Tracks (MIT-CovOG)"}
