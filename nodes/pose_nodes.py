"""Between our person tracks (identity + real confidences) and ComfyUI's POSE_KEYPOINT."""

from __future__ import annotations

from mit_annotator.core.pose_formats import VISIBLE_SCORE, tracks_from_pose_keypoint, tracks_to_pose_keypoint


class TracksToPoseKeypoint:
    DESCRIPTION = ("Person tracks as POSE_KEYPOINT (the DWPose node's format): OpenPose-18 body, 70 face points, "
                   "21 per hand, in pixels; points under the threshold are dropped. Each person keeps its track id "
                   "under 'mit_track_id'.")
    CATEGORY = "MIT-CovOG/pose"
    FUNCTION = "convert"
    RETURN_TYPES = ("POSE_KEYPOINT",)
    RETURN_NAMES = ("pose_keypoint",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "tracks": ("MIT_TRACKS",),
            "threshold": ("FLOAT", {"default": VISIBLE_SCORE, "min": 0.0, "max": 1.0, "step": 0.05,
                                    "tooltip": "Points scored lower are written as [0, 0, 0] (DWPose uses 0.3)."}),
            "binarize": ("BOOLEAN", {"default": True, "tooltip": "Write confidence 1.0 for kept points, as the "
                                                                 "DWPose node does; off keeps the real scores."}),
        }}

    def convert(self, tracks, threshold, binarize):
        return (tracks_to_pose_keypoint(tracks, threshold, binarize),)


class PoseKeypointToTracks:
    DESCRIPTION = ("POSE_KEYPOINT frames as person tracks. Identity comes from 'mit_track_id' when present, "
                   "otherwise from each person's position in the frame's list.")
    CATEGORY = "MIT-CovOG/pose"
    FUNCTION = "convert"
    RETURN_TYPES = ("MIT_TRACKS",)
    RETURN_NAMES = ("tracks",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pose_keypoint": ("POSE_KEYPOINT",),
            "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 120.0,
                              "tooltip": "Frame rate of the video the poses came from (POSE_KEYPOINT has none)."}),
        }}

    def convert(self, pose_keypoint, fps):
        return (tracks_from_pose_keypoint(pose_keypoint, fps),)


NODE_CLASS_MAPPINGS = {
    "MITCovOG_TracksToPoseKeypoint": TracksToPoseKeypoint,
    "MITCovOG_PoseKeypointToTracks": PoseKeypointToTracks,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MITCovOG_TracksToPoseKeypoint": "Tracks to POSE_KEYPOINT (MIT-CovOG)",
    "MITCovOG_PoseKeypointToTracks": "POSE_KEYPOINT to Tracks (MIT-CovOG)",
}
