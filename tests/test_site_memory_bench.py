"""bench/site_memory.py: its synthetic site is all usable films, none a duplicate, and each run reports them all."""

from __future__ import annotations

import importlib
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench script imports its sibling app_latency
bench = importlib.import_module("site_memory")


def test_the_synthetic_site_is_read_whole_by_either_way_of_scoring(tmp_path, tiny_checkpoint):
    from covid_core import site_scoring
    from covid_core.checkpoint import load_classifier

    default = site_scoring.SCORE_CHUNK
    folder = bench.site_folder(tmp_path, 7)
    # no duplicate, none broken
    assert site_scoring.site_films(load_classifier(tiny_checkpoint), folder)["problems"] == []
    classifier = load_classifier(tiny_checkpoint)
    for chunk in (2, 10**9):
        rise, seconds, films = bench.measure(classifier, folder, chunk)
        assert films == 7 and rise >= 0 and seconds > 0
    assert site_scoring.SCORE_CHUNK == default  # the bench puts the product's chunk back
