"""Meaning-level mutants: plausible wrong choices (a wrong rate, the wrong person, an edge off by one, x for y) that
keep every shape and type right, each run against the tests that cover its module. A complement to mutmut
(scripts/mutation_check.sh), whose mutants flip operators and move constants.

    .venv/bin/python scripts/meaning_mutants.py [--only ID ...] [--list] [--timeout SECONDS]

The mutants are scripts/meaning_mutants.json: per mutant its file, an exact snippet (found exactly once: a mutant
that no longer applies fails the run, so the set is kept current as the code moves), the replacement, why it is a
plausible mistake, and the test files to run. Each runs in a copy of the tree (outputs/meaning/tree, refreshed from
the working tree first), never in the checkout. Killed: the tests fail (or time out); survived: they pass. Writes
outputs/meaning/report.md (a table) and prints the score.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "scripts" / "meaning_mutants.json"
WORK = ROOT / "outputs" / "meaning"


def load_mutants() -> list[dict]:
    mutants = json.loads(MUTANTS.read_text())
    ids = [m["id"] for m in mutants]
    if len(ids) != len(set(ids)):
        raise SystemExit("two mutants share an id")
    return mutants


def check_applies(mutant: dict, tree: Path) -> str | None:
    """Why the mutant does not apply to `tree` (None when it does)."""
    path = tree / mutant["file"]
    if not path.is_file():
        return f"{mutant['file']} does not exist"
    text = path.read_text()
    count = text.count(mutant["old"])
    if count != 1:
        return f"its snippet occurs {count} times in {mutant['file']}"
    try:
        ast.parse(text.replace(mutant["old"], mutant["new"]))
    except SyntaxError as error:
        return f"the mutated file does not parse ({error})"
    return None


def fresh_copy() -> Path:
    """outputs/meaning/tree: the files git tracks or does not ignore, as they are in the working tree."""
    tree = WORK / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return tree


def run_tests(tests: list[str], tree: Path, timeout: float) -> str:
    """'passed', 'failed', 'timeout' or 'error (pytest exit N)' for the tests run in `tree`."""
    # The copy sits under outputs/, so ../shared/data is named for it (the tests would otherwise skip or fail on it).
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1",
               MIT_SHARED_DATA=os.environ.get("MIT_SHARED_DATA") or str(ROOT.parent / "shared" / "data"))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-W", "ignore",
                               *tests], cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "passed", 1: "failed"}.get(done.returncode, f"error (pytest exit {done.returncode})")


def run_one(mutant: dict, tree: Path, timeout: float) -> tuple[str, float]:
    path = tree / mutant["file"]
    original = path.read_text()
    path.write_text(original.replace(mutant["old"], mutant["new"]))
    start = time.perf_counter()
    try:
        outcome = run_tests(mutant["tests"], tree, timeout)
    finally:
        path.write_text(original)
    verdict = {"passed": "survived", "failed": "killed", "timeout": "killed (timeout)"}.get(outcome, outcome)
    return verdict, time.perf_counter() - start


def check_baseline(mutants: list[dict], tree: Path, timeout: float) -> list[str]:
    """The test sets that fail without any mutant: a kill by them would mean nothing."""
    failing = []
    for tests in sorted({tuple(m["tests"]) for m in mutants}):
        outcome = run_tests(list(tests), tree, timeout)
        if outcome != "passed":
            failing.append(f"{' '.join(tests)}: {outcome}")
    return failing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="mutant ids to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and whether each applies")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant (a timeout kills it)")
    args = parser.parse_args()
    mutants = load_mutants()
    if args.only:
        unknown = set(args.only) - {m["id"] for m in mutants}
        if unknown:
            raise SystemExit(f"unknown mutant ids: {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m["id"] in args.only]
    stale = [(m["id"], why) for m in mutants if (why := check_applies(m, ROOT))]
    if args.list:
        for m in mutants:
            print(f"{m['id']}: {m['file']} -- {m['why']}")
    if stale:
        for mutant_id, why in stale:
            print(f"STALE {mutant_id}: {why}", file=sys.stderr)
        return 1
    if args.list:
        return 0
    tree = fresh_copy()
    failing = check_baseline(mutants, tree, args.timeout)
    if failing:
        print("These tests fail on the unmutated tree, so no mutant is run:\n  " + "\n  ".join(failing),
              file=sys.stderr)
        return 1
    rows, killed = [], 0
    for k, mutant in enumerate(mutants, 1):
        verdict, seconds = run_one(mutant, tree, args.timeout)
        killed += verdict.startswith("killed")
        rows.append(f"| {mutant['id']} | `{mutant['file']}` | {verdict} | {seconds:.0f} s | {mutant['why']} |")
        print(f"[{k}/{len(mutants)}] {mutant['id']}: {verdict} ({seconds:.0f} s)", flush=True)
    score = f"{killed} of {len(mutants)} killed ({100 * killed / max(len(mutants), 1):.0f}%)"
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "report.md").write_text("| mutant | file | verdict | time | the wrong choice |\n|---|---|---|---|---|\n"
                                    + "\n".join(rows) + f"\n\n{score}\n")
    print(score)
    return 0


if __name__ == "__main__":
    sys.exit(main())
