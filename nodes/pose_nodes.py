"""Between our person tracks (identity + real confidences) and ComfyUI's POSE_KEYPOINT."""

from __future__ import annotations

from comfy_api.latest import io

from mit_annotator.core.pose_formats import VISIBLE_SCORE, tracks_from_pose_keypoint, tracks_to_pose_keypoint

from .pack_types import PoseKeypoint, Tracks


class TracksToPoseKeypoint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_TracksToPoseKeypoint", display_name="Tracks to POSE_KEYPOINT (MIT-CovOG)",
            category="MIT-CovOG/pose",
            description=("Person tracks as POSE_KEYPOINT (the DWPose node's format): OpenPose-18 body, 70 face "
                         "points, 21 per hand, in pixels; points under the threshold are dropped. Each person keeps "
                         "its track id under 'mit_track_id'."),
            inputs=[
                Tracks.Input("tracks"),
                io.Float.Input("threshold", default=VISIBLE_SCORE, min=0.0, max=1.0, step=0.05,
                               tooltip="Points scored lower are written as [0, 0, 0] (DWPose uses 0.3)."),
                io.Boolean.Input("binarize", default=True, tooltip=(
                    "Write confidence 1.0 for kept points, as the DWPose node does; off keeps the real scores.")),
            ],
            outputs=[PoseKeypoint.Output("pose_keypoint")],
        )

    @classmethod
    def execute(cls, tracks, threshold, binarize) -> io.NodeOutput:
        return io.NodeOutput(tracks_to_pose_keypoint(tracks, threshold, binarize))


class PoseKeypointToTracks(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_PoseKeypointToTracks", display_name="POSE_KEYPOINT to Tracks (MIT-CovOG)",
            category="MIT-CovOG/pose",
            description=("POSE_KEYPOINT frames as person tracks. Identity comes from 'mit_track_id' when present, "
                         "otherwise from each person's position in the frame's list."),
            inputs=[
                PoseKeypoint.Input("pose_keypoint"),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0,
                               tooltip="Frame rate of the video the poses came from (POSE_KEYPOINT has none)."),
            ],
            outputs=[Tracks.Output("tracks")],
        )

    @classmethod
    def execute(cls, pose_keypoint, fps) -> io.NodeOutput:
        return io.NodeOutput(tracks_from_pose_keypoint(pose_keypoint, fps))


NODES = [TracksToPoseKeypoint, PoseKeypointToTracks]
