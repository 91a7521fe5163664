"""bench/patch_inference.py: a patch-trained model read as the mean over a lattice of windows."""

from __future__ import annotations

import importlib
import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench script imports its sibling shortcut_ablation
bench = importlib.import_module("patch_inference")


def test_the_windows_cover_the_film_from_corner_to_corner():
    assert bench.window_corners(160, 80, 3) == [(0, 0), (0, 40), (0, 80), (40, 0), (40, 40), (40, 80),
                                                (80, 0), (80, 40), (80, 80)]
    assert bench.window_corners(32, 32, 2) == [(0, 0)] * 4  # a window the film's size is the film


def test_window_probabilities_are_the_mean_over_the_windows(tmp_path):
    from app_helpers import make_checkpoint
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import calibrated_probabilities, logits_and_features

    clf = load_classifier(make_checkpoint(tmp_path / "m.pt"))
    images = np.random.default_rng(0).integers(0, 256, size=(3, 40, 40), dtype=np.uint8)
    got = bench.window_probabilities(clf, images, 24, 2)
    expected = np.mean([calibrated_probabilities(logits_and_features(
        clf.model, np.ascontiguousarray(images[:, t:t + 24, l:l + 24]), clf.preprocess)[0], clf.temperature)
        for t, l in ((0, 0), (0, 16), (16, 0), (16, 16))], axis=0)
    assert got.shape == (3, len(clf.classes)) and np.allclose(got, expected, atol=1e-6)
    assert np.allclose(got.sum(1), 1.0, atol=1e-5)
    whole = calibrated_probabilities(logits_and_features(clf.model, images, clf.preprocess)[0], clf.temperature)
    assert not np.allclose(got, whole)  # the windows are read, not the whole film


def test_positive_at_covid_sensitivity_uses_the_threshold_that_keeps_that_share_of_covid_films():
    covid = np.array([[0, 0, p] for p in np.linspace(0.1, 1.0, 10)])  # p(COVID-19) 0.1 ... 1.0
    films = np.array([[0, 0, p] for p in (0.05, 0.15, 0.25, 0.95)])
    # 9 of the 10 COVID-19 films stay positive at 0.2: two of the four films reach it
    assert bench.positive_at_covid_sensitivity(films, covid, 2, 0.90) == 0.5
    assert bench.positive_at_covid_sensitivity(films, covid, 2, 1.0) == 0.75  # all ten kept: threshold 0.1


def test_rows_print_as_a_markdown_table(capsys):
    from shortcut_ablation import print_table

    print_table({"whole film": {"a": 0.12345, "b": 1.0}}, "inference", {"A AUC": "a", "B share": "b"})
    assert capsys.readouterr().out.splitlines() == ["| inference | A AUC | B share |", "|---|---|---|",
                                                    "| whole film | 0.123 | 1.000 |"]
