"""covid_core.intervals: 95% intervals that draw patients, not films, and do not claim more than the films show."""

from __future__ import annotations

import numpy as np

from covid_core.intervals import auc_with_interval, macro_auc_with_interval
from covid_core.metrics import binary_auc, classification_metrics


def _scores(rng, n_pos: int, n_neg: int, gap: float = 1.0):
    y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    return y, y * gap + rng.normal(0, 1, len(y))


def test_the_auc_is_scikit_learns_and_its_interval_holds_it():
    rng = np.random.default_rng(0)
    for _ in range(30):
        y, score = _scores(rng, int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        score = score.round(1)  # ties count half, as in scikit-learn
        found = auc_with_interval(y, score, np.arange(len(y)))
        assert abs(found["value"] - binary_auc(y, score)) < 1e-12
        assert found["low"] <= found["value"] <= found["high"]


def test_a_question_asked_of_a_dozen_films_gets_a_wide_interval_and_one_of_hundreds_a_narrow_one():
    rng = np.random.default_rng(1)
    small = auc_with_interval(*_scores(rng, 11, 57), patients=np.arange(68))
    large = auc_with_interval(*_scores(rng, 300, 300), patients=np.arange(600))
    assert small["high"] - small["low"] > 0.2
    assert large["high"] - large["low"] < 0.12


def test_films_of_one_patient_count_once():
    rng = np.random.default_rng(2)
    y, score = _scores(rng, 15, 15)
    alone = auc_with_interval(y, score, np.arange(30))
    five_each = auc_with_interval(np.repeat(y, 5), np.repeat(score, 5), np.repeat(np.arange(30), 5))
    as_films = auc_with_interval(np.repeat(y, 5), np.repeat(score, 5), np.arange(150))
    width = {k: v["high"] - v["low"] for k, v in (("alone", alone), ("five_each", five_each), ("as_films", as_films))}
    assert abs(width["five_each"] - width["alone"]) < 0.05  # five copies of a patient's film add nothing
    assert width["as_films"] < 0.7 * width["five_each"]  # counted as films they would


def test_a_perfect_score_on_few_patients_is_not_an_interval_of_one_point():
    y = np.r_[np.ones(8, bool), np.zeros(8, bool)]
    found = auc_with_interval(y, y.astype(float), np.arange(16))
    assert found["value"] == 1.0 and found["high"] == 1.0 and found["low"] < 0.75  # Wilson on 8 patients


def test_a_side_without_films_has_no_figure_and_no_interval():
    found = auc_with_interval(np.zeros(5, bool), np.arange(5.0), np.arange(5))
    assert found == {"value": None, "low": None, "high": None}


def test_the_macro_auc_is_the_metrics_one_with_an_interval_around_it():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 200)
    probs = rng.dirichlet([1, 1, 1], 200) + np.eye(3)[labels] * 0.5
    probs /= probs.sum(1, keepdims=True)
    found = macro_auc_with_interval(labels, probs, np.arange(200) // 2)
    assert abs(found["value"] - classification_metrics(labels, probs, "abc")["macro_auc"]) < 1e-12
    assert found["low"] < found["value"] < found["high"] and found["high"] - found["low"] < 0.2
