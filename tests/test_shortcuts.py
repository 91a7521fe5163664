"""Shortcut meters: within-source AUCs expose a model that reads the hospital; the source probe reads the features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from covid_core.shortcuts import source_probe, within_source_aucs

CLASSES = ("normal", "pneumonia", "covid19")


def _table(rng):
    rows = [("nih", "normal")] * 40 + [("nih", "pneumonia")] * 40 + [("kermany", "normal")] * 30 + \
        [("kermany", "pneumonia")] * 30 + [("cohen", "pneumonia")] * 10 + [("cohen", "covid19")] * 30
    t = pd.DataFrame(rows, columns=["source", "label"])
    t["patient"] = [f"p{i}" for i in range(len(t))]
    return t


def _probs(p_disease: np.ndarray, p_covid: np.ndarray) -> np.ndarray:
    normal = 1 - p_disease
    return np.stack([normal, p_disease * (1 - p_covid), p_disease * p_covid], 1)


def _lung_reader(rng, t, gap: float, noise: float) -> np.ndarray:
    """Probabilities of a model that reads the disease: p(disease) 0.5 +/- gap by the label, p(COVID-19) 0.5 +/-
    (gap - 0.1), each with Gaussian noise."""
    sick = (t.label != "normal").to_numpy()
    p_disease = np.where(sick, 0.5 + gap, 0.5 - gap) + rng.normal(0, noise, len(t))
    p_covid = np.where(t.label == "covid19", 0.4 + gap, 0.6 - gap) + rng.normal(0, noise, len(t))
    return _probs(p_disease.clip(0, 1), p_covid.clip(0, 1))


def test_a_model_that_reads_the_hospital_scores_chance_within_each_source():
    rng = np.random.default_rng(0)
    t = _table(rng)
    # "pneumonia" = child, "covid19" = not NIH: the source decides, the lungs do not.
    p_disease = np.where(t.source == "nih", 0.2, 0.8) + rng.normal(0, 0.01, len(t))
    p_covid = np.where(t.source == "cohen", 0.9, 0.1) + rng.normal(0, 0.01, len(t))
    out = within_source_aucs(t, _probs(p_disease.clip(0, 1), p_covid.clip(0, 1)), CLASSES)
    assert set(out) == {"nih_normal_vs_pneumonia", "kermany_normal_vs_pneumonia", "cohen_covid_vs_other_pneumonia"}
    for q in out.values():
        assert 0.3 < q["auc"] < 0.7, q
    assert out["nih_normal_vs_pneumonia"]["positive_called"] == 0.0  # the NIH pneumonias are called normal
    assert (out["nih_normal_vs_pneumonia"]["n_negative"], out["nih_normal_vs_pneumonia"]["n_positive"]) == (40, 40)


def test_a_model_that_reads_the_lungs_separates_within_each_source():
    rng = np.random.default_rng(1)
    t = _table(rng)
    out = within_source_aucs(t, _lung_reader(rng, t, gap=0.4, noise=0.05), CLASSES)
    assert all(q["auc"] > 0.95 for q in out.values()), out
    assert out["nih_normal_vs_pneumonia"]["positive_called"] == 1.0


def test_questions_that_the_data_cannot_ask_are_left_out_or_null():
    t = pd.DataFrame({"source": ["nih", "nih"], "label": ["normal", "normal"]})
    out = within_source_aucs(t, np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]]), CLASSES)
    assert out["nih_normal_vs_pneumonia"]["auc"] is None and list(out) == ["nih_normal_vs_pneumonia"]
    assert within_source_aucs(t.drop(columns="source"), np.zeros((2, 3)), CLASSES) == {}
    assert within_source_aucs(t, np.zeros((2, 2)), ("negative", "positive")) == {}


def test_the_source_probe_reads_what_the_features_carry():
    rng = np.random.default_rng(2)
    sources = np.repeat(["nih", "kermany", "cohen"], 60)
    patients = [f"p{i // 2}" for i in range(len(sources))]  # two films a patient, kept in one fold
    one_hot = (sources[:, None] == np.array(["nih", "kermany", "cohen"])).astype(float)
    carries = rng.normal(0, 1, (len(sources), 16)) + np.pad(one_hot, ((0, 0), (0, 13))) * 3
    blind = rng.normal(0, 1, (len(sources), 16))
    hi, lo = source_probe(carries, sources, patients), source_probe(blind, sources, patients)
    assert hi["accuracy"] > 0.95 and hi["majority_share"] == pytest.approx(1 / 3)
    assert lo["accuracy"] < 0.5 and sorted(lo["sources"]) == ["cohen", "kermany", "nih"]
    assert source_probe(blind, np.repeat(["nih"], len(sources))) is None  # one source: nothing to tell apart


def test_leave_one_source_out_flags_a_source_unlike_the_others_and_not_one_like_them():
    from covid_core.ood import leave_one_source_out

    rng = np.random.default_rng(3)

    def films(n, shift_source):
        sources = np.repeat(["a", "b", "far"], n)
        labels = np.tile(np.arange(2), len(sources) // 2 + 1)[: len(sources)]
        x = rng.normal(0, 1, (len(sources), 8)) + labels[:, None]
        x[sources == "far"] += shift_source  # another hospital: its films sit elsewhere in feature space
        return {"penultimate": x}, labels, sources

    train, labels, train_s = films(200, 6.0)
    val, _, val_s = films(80, 6.0)
    test, _, test_s = films(60, 6.0)
    out = leave_one_source_out(train, labels, train_s, val, val_s, test, test_s)
    assert set(out) == {"a", "b", "far"} and out["far"]["n"] == 60
    assert all(type(k) is str for k in out)  # numpy strings would make the checkpoint unloadable with weights_only
    assert out["far"]["flagged"] > 0.9  # unseen and unlike the rest: noticed
    assert out["a"]["flagged"] < 0.2  # unseen but like "b": passes, as it should


def test_each_within_source_auc_comes_with_an_interval_that_draws_patients():
    rng = np.random.default_rng(4)
    t = _table(rng)
    probs = _lung_reader(rng, t, gap=0.2, noise=0.2)
    out = within_source_aucs(t, probs, CLASSES)
    for q in out.values():
        assert q["auc_low"] <= q["auc"] <= q["auc_high"], q
    width = {k: q["auc_high"] - q["auc_low"] for k, q in out.items()}
    assert width["cohen_covid_vs_other_pneumonia"] > width["nih_normal_vs_pneumonia"]  # 10 other pneumonias, not 40
    one_patient_each_source = t.assign(patient=t.source + t.label)  # every film of a group is one patient's
    lumped = within_source_aucs(one_patient_each_source, probs, CLASSES)["nih_normal_vs_pneumonia"]
    assert lumped["auc"] == out["nih_normal_vs_pneumonia"]["auc"]
    assert lumped["auc_high"] - lumped["auc_low"] > 0.5  # two patients tell almost nothing
