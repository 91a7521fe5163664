"""bench/unseen_ensemble.py: the mean of models trained without a source averages their probabilities and
thresholds, withholds what any of them withholds, and reports its wrong verdicts with and without withholding."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench script imports its sibling shortcut_ablation
ensemble = importlib.import_module("unseen_ensemble")

CLASSES = ["normal", "pneumonia", "covid19"]


def _scored(covid: list[float], withheld: list[bool], threshold: float) -> "ensemble.Scored":
    covid = np.asarray(covid)
    probs = np.stack([(1 - covid) / 2, (1 - covid) / 2, covid], axis=1)
    test = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    return ensemble.Scored(probs, np.asarray(withheld), threshold, test)


def test_the_mean_averages_probabilities_and_thresholds_and_withholds_what_any_member_withholds():
    a = _scored([0.9, 0.2, 0.6], [True, False, False], 0.4)
    b = _scored([0.5, 0.4, 0.2], [False, False, True], 0.6)
    mean = ensemble.mean_of([a, b])
    assert mean.probs[:, 2].tolist() == pytest.approx([0.7, 0.3, 0.4])
    assert mean.withheld.tolist() == [True, False, True]
    assert mean.threshold == pytest.approx(0.5)


def test_a_row_counts_wrong_verdicts_with_and_without_the_withheld_films():
    labels = np.array(["normal", "pneumonia", "normal", "pneumonia"])
    s = _scored([0.9, 0.8, 0.1, 0.3], [True, False, False, False], 0.5)
    test = pd.DataFrame({"label": CLASSES, "label_idx": [0, 1, 2], "source": ["nih", "nih", "cohen"]})
    cells = [c.strip() for c in ensemble.row("m", s, labels, CLASSES, test).strip("|").split("|")]
    name, threshold, n_p, n_covid, normals_covid, withheld, wrong, wrong_unwithheld, macro, nih = cells
    assert (name, threshold) == ("m", "0.5000")
    assert withheld == "0.250" and wrong == "0.250" and wrong_unwithheld == "0.500"  # the withheld film is wrong too
    assert normals_covid == "0.500"  # the first normal is most probably COVID-19, the second normal
    assert n_covid == "0.500"  # TEST's COVID-19 film (0.8) ranks above the normal at 0.1, below the one at 0.9
    assert macro == "1.000" and nih == "1.000"
