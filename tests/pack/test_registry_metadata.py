"""The pack as the Comfy Registry takes it (docs.comfy.org/registry/specifications; `comfy node validate` of comfy-cli
1.23 passes on it, BENCHMARKS.md): the node id's rules, semantic version, the publisher and display name, and an
archive (`.comfyignore`) that holds the pack and not its tests, benchmarks or scripts."""

import fnmatch
import re
import subprocess

import tomllib
from conftest import PACK_ROOT


def metadata() -> dict:
    return tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())


def test_the_node_id_version_and_publisher_follow_the_registrys_rules():
    project, comfy = metadata()["project"], metadata()["tool"]["comfy"]
    name = project["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower()  # the registry's advice: the id is for ComfyUI already
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert re.fullmatch(r"[a-z][a-z0-9-]*", comfy["PublisherId"]) and comfy["DisplayName"].strip()


def test_the_comfyui_it_needs_is_one_with_the_v3_node_api():
    from packaging.specifiers import SpecifierSet

    needs = SpecifierSet(metadata()["tool"]["comfy"]["requires-comfyui"])
    assert "0.8.0" in needs and "0.3.40" not in needs  # comfy_api.latest and comfy_entrypoint: checked on 0.8.0


def archived(path: str, patterns: list[str]) -> bool:
    return not any(fnmatch.fnmatch(path, p.rstrip("/") + ("/*" if p.endswith("/") else "")) or
                   fnmatch.fnmatch(path.split("/")[0] + "/", p) for p in patterns)


def test_the_published_archive_holds_the_pack_and_not_the_development_files():
    patterns = [line.strip() for line in (PACK_ROOT / ".comfyignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=PACK_ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    kept = [p for p in tracked if archived(p, patterns)]
    assert not [p for p in kept if p.startswith(("tests/", "benchmarks/", "scripts/", ".ci/"))]
    for needed in ("__init__.py", "nodes/speaker_nodes.py", "mit_annotator/audio/overlap_diarization.py",
                   "covog/pipeline/sampler.py", "workflows/bind_speakers_infinitetalk.json", "install.py",
                   "requirements.txt", "README.md"):
        assert needed in kept, needed
