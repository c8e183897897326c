"""The annotator's vision pass (shots, people, DWPose, tracks, faces) on ComfyUI images."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import onnxruntime  # noqa: F401  (imported here so that a missing onnxruntime leaves these nodes out at load)
from comfy_api.latest import io

from mit_annotator.core.models import COMFY_FOLDER, KNOWN_MODELS
from mit_annotator.core.pose_formats import VISIBLE_SCORE, keypoint_box, person_from_openpose, person_to_openpose
from mit_annotator.core.records import Detection, VideoTracks
from mit_annotator.speakers.who_speaks import face_tracks
from mit_annotator.vision.detection import PersonDetector
from mit_annotator.vision.faces import YuNetFaceDetector, face_boxes_from_keypoints
from mit_annotator.vision.people import _attach_detected_faces, annotate_frames
from mit_annotator.vision.pose import WholeBodyPose
from mit_annotator.vision.render import draw_people
from mit_annotator.vision.shots import ShotDetector
from mit_annotator.vision.tracking import TrackerConfig, track_people

from .comfy_bridge import (
    check_images,
    comfy_models_dir,
    frames_to_image,
    image_to_frames,
    model_folder_files,
    progress_callback,
    resolve_model_name,
)
from .pack_types import Detections, PoseKeypoint, Tracks

DEVICES = ["auto", "cpu", "cuda", "tensorrt"]


@dataclass
class FrameDetections:
    """MIT_DETECTIONS: the people found in each frame (boxes, and keypoints once a pose model ran), before
    tracking gives them identities; with the video's size, rate and shots."""

    width: int
    height: int
    fps: float
    frames: list[list[Detection]] = field(default_factory=list)
    shots: list[tuple[int, int]] = field(default_factory=list)


def _choices(default: str) -> list[str]:
    files = model_folder_files(COMFY_FOLDER)
    return [default] + sorted(f for f in files if f != default and f.endswith(".onnx"))


class TrackPeople(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_TrackPeople", display_name="Track People + DWPose (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Finds everyone in the frames (YOLOX person detector), estimates 133 whole-body keypoints "
                         "(DWPose) and follows each person with a stable id; ids never cross a shot cut. Models are "
                         "looked for in ComfyUI/models/dwpose/."),
            inputs=[
                io.Image.Input("images"),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, tooltip="Frame rate of the images."),
                io.Combo.Input("detector", options=_choices(KNOWN_MODELS["yolox_l"].filename),
                               tooltip="YOLOX person detector (DWPose's yolox_l.onnx or another YOLOX export)."),
                io.Combo.Input("pose_model", options=_choices(KNOWN_MODELS["dwpose"].filename),
                               tooltip="133-keypoint whole-body model (DWPose's dw-ll_ucoco_384.onnx)."),
                io.Float.Input("detection_threshold", default=0.5, min=0.05, max=0.99, step=0.05),
                io.Combo.Input("device", options=DEVICES, default="auto"),
                io.Boolean.Input("download_missing", default=False, tooltip=(
                    "Download DWPose's files from Hugging Face into ComfyUI/models/dwpose when missing.")),
            ],
            outputs=[Tracks.Output("tracks")],
        )

    @classmethod
    def execute(cls, images, fps, detector, pose_model, detection_threshold, device, download_missing) -> io.NodeOutput:
        models_dir = comfy_models_dir()
        detector_model = PersonDetector(_model_name(detector, "detector"), score_threshold=detection_threshold,
                                        device=device, models_dir=models_dir, download=download_missing)
        pose = WholeBodyPose(_model_name(pose_model, "pose_model"), device=device, models_dir=models_dir,
                             download=download_missing)
        total = int(images.shape[0])
        return io.NodeOutput(annotate_frames(image_to_frames(images), fps, detector_model, pose,
                                             progress=progress_callback(total), total=total))


class DrawTracks(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_DrawTracks", display_name="Draw Tracks (MIT-CovOG)", category="MIT-CovOG/annotate",
            description="Draws each tracked person's skeleton, hands, face points, face box and id on the frames.",
            inputs=[
                io.Image.Input("images"),
                Tracks.Input("tracks"),
            ],
            outputs=[io.Image.Output("images")],
        )

    @classmethod
    def execute(cls, images, tracks) -> io.NodeOutput:
        check_images(images, tracks)
        drawn = np.stack([draw_people(frame, tracks, k) for k, frame in enumerate(image_to_frames(images))])
        return io.NodeOutput(frames_to_image(drawn))


class DetectPeople(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_DetectPeople", display_name="Detect People (MIT-CovOG)", category="MIT-CovOG/annotate",
            description=("Finds the people in each frame with a YOLOX person detector (DWPose's yolox_l.onnx, or "
                         "YOLOX-Nano on a small CPU) and the shot cuts between frames: boxes, no identities yet. "
                         "Models are looked for in ComfyUI/models/dwpose/."),
            inputs=[
                io.Image.Input("images", tooltip="The video's frames."),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, tooltip="Frame rate of the images."),
                io.Combo.Input("detector", options=_choices(KNOWN_MODELS["yolox_l"].filename), tooltip=(
                    "YOLOX person detector (DWPose's yolox_l.onnx, yolox_nano.onnx, or another export).")),
                io.Float.Input("detection_threshold", default=0.5, min=0.05, max=0.99, step=0.05),
                io.Combo.Input("device", options=DEVICES, default="auto"),
                io.Boolean.Input("download_missing", default=False, tooltip=(
                    "Download DWPose's detector from Hugging Face into ComfyUI/models/dwpose when missing.")),
            ],
            outputs=[Detections.Output("detections")],
        )

    @classmethod
    def execute(cls, images, fps, detector, detection_threshold, device, download_missing) -> io.NodeOutput:
        model = PersonDetector(_model_name(detector, "detector"), score_threshold=detection_threshold, device=device,
                               models_dir=comfy_models_dir(), download=download_missing)
        total = _frame_count(images)
        progress = progress_callback(total)
        shots = ShotDetector(fps)
        found = []
        for index, frame in enumerate(image_to_frames(images)):
            shots.add(frame)
            boxes, scores = model(frame)
            found.append([Detection(index, b, s) for b, s in zip(boxes, scores)])
            progress(index + 1, total)
        return io.NodeOutput(FrameDetections(int(images.shape[2]), int(images.shape[1]), float(fps), found,
                                             shots.shots()))


class WholeBodyPoseNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_WholeBodyPose", display_name="Whole-Body Pose, DWPose (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Estimates 133 whole-body keypoints (DWPose: body, feet, face, hands) for every detected "
                         "person, with the model's real confidences. Also gives them as POSE_KEYPOINT (the DWPose "
                         "Estimator node's format) for ControlNet and other packs. Models are looked for in "
                         "ComfyUI/models/dwpose/."),
            inputs=[
                io.Image.Input("images", tooltip="The frames the detections were made on."),
                Detections.Input("detections", tooltip="People per frame, from Detect People."),
                io.Combo.Input("pose_model", options=_choices(KNOWN_MODELS["dwpose"].filename),
                               tooltip="133-keypoint whole-body model (DWPose's dw-ll_ucoco_384.onnx)."),
                io.Combo.Input("device", options=DEVICES, default="auto"),
                io.Boolean.Input("download_missing", default=False, tooltip=(
                    "Download DWPose's pose model from Hugging Face into ComfyUI/models/dwpose when missing.")),
            ],
            outputs=[Detections.Output("detections"), PoseKeypoint.Output("pose_keypoint")],
        )

    @classmethod
    def execute(cls, images, detections, pose_model, device, download_missing) -> io.NodeOutput:
        _check_frames(images, detections)
        model = WholeBodyPose(_model_name(pose_model, "pose_model"), device=device, models_dir=comfy_models_dir(),
                              download=download_missing)
        total = _frame_count(images)
        progress = progress_callback(total)
        frames, poses = [], []
        for index, (frame, found) in enumerate(zip(image_to_frames(images), detections.frames)):
            boxes = np.stack([d.box for d in found]) if found else np.zeros((0, 4), np.float32)
            points, scores = model(frame, boxes)
            frames.append([Detection(d.frame, d.box, d.score, p, s) for d, p, s in zip(found, points, scores)])
            poses.append({"people": [person_to_openpose(p, s) for p, s in zip(points, scores)],
                          "canvas_width": detections.width, "canvas_height": detections.height})
            progress(index + 1, total)
        out = FrameDetections(detections.width, detections.height, detections.fps, frames, list(detections.shots))
        return io.NodeOutput(out, poses)


class TrackDetections(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        defaults = TrackerConfig()
        return io.Schema(
            node_id="MITCovOG_TrackDetections", display_name="Track People (MIT-CovOG)", category="MIT-CovOG/annotate",
            description=("Follows each detected person through the video with a stable id (ids in order of first "
                         "appearance, never across a shot cut): box overlap with the predicted box and keypoint "
                         "similarity, gaps of up to 1 s bridged. Takes Detect People / Whole-Body Pose detections, or "
                         "the POSE_KEYPOINT of another pack's DWPose node (which carries no identity). Face boxes "
                         "come from the face keypoints (the paper's rule); Detect Faces adds them where there are "
                         "none."),
            inputs=[
                io.Int.Input("max_missing", default=defaults.max_missing, min=0, max=250,
                             tooltip="Frames a person may be unseen and keep their id."),
                io.Int.Input("min_length", default=defaults.min_length, min=1, max=100, tooltip=(
                    "Sightings before a new person counts (shorter tracks are dropped as noise).")),
                Detections.Input("detections", optional=True, tooltip="From Detect People or Whole-Body Pose."),
                PoseKeypoint.Input("pose_keypoint", optional=True, tooltip=(
                    "Instead of detections: per-frame poses from another pack's DWPose node.")),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, optional=True,
                               tooltip="Frame rate, for POSE_KEYPOINT input (it carries none)."),
            ],
            outputs=[Tracks.Output("tracks")],
        )

    @classmethod
    def execute(cls, max_missing, min_length, detections=None, pose_keypoint=None, fps=25.0) -> io.NodeOutput:
        if (detections is None) == (pose_keypoint is None):
            raise ValueError("Track People needs either detections (Detect People / Whole-Body Pose) or a "
                             "POSE_KEYPOINT input, not both and not neither")
        if detections is None:
            detections = detections_from_pose_keypoint(pose_keypoint, fps)
        config = TrackerConfig(max_missing=max_missing, min_length=min_length)
        tracks = track_people(detections.frames, detections.shots or None, config)
        for track in tracks:
            track.face_boxes = face_boxes_from_keypoints(track)
        return io.NodeOutput(VideoTracks(detections.width, detections.height, detections.fps, len(detections.frames),
                                         tracks, detections.shots or [(0, len(detections.frames))]))


def detections_from_pose_keypoint(pose_keypoint, fps: float) -> FrameDetections:
    """POSE_KEYPOINT frames (DWPose node) as detections: each person's box is the extent of their seen points."""
    from mit_annotator.core.pose_formats import _canvas_size

    if not isinstance(pose_keypoint, list) or not pose_keypoint:
        raise ValueError("POSE_KEYPOINT must be a non-empty list with one dict per frame")
    width, height = _canvas_size(pose_keypoint[0], "POSE_KEYPOINT frame 0")
    frames = []
    for index, entry in enumerate(pose_keypoint):
        found = []
        for k, person in enumerate(entry.get("people") or []):
            points, scores = person_from_openpose(person, where=f"POSE_KEYPOINT frame {index}, person {k}")
            box = keypoint_box(points, scores, VISIBLE_SCORE)
            if not np.isnan(box).any():
                found.append(Detection(index, box, 1.0, points, scores))
        frames.append(found)
    return FrameDetections(width, height, float(fps), frames, [(0, len(frames))])


class DetectFaces(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_DetectFaces", display_name="Detect Faces (MIT-CovOG)", category="MIT-CovOG/annotate",
            description=("Finds faces with YuNet (5 landmarks: eyes, nose, mouth corners; ComfyUI/models/dwpose/ or "
                         "the models folder). With tracks: each person gets their face's landmarks, and a face box in "
                         "frames where their keypoints gave none. Without tracks: the faces themselves are tracked as "
                         "the people (enough for who speaks and speaker masks when no pose model is at hand)."),
            inputs=[
                io.Image.Input("images", tooltip="The video's frames."),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, tooltip="Frame rate of the images."),
                io.Combo.Input("face_model", options=_choices(KNOWN_MODELS["yunet"].filename),
                               tooltip="YuNet face detector (face_detection_yunet.onnx, opencv_zoo)."),
                io.Float.Input("score_threshold", default=0.6, min=0.05, max=0.99, step=0.05),
                Tracks.Input("tracks", optional=True, tooltip="People tracked from the same frames."),
            ],
            outputs=[Tracks.Output("tracks")],
        )

    @classmethod
    def execute(cls, images, fps, face_model, score_threshold, tracks=None) -> io.NodeOutput:
        if tracks is not None:
            _check_frames(images, tracks)
        detector = YuNetFaceDetector(_model_name(face_model, "face_model"), score_threshold=score_threshold,
                                     models_dir=comfy_models_dir())
        total = _frame_count(images)
        progress = progress_callback(total)
        faces = []
        for index, frame in enumerate(image_to_frames(images)):
            faces.append(detector(frame))
            progress(index + 1, total)
        width, height = int(images.shape[2]), int(images.shape[1])
        if tracks is None:
            return io.NodeOutput(face_tracks(faces, width, height, float(fps)))
        tracks = copy.deepcopy(tracks)  # the input is cached by ComfyUI: never changed in place
        _attach_detected_faces(tracks.tracks, faces)
        return io.NodeOutput(tracks)


def _frame_count(images) -> int:
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty batch of RGB frames (F, H, W, 3), got shape "
                         f"{tuple(images.shape)}")
    return int(images.shape[0])


def _check_frames(images, made) -> None:
    count = len(made.frames) if isinstance(made, FrameDetections) else made.num_frames
    if _frame_count(images) != count or (images.shape[2], images.shape[1]) != (made.width, made.height):
        raise ValueError(f"these were made for {count} frames of {made.width}x{made.height}; the images are "
                         f"{images.shape[0]} frames of {images.shape[2]}x{images.shape[1]}: give the same frames")


def _model_name(choice: str, what: str = "model") -> str:
    """A known model's file name becomes its name, so that every place it may be is searched; another file must be
    in ComfyUI/models/dwpose (a combo's value sent by the API is not trusted to be one of its choices)."""
    return resolve_model_name(choice, COMFY_FOLDER, what)


NODES = [TrackPeople, DrawTracks, DetectPeople, WholeBodyPoseNode, TrackDetections, DetectFaces]
