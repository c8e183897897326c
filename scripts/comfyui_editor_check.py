"""Loads every workflow into the real ComfyUI editor (its frontend in headless Chromium, driven by Playwright) as a
user would, and reports what the user would see: alerts and toasts (e.g. "Invalid workflow against zod schema"),
node types the host lacks, nodes drawn with errors; a screenshot per workflow.

    python scripts/comfyui_editor_check.py --url http://127.0.0.1:8188 --out OUT_DIR workflows/*.json [--control OLD.json]

Needs playwright (pip install playwright, in its own virtualenv) and Debian's chromium (/usr/bin/chromium).
A `--control` workflow is one known to be refused (e.g. the generate_conversation.json before its fix): the check
only counts when the editor refuses it. Exits 1 when any workflow loads with an alert or an unexpected missing type.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

# node types a workflow may use that ComfyUI 0.8 does not have (newer than it, or from other packs)
ALLOWED_MISSING = {"WanInfiniteTalkToVideo", "MultiTalkWav2VecEmbeds", "Wav2VecModelLoader"}

READ_PAGE = """() => {
    const text = (sel) => [...document.querySelectorAll(sel)].map(e => e.innerText.trim()).filter(Boolean);
    const graph = window.app.graph;
    const registered = window.LiteGraph ? window.LiteGraph.registered_node_types : {};
    const nodes = graph._nodes || graph.nodes || [];
    return {
        toasts: text('.p-toast-message'),
        dialogs: text('.p-dialog'),
        nodes: nodes.length,
        links: Object.keys(graph.links || {}).length,
        missing: [...new Set(nodes.filter(n => !(n.type in registered)).map(n => n.type))],
        errors: nodes.filter(n => n.has_errors).map(n => n.type),
    };
}"""


CLOSE_DIALOGS = """() => {
    const buttons = [...document.querySelectorAll('.p-dialog button')].filter(b =>
        (b.getAttribute('aria-label') || '').toLowerCase().includes('close') || b.className.includes('close'));
    buttons.forEach(b => b.click());
    return buttons.length;
}"""


def close_dialogs(page):
    for _ in range(3):
        if not page.evaluate(CLOSE_DIALOGS):
            page.keyboard.press("Escape")
        time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workflows", nargs="+", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--control", type=Path, default=None, help="a workflow the editor must refuse")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report, failed = {}, False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        alerts = []
        page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
        console = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        started = time.time()
        page.goto(args.url)
        page.wait_for_function("window.app && window.app.graph", timeout=120_000)
        time.sleep(3)
        close_dialogs(page)  # the template browser opens on first load
        print(f"editor ready in {time.time() - started:.1f} s", flush=True)
        items = [(path, False) for path in args.workflows] + ([(args.control, True)] if args.control else [])
        for path, control in items:
            alerts.clear()
            page.evaluate("() => window.app.graph.clear()")
            close_dialogs(page)
            workflow = json.loads(path.read_text())
            clock = time.time()
            error = page.evaluate("""async (wf) => {
                try { await window.app.loadGraphData(wf, true, true, null); return null; }
                catch (e) { return String(e); } }""", workflow)
            time.sleep(1.5)
            seen = page.evaluate(READ_PAGE)
            close_dialogs(page)  # what the user saw first is recorded; the screenshot shows the graph
            seen.update(alerts=list(alerts), load_error=error, seconds=round(time.time() - clock, 2))
            shot = args.out / f"{path.stem}{'_control' if control else ''}.png"
            for suffix, scale in (("", 0.8), ("_overview", 0.4)):  # text is drawn from a scale of 0.6 up
                page.evaluate("(s) => { window.app.canvas.ds.scale = s; window.app.canvas.ds.offset = [20, 60]; "
                              "window.app.canvas.setDirty(true, true); }", scale)
                time.sleep(0.7)
                page.screenshot(path=str(shot.with_name(shot.stem + suffix + ".png")))
            refused = any("zod" in a or "Invalid workflow" in a for a in seen["alerts"] + seen["toasts"])
            unexpected = sorted(set(seen["missing"]) - ALLOWED_MISSING)
            if control:
                ok = refused
            else:
                ok = not seen["alerts"] and not error and not unexpected and not any(
                    "Invalid" in t or "rror" in t for t in seen["toasts"]) and not any(
                    "Missing Models" in d for d in seen["dialogs"])  # every model is in place for the check
            failed |= not ok
            seen["ok"] = ok
            report[path.name + (" (control)" if control else "")] = seen
            print(f"{'ok  ' if ok else 'FAIL'} {path.name}{' (control: must be refused)' if control else ''}: "
                  f"{seen['nodes']} nodes, {seen['links']} links, missing {seen['missing']}, alerts {seen['alerts']}, "
                  f"toasts {seen['toasts']}, {seen['seconds']} s -> {shot}", flush=True)
            for dialog in seen["dialogs"]:
                print("     dialog: " + " | ".join(line for line in dialog.splitlines() if line.strip())[:400])
            close_dialogs(page)
        browser.close()
    report["console_errors"] = console[:50]
    (args.out / "editor_report.json").write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
