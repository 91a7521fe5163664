"""bench/covid_vs_adult_pneumonia.py: the probe and the PPV ceiling behind the COVID-19 PPV limit in the README."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("covid_ceiling", REPO / "bench" / "covid_vs_adult_pneumonia.py")
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def test_ppv_ceiling_counts_only_the_false_positives_the_specificity_allows():
    # 57 true positives (95% of 60); 11 negatives at specificity 0.29 leave 7.81 false positives
    assert ceiling.ppv_ceiling(0.29, 60, 11) == pytest.approx(57 / (57 + 0.71 * 11))
    assert ceiling.ppv_ceiling(1.0, 60, 11) == 1.0
    assert ceiling.ppv_ceiling(0.0, 60, 11) == pytest.approx(57 / 68)


def test_probe_separates_what_is_separable_and_nothing_else():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [30, 90])
    groups = np.arange(len(y)) // 2  # two films per patient, never split across folds
    signal = rng.normal(size=(len(y), 8)) + 4.0 * y[:, None]
    noise = rng.normal(size=(len(y), 8))
    clear = ceiling.probe_cv(signal, y, groups, repeats=2)
    blind = ceiling.probe_cv(noise, y, groups, repeats=2)
    assert clear["auc"] > 0.99 and clear["specificity"] > 0.9
    assert 0.3 < blind["auc"] < 0.7 and blind["specificity"] < 0.4
