"""Runs the pack's workflows through a real ComfyUI's POST /prompt, as its editor's Run button does, on the CPU with
tiny or bundled models, and records for each: the substitutions made (which model files, which input video, how
small), the wall time, the progress events per node, and the outputs (images saved beside the report). Also
interrupts a long run and times how soon it stops.

    python scripts/comfyui_run_workflows.py --url http://127.0.0.1:8188 --out OUT_DIR

Run with a Python that has aiohttp, numpy and pytest (ComfyUI's own venv plus pytest): it converts the workflows
with tests/comfy_host.py. The host must hold the files named in SETUP (scripts/check_workflows_in_comfyui.sh puts
them there). Nodes the host lacks (WanInfiniteTalkToVideo, MultiTalk) are left out with all that hangs on them.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfy_host import builtin_specs, to_api  # noqa: E402

SETUP = ("models/dwpose/{yolox_nano.onnx, tiny_pose.onnx, face_detection_yunet.onnx}, "
         "models/active_speaker/pretrain_AVA.model, models/covog/tiny/, "
         "input/{interact_11.mp4, driving_video.mp4, reference.png}")
TINY_POSE = "tiny_pose.onnx"  # tests/tiny_onnx.py: DWPose's input/output signature, random weights
SMALL_COVOG = {"steps": 1, "width": 128, "height": 64, "window": 16, "overlap": 4}
# per workflow: node type -> widget values to change for a CPU run with the small or bundled models
CHANGES = {
    "synthetic_conversation": {},
    "annotate_people": {"MITCovOG_SyntheticConversation": {"seconds": 3.0},
                        "MITCovOG_TrackPeople": {"detector": "yolox_nano.onnx", "pose_model": TINY_POSE}},
    "annotate_conversation": {"LoadVideo": {"file": "interact_11.mp4"},
                              "MITCovOG_DetectPeople": {"detector": "yolox_nano.onnx"},
                              "MITCovOG_WholeBodyPose": {"pose_model": TINY_POSE}},
    "generate_conversation": {"LoadVideo": {"file": "driving_video.mp4"},
                              "MITCovOG_TrackPeople": {"detector": "yolox_nano.onnx", "pose_model": TINY_POSE},
                              "MITCovOG_LoadCovOG": {"model": "tiny"},
                              "MITCovOG_GenerateConversation": SMALL_COVOG},
    "generate_conversation_stages": {"LoadVideo": {"file": "driving_video.mp4"},
                                     "MITCovOG_TrackPeople": {"detector": "yolox_nano.onnx",
                                                              "pose_model": TINY_POSE},
                                     "MITCovOG_LoadCovOG": {"model": "tiny"},
                                     "MITCovOG_EncodeReference": {"width": 128, "height": 64},
                                     "MITCovOG_Sampler": {k: SMALL_COVOG[k] for k in ("steps", "window", "overlap")}},
    "bind_speakers_infinitetalk": {"LoadVideo": {"file": "interact_11.mp4"}},
    "bind_speakers_infinitetalk_long": {"LoadVideo": {"file": "interact_11.mp4"}},
    "bind_speakers_multitalk": {"LoadVideo": {"file": "interact_11.mp4"}},
}


def host_specs(object_info: dict) -> dict:
    specs = builtin_specs()
    specs.update({name: {"input": e["input"], "input_order": e.get("input_order"), "output": e["output"]}
                  for name, e in object_info.items()})
    return specs


def prompt_for(name: str, object_info: dict) -> tuple[dict, list[str], list[str]]:
    """The workflow's prompt for this host: widget values changed as CHANGES says (each change listed); the nodes the
    host lacks left out with all that hangs on them, and then every node that feeds no output node that is left (the
    Wan loaders, whose model files the host lacks too), as ComfyUI itself runs only what an output node needs."""
    from comfy_host import widget_slots

    graph = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    specs = host_specs(object_info)
    changed = []
    for node in graph["nodes"]:
        for widget, value in CHANGES[name].get(node["type"], {}).items():
            names = [n for n, _ in widget_slots(specs[node["type"]])]
            old = node["widgets_values"][names.index(widget)]
            node["widgets_values"][names.index(widget)] = value
            changed.append(f"{node['type']}.{widget}: {old!r} -> {value!r}")
    nodes = {node["id"]: node for node in graph["nodes"]}
    missing = {i for i, node in nodes.items() if node["type"] not in object_info}
    grew = True
    while grew:  # all that hangs on a missing node
        size = len(missing)
        missing |= {link[3] for link in graph["links"] if link[1] in missing}
        grew = len(missing) > size
    keep = {i for i, node in nodes.items() if i not in missing and object_info[node["type"]].get("output_node")}
    grew = True
    while grew:  # and what the remaining output nodes need
        size = len(keep)
        keep |= {link[1] for link in graph["links"] if link[3] in keep}
        grew = len(keep) > size
    left_out = sorted(f"{nodes[i]['type']} #{i}" for i in nodes if i not in keep)
    graph["links"] = [link for link in graph["links"] if link[1] in keep and link[3] in keep]
    kept_links = {link[0] for link in graph["links"]}
    graph["nodes"] = [node for node in graph["nodes"] if node["id"] in keep]
    for node in graph["nodes"]:
        for slot in node.get("outputs", []):
            if slot.get("links"):
                slot["links"] = [k for k in slot["links"] if k in kept_links]
        for slot in node.get("inputs", []):
            if slot.get("link") is not None and slot["link"] not in kept_links:
                slot["link"] = None
    return to_api(graph, specs, name), changed, left_out


async def run(session, url: str, prompt: dict, client: str, events: list, out: Path, name: str,
              interrupt_after: float | None = None) -> dict:
    # ComfyUI caches node outputs between prompts: empty the cache first, so each workflow is timed from scratch
    await session.post(f"{url}/free", json={"free_memory": True, "unload_models": True})
    await asyncio.sleep(2)
    async with session.post(f"{url}/prompt", json={"prompt": prompt, "client_id": client}) as response:
        answer = await response.json()
    if "prompt_id" not in answer:
        return {"refused": answer}
    prompt_id, started = answer["prompt_id"], time.time()
    interrupted_at = None
    while True:
        await asyncio.sleep(0.5)
        # Cancel once a node with many steps (a frame loop) has been running for `interrupt_after` seconds
        long_steps = [e for e in events if e.get("type") == "progress" and e["data"]["max"] >= 20]
        if interrupt_after is not None and interrupted_at is None and long_steps \
                and time.time() - long_steps[0]["time"] > interrupt_after:
            await session.post(f"{url}/interrupt")
            interrupted_at = time.time()
            interrupted_node = prompt.get(str(long_steps[-1]["data"].get("node")), {}).get("class_type")
            interrupted_step = long_steps[-1]["data"]["value"], long_steps[-1]["data"]["max"]
        async with session.get(f"{url}/history/{prompt_id}") as response:
            history = (await response.json()).get(prompt_id)
        if history and history.get("status", {}).get("completed") is not None:
            if history["status"].get("status_str") in ("success", "error") or history["status"]["messages"][-1][0] \
                    in ("execution_interrupted", "execution_error", "execution_success"):
                break
    ended = time.time()
    messages = history["status"]["messages"]
    result = {"status": history["status"]["status_str"], "seconds": round(ended - started, 1),
              "messages": [m[0] for m in messages]}
    for kind, data in messages:
        if kind == "execution_error":
            result["error"] = {k: data.get(k) for k in ("node_type", "exception_type", "exception_message")}
        if kind == "execution_interrupted":
            result["interrupted"] = {"node_type": data.get("node_type")}
    if interrupted_at is not None:
        stopped = [e for e in events if e.get("type") == "progress" and e["time"] > interrupted_at]
        result["interrupt"] = {"cancelled_in": interrupted_node, "at_step": interrupted_step,
                               "stopped_after_s": round(ended - interrupted_at, 2),
                               "progress_steps_after_interrupt": len(stopped)}
    progress = {}
    for e in events:
        if e.get("type") == "progress":
            node = e["data"].get("node")
            progress[node] = [e["data"]["value"], e["data"]["max"]]
    result["progress"] = {f"{prompt[n]['class_type']} #{n}": v for n, v in progress.items() if n in prompt}
    saved = []
    for node_id, output in history.get("outputs", {}).items():
        for kind in ("images", "gifs", "audio", "video"):
            for item in output.get(kind, []):
                query = urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                   "type": item.get("type", "output")})
                async with session.get(f"{url}/view?{query}") as response:
                    data = await response.read()
                target = out / f"{name}_{prompt[node_id]['class_type']}_{node_id}_{item['filename']}"
                target.write_bytes(data)
                saved.append(target.name)
        if "text" in output:
            result.setdefault("text", []).extend(output["text"])
    result["saved"] = saved
    return result


async def main_async(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    client = uuid.uuid4().hex
    events: list = []
    report = {"setup": SETUP}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{args.url}/object_info") as response:
            object_info = await response.json()

        async def listen():
            async with session.ws_connect(f"{args.url}/ws?clientId={client}") as ws:
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        event = json.loads(message.data)
                        event["time"] = time.time()
                        events.append(event)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(1)
        failed = False
        for name in args.only or list(CHANGES):
            prompt, changed, left_out = prompt_for(name, object_info)
            events.clear()
            print(f"{name}: {len(prompt)} nodes; changed {changed or 'nothing'}; left out {left_out or 'nothing'}",
                  flush=True)
            result = await run(session, args.url, prompt, client, events, args.out, name)
            result.update(changed=changed, left_out=left_out)
            report[name] = result
            failed |= result.get("status") != "success"
            print(f"   -> {result.get('status', result.get('refused'))} in {result.get('seconds')} s; "
                  f"error {result.get('error')}; progress {result.get('progress')}; saved {result.get('saved')}",
                  flush=True)
        if not args.only:
            name = "annotate_conversation"
            prompt, changed, left_out = prompt_for(name, object_info)
            prompt["1"]["inputs"]["file"] = "interact_11.mp4"  # a fresh run: the cache would answer at once
            for node in prompt.values():
                if node["class_type"] == "MITCovOG_DetectPeople":
                    node["inputs"]["detection_threshold"] = 0.45
            events.clear()
            result = await run(session, args.url, prompt, client, events, args.out, name + "_interrupted",
                               interrupt_after=1.0)
            report["interrupt: " + name] = result
            print(f"interrupt during {name}: {result.get('status')}, {result.get('interrupted')}, "
                  f"{result.get('interrupt')}", flush=True)
            failed |= "interrupted" not in result
        listener.cancel()
    (args.out / "run_report.json").write_text(json.dumps(report, indent=1, default=str))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=None, help="workflow names (default: all)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
