"""95% intervals of figures measured on films: a bootstrap that draws patients with replacement (all films of a
drawn patient together, since one patient's films are not independent), widened where a bootstrap cannot reach
beyond what was seen (15 of 15 films caught gives 100-100%)."""

from __future__ import annotations

import numpy as np

from .metrics import proportion_interval

BOOTSTRAP = 1000


def table_patients(table) -> np.ndarray:
    """The patient of each film of a DataFrame, as text; each film its own patient without a "patient" column."""
    if "patient" in table.columns:
        return table["patient"].astype(str).to_numpy()
    return np.arange(len(table)).astype(str)


def patient_resamples(patients, draws: int = BOOTSTRAP, seed: int = 0):
    """``draws`` index arrays, each the films of as many patients as there are, drawn with replacement."""
    groups = {}
    for i, p in enumerate(patients):
        groups.setdefault(p, []).append(i)
    members = list(groups.values())
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        yield np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])


def percentile_interval(values: list) -> tuple[float | None, float | None]:
    """The 2.5th and 97.5th percentiles of the draws that gave a figure; (None, None) with fewer than 20 of them."""
    values = [v for v in values if v is not None]
    if len(values) < 20:
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def widen_to_patients(figure: dict, rate: float | None, n_patients: int) -> None:
    """Widen a figure's bootstrap interval ("low", "high") to at least the Wilson interval of the same rate counted
    on patients.

    A bootstrap cannot draw a rate beyond what was seen: 15 of 15 COVID-19 films called positive gives an interval
    of 100-100%, as if the next film could not be missed (and an AUC of 1.000, 1.000-1.000). Counting each patient
    once (as many hits as the rate gives) is the cautious stand-in for films of one patient that are not
    independent.
    """
    if rate is None or n_patients == 0:
        return
    low, high = proportion_interval(round(rate * n_patients), n_patients)
    if figure.get("low") is None:  # too few draws held films of that kind: the Wilson interval alone
        figure["low"], figure["high"] = low, high
    else:
        figure["low"], figure["high"] = min(figure["low"], low), max(figure["high"], high)


def _rank_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC from ranks (ties count half, as scikit-learn's), fast enough for a thousand draws."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_with_interval(y, score, patients, seed: int = 0) -> dict:
    """{"value", "low", "high"}: the AUC of ``score`` for bool ``y``, its patient bootstrap interval, widened to the
    Wilson interval of the AUC counted on the patients of the smaller side (pairing each of them with a patient of
    the other side gives that many independent trials of "a positive film outscores a negative one")."""
    y, score, patients = np.asarray(y, bool), np.asarray(score, np.float64), np.asarray(patients)
    out = {"value": _rank_auc(y, score)}
    draws = [_rank_auc(y[i], score[i]) for i in patient_resamples(patients, seed=seed)]
    out["low"], out["high"] = percentile_interval(draws)
    widen_to_patients(out, out["value"], min(len(set(patients[y])), len(set(patients[~y]))))
    return out


def macro_auc_with_interval(labels, probs, patients, seed: int = 0) -> dict:
    """{"value", "low", "high"}: the mean one-vs-rest AUC over the classes present (as ``classification_metrics``'
    macro AUC) and its patient bootstrap interval."""
    labels, probs, patients = np.asarray(labels, int), np.asarray(probs, np.float64), np.asarray(patients)

    def macro(idx):
        aucs = [a for a in (_rank_auc(labels[idx] == k, probs[idx, k]) for k in range(probs.shape[1])) if a is not None]
        return float(np.mean(aucs)) if aucs else None

    out = {"value": macro(np.arange(len(labels)))}
    out["low"], out["high"] = percentile_interval([macro(i) for i in patient_resamples(patients, seed=seed)])
    return out
