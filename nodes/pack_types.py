"""The socket types of the pack's nodes that ComfyUI core does not define (V3 schema: io.Custom)."""

from comfy_api.latest import io

Tracks = io.Custom("MIT_TRACKS")  # mit_annotator.core.records.VideoTracks
Detections = io.Custom("MIT_DETECTIONS")  # nodes.vision_nodes.FrameDetections: per-frame people, before tracking
Speaking = io.Custom("MIT_SPEAKING")  # mit_annotator.core.records.SpeakingActivity: who speaks when
Diarization = io.Custom("MIT_DIARIZATION")  # mit_annotator.core.records.Diarization: voices and their turns
ActiveSpeakerScores = io.Custom("MIT_ASD_SCORES")  # per-person LR-ASD scores
PoseKeypoint = io.Custom("POSE_KEYPOINT")  # comfyui_controlnet_aux's DWPose format, the de-facto interchange
CovOGModel = io.Custom("COVOG_MODEL")
CovOGReference = io.Custom("COVOG_REFERENCE")  # the encoded reference image
CovOGPoses = io.Custom("COVOG_POSES")  # the Multi-Human Pose Encoder's rendered skeletons
CovOGAudio = io.Custom("COVOG_AUDIO")  # per-person audio features
