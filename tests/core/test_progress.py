"""The one progress hook's helpers: a part of the work mapped into the whole, a named stage, a tqdm bar."""

import io

from tqdm import tqdm

from mit_annotator.core.progress import report, stage_hook, tqdm_progress, within


def test_a_part_lands_inside_the_whole_and_none_stays_none():
    seen = []
    part = within(lambda done, total: seen.append((done, total)), 4, 10)
    for done in range(3):
        part(done + 1, 3)  # the part's own total is not the whole's
    assert seen == [(5, 10), (6, 10), (7, 10)]
    assert within(None, 4, 10) is None and stage_hook(None, "vision") is None
    report(None, 1, 2)  # no hook: nothing to call


def test_a_stage_names_itself_and_a_bar_follows_the_total():
    heard = []
    stage_hook(lambda *args: heard.append(args), "vision")(3, 8)
    assert heard == [("vision", 3, 8)]
    with tqdm(total=1, file=io.StringIO()) as bar:
        hook = tqdm_progress(bar)
        hook(2, 5)
        hook(4, 5)
        assert (bar.n, bar.total) == (4, 5)
