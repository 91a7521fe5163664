"""A site validation's figures: sensitivity, specificity and AUC with 95% intervals counted by patient, the same
counting only the films given a verdict, balanced accuracy and the reliability curve (no torch, no films)."""

from __future__ import annotations

import numpy as np

from .intervals import patient_resamples, percentile_interval, widen_to_patients
from .metrics import binary_auc, calibration_bins, rates_of_calls


def _rates(y: np.ndarray, positive: np.ndarray) -> tuple[float | None, float | None]:
    rates = rates_of_calls(y, positive)
    return rates["sensitivity"], rates["specificity"]


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
    draws = {"sensitivity": [], "specificity": [], "auc": []}
    for idx in patient_resamples(patients, seed=seed):
        s, c = _rates(y[idx], positive[idx])
        draws["sensitivity"].append(s)
        draws["specificity"].append(c)
        draws["auc"].append(binary_auc(y[idx], score[idx]))
    for key, values in draws.items():
        out[key]["low"], out[key]["high"] = percentile_interval(values)
    positives, negatives = (len(set(np.asarray(patients)[films_of_kind])) for films_of_kind in (y, ~y))
    widen_to_patients(out["sensitivity"], sens, positives)
    widen_to_patients(out["specificity"], spec, negatives)
    # The AUC is the chance that a COVID-19 film outscores another film. Pairing each patient of the smaller side
    # with a different patient of the other gives that many independent trials of it: its floor interval.
    widen_to_patients(out["auc"], out["auc"]["value"], min(positives, negatives))
    return out


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
