#!/usr/bin/env bash
# Mutation testing with mutmut 3 of the modules that carry behaviours: do the tests notice when the code is changed
# a little (a comparison flipped, a constant moved, a call dropped)?
#
#   bash scripts/mutation_check.sh [MODULE ...]      # e.g. mit_annotator/vision/tracking.py; default: every module below
#
# Not part of CI: it is slow (minutes to an hour per module on 2 cores). Each module runs on its own, in
# outputs/mutation/<module>/: a copy of the sources and tests whose [tool.mutmut] (pyproject.toml) is narrowed to
# that module (only_mutate) and to the test files that cover it (the table below); mutmut then runs, for each mutant,
# only the tests that reach the mutated function. It prints killed / survived per module and writes them, with the
# surviving mutants' names, to outputs/mutation/summary.txt; `cd outputs/mutation/<module> && ../../../.venv/bin/mutmut
# show NAME` shows a mutant's diff. MUTATION_JOBS sets the parallel workers (default 2); MUTANTS, mutant-name globs
# (e.g. "mit_annotator.audio.diarization.x_cluster*"), limits a run to some functions of the module; MUTANT_SAMPLE=N runs
# N of the module's mutants drawn at random (seed MUTANT_SEED, default 0) for modules too slow to run whole; there a
# glob in MUTANTS that starts with ! leaves those mutants out of the draw.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

declare -A TESTS=(  # module -> the test files that cover it
  [mit_annotator/vision/tracking.py]="tests/vision/test_tracking.py"
  [mit_annotator/audio/diarization.py]="tests/audio/test_diarization.py"
  [mit_annotator/speakers/assignment.py]="tests/speakers/test_assignment_rules.py"
  [mit_annotator/speakers/lips.py]="tests/speakers/test_lips.py"
  # the sampler without its four slowest tests (a minute each per mutant here); they cover stitching, which the
  # next-window and blend tests cover too
  [covog/pipeline/sampler.py]="tests/covog/test_sampler.py --deselect tests/covog/test_sampler.py::test_windows_without_overlap \
    --deselect tests/covog/test_sampler.py::test_windows_stitch_to_the_requested_length \
    --deselect tests/covog/test_sampler.py::test_the_same_seed_gives_the_same_frames \
    --deselect tests/covog/test_sampler.py::test_a_model_loaded_in_bfloat16_generates"
  # the audio driver: its own tests (the sampler's run every network for minutes per mutant)
  [covog/models/audio_driver.py]="tests/covog/test_covog_model.py::test_the_audio_driver_has_covogs_checkpoint_layout \
    tests/covog/test_covog_model.py::test_audio_projection_shapes \
    tests/covog/test_covog_model.py::test_one_persons_score_changes_each_block_only_inside_their_face \
    tests/covog/test_covog_model.py::test_one_persons_own_audio_changes_each_block_only_inside_their_face \
    tests/covog/test_covog_model.py::test_the_mixed_track_behaves_as_the_paper \
    tests/covog/test_covog_model.py::test_a_fresh_audio_block_is_exactly_the_identity \
    tests/covog/test_covog_model.py::test_an_untrained_audio_driver_is_skipped \
    tests/covog/test_covog_model.py::test_the_trained_flag_is_saved_with_the_model \
    tests/covog/test_covog_model.py::test_face_masks_of_the_wrong_size_are_refused \
    tests/covog/test_covog_model.py::test_one_persons_audio_changes_the_final_output \
    tests/covog/test_covog_model.py::test_audio_rows_must_match_the_frames \
    tests/covog/test_covog_model.py::test_each_audio_block_computes_the_published_arithmetic_biases_included"
  [covog/training/trainer.py]="tests/covog/test_train.py tests/covog/test_covog_eval_training.py"
  # (its one-line error test reads stderr, where mutmut's own logging lands)
  [covog/loaders/checkpoints.py]="tests/covog/test_checkpoints.py \
    --deselect tests/covog/test_checkpoints.py::test_the_command_line_reports_bad_input_in_one_line"
  # the nodes: the tests that run them in this process (mutmut cannot see into the pack loaded in a subprocess)
  [nodes]="tests/nodes/test_covog_nodes.py tests/nodes/test_covog_stage_nodes.py tests/speakers/test_binding.py \
    tests/nodes/test_nodes_progress.py tests/nodes/test_node_settings.py tests/nodes/test_node_widgets.py \
    tests/covog/test_evaluate.py::test_the_evaluate_node_scores_the_images_against_the_schedule \
    tests/speakers/test_who_speaks_real.py::test_the_assign_speakers_node_uses_the_model_on_the_images \
    tests/speakers/test_backends.py tests/speakers/test_voice_layouts.py"
)
ORDER=(mit_annotator/vision/tracking.py mit_annotator/audio/diarization.py mit_annotator/speakers/assignment.py mit_annotator/speakers/lips.py
       covog/pipeline/sampler.py covog/models/audio_driver.py covog/training/trainer.py covog/loaders/checkpoints.py nodes)
MODULES=("$@")
[ ${#MODULES[@]} -gt 0 ] || MODULES=("${ORDER[@]}")
for module in "${MODULES[@]}"; do
  [ -n "${TESTS[$module]:-}" ] || { echo "unknown module $module; known: ${ORDER[*]}" >&2; exit 2; }
done

[ -x .venv/bin/python ] || bash scripts/setup.sh
if ! .venv/bin/python -c "import mutmut" 2>/dev/null; then
  .venv/bin/python -m pip --disable-pip-version-check -q install -c .venv/constraints.txt "mutmut>=3.8,<4"
fi
SHARED_DATA=${MIT_SHARED_DATA:-$ROOT/../shared/data}
[ -d "$SHARED_DATA" ] && SHARED_DATA=$(cd "$SHARED_DATA" && pwd)
export MIT_SHARED_DATA=$SHARED_DATA HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CUDA_VISIBLE_DEVICES=""
# one thread per test process: mutmut forks each mutant's run from a process that has run torch, and OpenMP's
# thread pool does not survive a fork (the children hang until their timeout)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

mkdir -p outputs/mutation
SUMMARY=outputs/mutation/summary.txt
for module in "${MODULES[@]}"; do
  name=${module//\//.}
  name=${name%.py}
  # a folder named like a package (nodes) would make pytest import the copy's root __init__.py as that package
  [[ $name == *.* ]] || name="$name.package"
  work=outputs/mutation/$name
  rm -rf "$work" && mkdir -p "$work"
  tar --exclude=__pycache__ -cf - mit_annotator covog nodes __init__.py workflows tests pyproject.toml \
    | tar -C "$work" -xf -
  pattern=$module
  [ -d "$module" ] && pattern="$module/*"
  # narrow [tool.mutmut] in the copy: this module, and the tests that cover it
  .venv/bin/python - "$work/pyproject.toml" "$pattern" ${TESTS[$module]} <<'PY'
import json, re, sys
path, pattern, tests = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(path).read()
head, section = text.split("[tool.mutmut]\n", 1)
body, _, rest = section.partition("\n[")
body = re.sub(r"(?m)^(only_mutate|pytest_add_cli_args_test_selection) *=.*\n?", "", body)
body += f"\nonly_mutate = {json.dumps([pattern])}\npytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
open(path, "w").write(head + "[tool.mutmut]\n" + body + ("\n[" + rest if rest else ""))
PY
  echo "== $module: mutating with ${TESTS[$module]}"
  start=$(date +%s)
  selection=${MUTANTS:-}
  if [ -n "${MUTANT_SAMPLE:-}" ]; then
    # mutmut writes every mutant's name into mutants/<file>.meta when it generates them: generate (a glob that
    # matches none runs no mutant), then draw the sample from those names
    (cd "$work" && "$ROOT/.venv/bin/mutmut" run "no-such-mutant" > mutmut-generate.log 2>&1) || true
    selection=$(cd "$work" && "$ROOT/.venv/bin/python" - "$MUTANT_SAMPLE" "${MUTANT_SEED:-0}" "${MUTANTS:-*}" <<'PY'
import fnmatch, json, pathlib, random, sys
size, seed, globs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
wanted = [g for g in globs if not g.startswith("!")] or ["*"]
unwanted = [g[1:] for g in globs if g.startswith("!")]
names = sorted(name for meta in pathlib.Path("mutants").rglob("*.meta")
               for name in json.loads(meta.read_text())["exit_code_by_key"]
               if any(fnmatch.fnmatch(name, g) for g in wanted) and not any(fnmatch.fnmatch(name, g) for g in unwanted))
if not names:
    sys.exit("no mutants were generated (see mutmut-generate.log)")
print(" ".join(random.Random(seed).sample(names, min(size, len(names)))))
PY
) || { echo "could not draw a sample for $module; see $work/mutmut-generate.log" >&2; exit 1; }
    echo "   a sample of $(echo "$selection" | wc -w) mutants"
  fi
  # shellcheck disable=SC2086  # the selection: names or globs, split on spaces
  (cd "$work" && "$ROOT/.venv/bin/mutmut" run --max-children "${MUTATION_JOBS:-2}" $selection > mutmut-run.log 2>&1) || {
    echo "mutmut failed for $module; the end of $work/mutmut-run.log:" >&2
    tail -30 "$work/mutmut-run.log" >&2
    exit 1
  }
  (cd "$work" && "$ROOT/.venv/bin/mutmut" results --all true > results.txt)
  minutes=$(( ($(date +%s) - start + 59) / 60 ))
  .venv/bin/python - "$module" "$work/results.txt" "$minutes" > "$work/summary.txt" <<'PY'
import collections, sys
module, results, minutes = sys.argv[1], sys.argv[2], sys.argv[3]
status = {}
for line in open(results):
    if ":" in line:
        key, value = line.strip().rsplit(": ", 1)
        status[key] = value
status = {key: value for key, value in status.items() if value != "not checked"}  # outside a sample
counts = collections.Counter(status.values())
tested = counts["killed"] + counts["survived"] + counts["timeout"]
ratio = (counts["killed"] + counts["timeout"]) / tested if tested else 0.0
print(f"{module}: {len(status)} mutants, killed {counts['killed']}, timeout {counts['timeout']}, "
      f"survived {counts['survived']}, no tests {counts['no tests']}, other "
      f"{len(status) - tested - counts['no tests']}; kill ratio {ratio:.0%} ({minutes} min)")
for key, value in sorted(status.items()):
    if value in ("survived", "no tests", "suspicious"):
        print(f"    {value}: {key}")
PY
  cat "$work/summary.txt" >> "$SUMMARY"
  cat "$work/summary.txt"
done
echo "summary: $SUMMARY"
