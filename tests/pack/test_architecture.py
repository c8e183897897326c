"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml) pass on the tree, and fail,
naming the contract, on a copy of the tree with one deliberate upward import or cycle."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PACK_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_contract():
    result = lint_imports(PACK_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    for name in ("mit_annotator", "covog", "nodes"):
        shutil.copytree(PACK_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PACK_ROOT / "pyproject.toml", root)
    return root


@pytest.mark.parametrize("module, line, contract, message", [
    ("mit_annotator/core/segments.py", "from mit_annotator.pipeline import annotate",
     "mit_annotator's layers", "mit_annotator.core is not allowed to import mit_annotator.pipeline"),
    ("mit_annotator/vision/tracking.py", "from mit_annotator.audio import diarization",
     "mit_annotator's layers", "mit_annotator.vision is not allowed to import mit_annotator.audio"),
    ("mit_annotator/speakers/lips.py", "import covog.pipeline.sampler",
     "The pack's layers", "mit_annotator is not allowed to import covog"),
    ("covog/models/model.py", "from covog.pipeline import sampler",
     "covog's layers", "covog.models is not allowed to import covog.pipeline"),
    ("covog/pipeline/sampler.py", "from nodes import comfy_bridge",
     "The pack's layers", "covog is not allowed to import nodes"),
    ("mit_annotator/pipeline/video_job.py", "from mit_annotator.pipeline import batch",
     "No import cycles", "No cycles are allowed in mit_annotator.pipeline"),
])
def test_one_upward_import_breaks_its_contract(tree_copy, module, line, contract, message):
    path = tree_copy / module
    original = path.read_text()
    path.write_text(original + f"\n\ndef _upward():\n    {line}  # noqa\n")  # a lazy import counts too
    try:
        result = lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken and message in broken, broken
