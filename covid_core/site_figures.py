"""A site validation's figures: sensitivity, specificity and AUC with 95% intervals counted by patient, the same
counting only the films given a verdict, balanced accuracy and the reliability curve (no torch, no films)."""

from __future__ import annotations

import numpy as np

from .metrics import binary_auc, calibration_bins, rates_of_calls

BOOTSTRAP = 1000


def _rates(y: np.ndarray, positive: np.ndarray) -> tuple[float | None, float | None]:
    rates = rates_of_calls(y, positive)
    return rates["sensitivity"], rates["specificity"]


def _interval(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if len(values) < 20:
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def figures(y: np.ndarray, score: np.ndarray, positive: np.ndarray, patients: np.ndarray, seed: int = 0) -> dict:
    """Sensitivity, specificity (of ``positive``) and AUC (of ``score``) with 95% intervals from a bootstrap that
    resamples patients (all films of a drawn patient together); the confusion counts and the ROC curve."""
    from sklearn.metrics import roc_curve

    y, positive = np.asarray(y, bool), np.asarray(positive, bool)
    sens, spec = _rates(y, positive)
    out = {"sensitivity": {"value": sens}, "specificity": {"value": spec}, "auc": {"value": binary_auc(y, score)},
           "counts": {"tp": int((y & positive).sum()), "fn": int((y & ~positive).sum()),
                      "fp": int((~y & positive).sum()), "tn": int((~y & ~positive).sum())}}
    if 0 < y.sum() < len(y):
        fpr, tpr, _ = roc_curve(y, score)
        out["roc"] = {"fpr": fpr.round(4).tolist(), "tpr": tpr.round(4).tolist()}
    groups = {}
    for i, p in enumerate(patients):
        groups.setdefault(p, []).append(i)
    members = list(groups.values())
    rng = np.random.default_rng(seed)
    draws = {"sensitivity": [], "specificity": [], "auc": []}
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        s, c = _rates(y[idx], positive[idx])
        draws["sensitivity"].append(s)
        draws["specificity"].append(c)
        draws["auc"].append(binary_auc(y[idx], score[idx]))
    for key, values in draws.items():
        out[key]["low"], out[key]["high"] = _interval(values)
    positives, negatives = (len(set(np.asarray(patients)[films_of_kind])) for films_of_kind in (y, ~y))
    _widen_to_patients(out["sensitivity"], sens, positives)
    _widen_to_patients(out["specificity"], spec, negatives)
    # The AUC is the chance that a COVID-19 film outscores another film. Pairing each patient of the smaller side
    # with a different patient of the other gives that many independent trials of it: its floor interval.
    _widen_to_patients(out["auc"], out["auc"]["value"], min(positives, negatives))
    return out


def _widen_to_patients(figure: dict, rate: float | None, n_patients: int) -> None:
    """Widen a rate's bootstrap interval to at least the Wilson interval of the same rate counted on patients.

    A bootstrap cannot draw a rate beyond what was seen: 15 of 15 COVID-19 films called positive gives an interval
    of 100-100%, as if the next film could not be missed (and an AUC of 1.000, 1.000-1.000). Counting each patient
    once (as many hits as the rate gives) is the cautious stand-in for films of one patient that are not
    independent.
    """
    from .metrics import proportion_interval

    if rate is None or n_patients == 0:
        return
    low, high = proportion_interval(round(rate * n_patients), n_patients)
    if figure.get("low") is None:  # too few draws held films of that kind: the Wilson interval alone
        figure["low"], figure["high"] = low, high
    else:
        figure["low"], figure["high"] = min(figure["low"], low), max(figure["high"], high)


def given_figures(y, score, positive, patients, withheld: np.ndarray, seed: int = 0) -> dict:
    """:func:`figures` counting only the films that get a verdict (no ROC), with how many films got none."""
    keep = ~np.asarray(withheld, bool)
    out = {"films": int(len(keep)), "withheld": int((~keep).sum())}
    if keep.any():
        f = figures(np.asarray(y)[keep], np.asarray(score)[keep], np.asarray(positive)[keep],
                    np.asarray(patients)[keep], seed)
        f.pop("roc", None)
        out.update(f)
    return out


def balanced_accuracy(y, positive) -> float:
    """The mean of the sensitivity and specificity of ``positive`` (those that can be measured)."""
    sens, spec = _rates(y, positive)
    return float(np.mean([v for v in (sens, spec) if v is not None]))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """The reliability curve of the top-class probability: per equal-width bin with films, its mean confidence,
    its accuracy and its count ({"confidence", "accuracy", "n"} lists), for a calibration plot."""
    rows = calibration_bins(probs, labels, bins)
    return {"confidence": [round(c, 4) for c, _, _ in rows], "accuracy": [round(a, 4) for _, a, _ in rows],
            "n": [n for _, _, n in rows]}
