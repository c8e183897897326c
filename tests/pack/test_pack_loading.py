"""The pack as ComfyUI loads it: by file path, under a module name made from that path, beside ComfyUI's own
top-level modules (`nodes`, `utils`, `server`, `folder_paths`), with no network. Each case runs in a fresh
interpreter so that nothing imported by other tests can hide a problem."""

import os

import pytest
from comfy_host import load_pack
from conftest import LIBRISPEECH, PACK_ROOT, shared_path


def test_the_pack_loads_by_path_beside_comfyuis_modules(tmp_path):
    result = load_pack(tmp_path)
    assert result["left_out"] == {} and result["messages"] == []
    assert CONVERSATION | POSE | VISION | SPEAKERS | BINDING | EXPORT | COVOG | COVOG_STAGES | EVALUATE == set(
        result["ids"])
    assert all(node_id.startswith("MITCovOG_") for node_id in result["ids"])
    assert set(result["display"]) == set(result["ids"])
    assert all(ok for _, ok in result["nodes_valid"]), result["nodes_valid"]
    assert result["comfy_modules_intact"]
    threads = result["torch_threads"][0]
    assert threads > 1 and result["torch_threads"] == [threads, threads]  # importing silero-vad sets them to 1
    assert os.path.realpath(result["library_file"]) == str(PACK_ROOT / "mit_annotator" / "__init__.py")


VISION = {"MITCovOG_TrackPeople", "MITCovOG_DrawTracks", "MITCovOG_DetectPeople", "MITCovOG_WholeBodyPose",
          "MITCovOG_TrackDetections", "MITCovOG_DetectFaces"}
SPEAKERS = {"MITCovOG_AssignSpeakers", "MITCovOG_Diarize", "MITCovOG_ActiveSpeakers", "MITCovOG_SpeakingTimeline"}
BINDING = {"MITCovOG_SpeakerMasks", "MITCovOG_SplitVoices", "MITCovOG_InfiniteTalkSegment",
           "MITCovOG_InfiniteTalkJoin"}
EXPORT = {"MITCovOG_ExportClip", "MITCovOG_ExportDataset"}
COVOG_STAGES = {"MITCovOG_EncodeReference", "MITCovOG_EncodeAudio", "MITCovOG_RenderPoses", "MITCovOG_Sampler",
                "MITCovOG_Decode"}
CONVERSATION = {"MITCovOG_SyntheticConversation"}
POSE = {"MITCovOG_TracksToPoseKeypoint", "MITCovOG_PoseKeypointToTracks"}
COVOG = {"MITCovOG_LoadCovOG", "MITCovOG_GenerateConversation"}
EVALUATE = {"MITCovOG_EvaluateConversation"}


@pytest.mark.parametrize("missing, left_out, gone", [
    ("av", ["conversation_nodes", "vision_nodes", "speaker_nodes", "export_nodes", "evaluate_nodes"],
     CONVERSATION | VISION | SPEAKERS | EXPORT | EVALUATE),
    ("cv2", ["conversation_nodes", "vision_nodes", "speaker_nodes", "binding_nodes", "export_nodes", "covog_nodes",
             "covog_stage_nodes", "evaluate_nodes"],
     CONVERSATION | VISION | SPEAKERS | BINDING | EXPORT | COVOG | COVOG_STAGES | EVALUATE),
    ("silero_vad", ["speaker_nodes"], SPEAKERS),
    ("onnxruntime", ["vision_nodes"], VISION),
    ("rtmlib", ["vision_nodes"], VISION),
    ("diffusers", ["covog_nodes", "covog_stage_nodes"], COVOG | COVOG_STAGES),
    ("transformers", ["covog_nodes", "covog_stage_nodes"], COVOG | COVOG_STAGES),
])
def test_a_missing_optional_dependency_leaves_out_only_its_nodes(tmp_path, missing, left_out, gone):
    result = load_pack(tmp_path, blocked=[missing])
    assert not gone & set(result["ids"])
    assert POSE <= set(result["ids"])
    assert list(result["left_out"]) == left_out
    assert len(result["messages"]) == 1
    assert "left out" in result["messages"][0] and f"'{missing}'" in result["messages"][0]


def test_nodes_run_in_the_loaded_pack(tmp_path, tiny_models):
    run = load_pack(tmp_path, run_nodes=True, models=tiny_models)["run"]
    assert run["images"] == [[50, 72, 128, 3], "torch.float32", pytest.approx(run["images"][2]),
                             pytest.approx(run["images"][3])]
    assert 0.0 <= run["images"][2] < run["images"][3] <= 1.0
    assert run["audio"] == [[1, 1, 32000], 16000]
    assert run["frames"] == 50 and run["fps"] == 25.0 and run["people_per_frame"] == [3]
    assert run["tracks_back"] == [0, 1, 2] and run["round_trip_equal"] and run["speaking_people"] == 3
    assert run["tracked"][:3] == [50, 128, 72] and run["drawn"] == [50, 72, 128, 3]
    assert "the tracks were made for 50 frames of 128x72, the images are 10 frames" in run["draw_error"]
    people, frames, timeline = run["speaking"]
    assert (people, frames, run["speaking_48k"]) == (3, 50, 3)
    assert run["torch_threads"] > 1  # the diarizer's silero-vad left torch's CPU threads as they were
    assert timeline[0] == 1 and timeline[1] >= 3 * 28 and timeline[2:] == [1000, 3]


# The values the nodes produce, in the pack as ComfyUI loads it: the host script of comfy_host runs these node calls
# too and saves what they return; the test compares them with what the libraries make from the same settings.
VALUE_CALLS = r'''
if os.environ.get("VALUES_OUT"):
    import numpy as np
    nodes_ = classes
    out = os.environ["VALUES_OUT"]
    images, audio, tracks, speaking, poses, fps = nodes_["MITCovOG_SyntheticConversation"].execute(
        num_people=3, seconds=6.0, seed=2, width=128, height=72, fps=25.0, overlap_probability=0.0,
        offscreen_voice=False, speech_folder=os.environ["SPEECH"])
    drawn = nodes_["MITCovOG_DrawTracks"].execute(images, tracks)[0]
    assigned, timeline = nodes_["MITCovOG_AssignSpeakers"].execute(tracks, audio, 0)
    back = nodes_["MITCovOG_PoseKeypointToTracks"].execute(poses, fps)[0]
    np.savez(os.path.join(out, "values.npz"), images=images.numpy(), waveform=audio["waveform"].numpy(),
             rate=audio["sample_rate"], fps=fps, drawn=drawn.numpy(), timeline=timeline.numpy(),
             assigned_ids=[p.track_id for p in assigned.people],
             assigned=np.stack([p.scores for p in assigned.people]))
    tracks.save(os.path.join(out, "tracks.json"))
    speaking.save(os.path.join(out, "speaking.json"))
    back.save(os.path.join(out, "tracks_back.json"))
    with open(os.path.join(out, "poses.json"), "w") as f:
        json.dump(poses, f)
'''


def run_values(tmp_path):
    """Runs comfy_host's loader with VALUE_CALLS before its report; returns the folder they wrote to."""
    import json
    import subprocess
    import sys

    import comfy_host

    marker = 'print("RESULT " + json.dumps(result))'
    assert comfy_host.HOST.count(marker) == 1
    script = comfy_host.HOST.replace(marker, VALUE_CALLS + marker)
    (tmp_path / "custom_nodes").mkdir()
    link = tmp_path / "custom_nodes" / "ComfyUI-MIT.CovOG"
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    out = tmp_path / "values"
    out.mkdir()
    env = {**os.environ, "VALUES_OUT": str(out), "TESTS_DIR": str(PACK_ROOT / "tests"), "SPEECH": str(LIBRISPEECH),
           "PYTHONPATH": "", "RUN_NODES": "", "BLOCKED_MODULES": "[]"}
    done = subprocess.run([sys.executable, "-c", script, str(link)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.split("RESULT ", 1)[1])["left_out"] == {}
    return out


def test_the_nodes_values_in_the_loaded_pack(tmp_path):
    """Synthetic Conversation gives exactly the library's conversation (frames, audio, tracks, speaking, poses);
    Draw Tracks draws each person's box in their colour and leaves the rest of the frame alone; Assign Speakers gives
    each person the speaking that follows their own voice, not someone else's."""
    import json

    import numpy as np

    from mit_annotator.core.pose_formats import tracks_to_pose_keypoint
    from mit_annotator.core.records import SpeakingActivity, VideoTracks
    from mit_annotator.synthetic import ConversationSpec, LibriSpeechSource, synthesize_conversation
    from mit_annotator.vision.render import draw_people, id_colour

    shared_path("speech", "librispeech_test-other")
    out = run_values(tmp_path)
    values = np.load(out / "values.npz")
    c = synthesize_conversation(ConversationSpec(num_people=3, seconds=6.0, seed=2, width=128, height=72, fps=25.0),
                                LibriSpeechSource(LIBRISPEECH))
    frames = np.stack(list(c.frames()))
    np.testing.assert_array_equal(values["images"], frames.astype(np.float32) / 255)
    np.testing.assert_array_equal(values["waveform"], c.mix[None, None])
    assert int(values["rate"]) == 16000 and float(values["fps"]) == 25.0
    assert VideoTracks.load(out / "tracks.json").to_dict() == c.tracks.to_dict()
    assert SpeakingActivity.load(out / "speaking.json").to_dict() == c.speaking.to_dict()
    assert json.loads((out / "poses.json").read_text()) == json.loads(json.dumps(tracks_to_pose_keypoint(c.tracks)))
    back = VideoTracks.load(out / "tracks_back.json")
    for ours, theirs in zip(back.tracks, c.tracks.tracks):  # POSE_KEYPOINT -> tracks: the same people, in place
        assert ours.track_id == theirs.track_id  # (boxes come from the seen keypoints: legs cut by the frame edge)
        np.testing.assert_allclose(ours.boxes[:, 0::2].mean(axis=1), theirs.boxes[:, 0::2].mean(axis=1), atol=3.0)

    drawn = np.round(values["drawn"] * 255).astype(int)
    changed = (drawn != frames).any(axis=-1)
    for k in (0, 60, 149):
        near_someone = np.zeros(changed.shape[1:], bool)
        for track, row in c.tracks.people_at(k):
            x1, y1, x2, y2 = (int(v) for v in track.boxes[row])
            near_someone[max(y1 - 16, 0):y2 + 3, max(x1 - 2, 0):x2 + 3] = True
            middle = (y1 + y2) // 2
            if 0 <= x1 < 128 and 0 <= middle < 72:  # the box's left edge, in this person's colour
                assert tuple(drawn[k, middle, x1]) == id_colour(track.track_id), (k, track.track_id)
        assert changed[k][near_someone].any() and not changed[k][~near_someone].any()
    for k in range(len(frames)):  # frame k drawn with frame k's tracks, as the library draws them
        np.testing.assert_array_equal(drawn[k], draw_people(frames[k], c.tracks, k))

    assert list(values["assigned_ids"]) == [0, 1, 2]
    truth = np.stack([c.speaking.person(t).scores for t in (0, 1, 2)]) > 0
    agree = np.array([[((values["assigned"][q] > 0) == truth[p]).mean() for q in range(3)] for p in range(3)])
    assert (np.diag(agree) > 0.85).all() and (agree[~np.eye(3, dtype=bool)] < 0.7).all(), agree
    assert values["timeline"].shape[0] == 1 and values["timeline"].std() > 0.05
