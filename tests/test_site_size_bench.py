"""bench/site_size.py: sizes are read as COVID:OTHER, draws take whole patients until each class has its films,
and the report's estimate and half B's figures count only the films given a verdict."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
bench = importlib.import_module("site_size")


def test_sizes_are_covid_then_other_and_all_means_every_film():
    assert bench.parse_sizes("10:40, all:all,19:all") == [(10, 40), (None, None), (19, None)]
    assert [bench.size_text(s) for s in bench.parse_sizes("10:40,all:all,19:all")] == ["10:40", "all:all", "19:all"]
    with pytest.raises(ValueError, match="COVID:OTHER"):
        bench.parse_sizes("10")


def _rows() -> pd.DataFrame:
    # 6 COVID-19 patients of 2 films each, 10 other patients of 1 film each
    covid = [("covid19", f"c{i}") for i in range(6) for _ in range(2)]
    other = [("normal" if i % 2 else "pneumonia", f"o{i}") for i in range(10)]
    return pd.DataFrame(covid + other, columns=["label", "patient"])


def test_a_draw_takes_whole_patients_until_each_class_has_its_films():
    rows = _rows()
    for seed in range(5):
        chosen = bench.draw_patients(rows, "covid19", (3, 4), np.random.default_rng(seed))
        drawn = rows[rows.patient.isin(chosen)]
        covid = drawn[drawn.label == "covid19"]
        assert len(covid) == 4  # two whole patients: 3 films asked, a patient's 2 films are not split
        assert len(drawn) - len(covid) == 4
    assert bench.draw_patients(rows, "covid19", (None, 2), np.random.default_rng(0)) >= {f"c{i}" for i in range(6)}


def test_draws_differ_with_the_generator():
    rows = _rows()
    rng = np.random.default_rng(0)
    assert len({frozenset(bench.draw_patients(rows, "covid19", (2, 2), rng)) for _ in range(6)}) > 1


def test_the_estimate_counts_the_films_given_a_verdict_when_the_report_has_them():
    report = {"after": {"counts": {"tp": 9, "fn": 1, "tn": 5, "fp": 5},
                        "given": {"counts": {"tp": 7, "fn": 1, "tn": 3, "fp": 1}}}}
    assert bench.estimate(report) == [(7, 8), (3, 4)]
    assert bench.estimate({"after": {"counts": {"tp": 9, "fn": 1, "tn": 5, "fp": 5}}}) == [(9, 10), (5, 10)]
    assert bench.estimate({}) == [(0, 0), (0, 0)]
    assert bench.estimate_text(7, 8) == "0.875 (7 of 8; from 0.53)"  # Wilson interval 0.529-0.978
    assert bench.estimate_text(0, 0) == "n/a"


def test_half_b_figures_leave_withheld_films_out_and_do_not_count_them_wrong():
    y = np.array([True, True, False, False, False])
    positive = np.array([True, False, True, True, False])
    withheld = np.array([False, False, False, True, False])
    sens, spec, wrong = bench.measured(y, positive, withheld)
    assert sens == 0.5 and spec == 0.5  # the withheld false positive is left out
    assert wrong == pytest.approx(2 / 5)  # a missed COVID-19 film and one false positive
