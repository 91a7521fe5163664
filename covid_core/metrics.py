"""Classification metrics, calibration and the operating threshold.

Metrics that a class's absence makes undefined are ``None`` (JSON null), never a crash.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num / den)


def binary_auc(y, score) -> float | None:
    """ROC AUC of ``score`` for binary ``y``; None when ``y`` holds one class only (or nothing)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, bool)
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, films) for each equal-width bin of the top-class probability that holds films."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            out.append((float(conf[in_bin].mean()), float(correct[in_bin].mean()), int(in_bin.sum())))
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float | None:
    """ECE over equal-width confidence bins of the top-class probability."""
    if len(labels) == 0:
        return None
    return float(sum(n / len(labels) * abs(acc - conf) for conf, acc, n in calibration_bins(probs, labels, bins)))


def mean_nll(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean negative log-likelihood of the true classes (int N) under probs NxC; None without films."""
    if not len(labels):
        return None
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean())


def classification_metrics(labels, probs, classes) -> dict:
    """labels: int N (class indices); probs: float NxC rows summing to 1.

    Returns {"n", "accuracy", "macro_auc", "ece", "nll" (mean negative log-likelihood), "classes", "per_class": {c: {"sensitivity",
    "specificity", "ppv", "auc", "support"}}, "confusion_matrix"} (rows true, columns predicted).
    """
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    classes = list(classes)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, int)
    k = len(classes)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (labels, pred), 1)
    per_class, aucs = {}, []
    for i, c in enumerate(classes):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = cm.sum() - tp - fn - fp
        auc = binary_auc(labels == i, probs[:, i])
        if auc is not None:
            aucs.append(auc)
        per_class[c] = {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
                        "ppv": _ratio(tp, tp + fp), "auc": auc, "support": int(cm[i].sum())}
    return {
        "n": int(len(labels)),
        "accuracy": _ratio((pred == labels).sum(), len(labels)),
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "ece": expected_calibration_error(probs, labels),
        "nll": mean_nll(probs, labels),
        "classes": classes,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def roc_points(labels, probs, classes) -> dict:
    """{class: {"fpr": [...], "tpr": [...], "thresholds": [...]}} one-vs-rest; classes absent are skipped."""
    from sklearn.metrics import roc_curve

    labels, probs = np.asarray(labels, int), np.asarray(probs)
    out = {}
    for i, c in enumerate(classes):
        y = (labels == i).astype(int)
        if y.min() == y.max():
            continue
        fpr, tpr, thr = roc_curve(y, probs[:, i])
        thr = np.where(np.isfinite(thr), thr, 1.0)
        out[c] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist(), "thresholds": thr.round(6).tolist()}
    return out


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) (Guo et al. 2017)."""
    logits, labels = logits.detach().double(), labels.detach().long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if math.isfinite(t) and 0.01 < t < 100 else 1.0


def choose_threshold(y: np.ndarray, score: np.ndarray, min_sensitivity: float = 0.95) -> dict:
    """Operating threshold on a positive-class score: the highest specificity among the
    thresholds that keep sensitivity >= ``min_sensitivity`` (Youden's J if none does)."""
    from sklearn.metrics import roc_curve

    y, score = np.asarray(y, int), np.asarray(score, float)
    if y.min() == y.max():
        return {"value": 0.5, "rule": "default 0.5 (validation has one class only)"}
    fpr, tpr, thr = roc_curve(y, score)
    thr = np.clip(np.where(np.isfinite(thr), thr, 1.0), 0.0, 1.0)
    ok = tpr >= min_sensitivity
    if ok.any():
        i = int(np.flatnonzero(ok)[np.argmin(fpr[ok])])
        rule = f"highest specificity with validation sensitivity >= {min_sensitivity:.2f}"
    else:
        i = int(np.argmax(tpr - fpr))
        rule = "Youden's J (no threshold reached the sensitivity goal)"
    return {"value": float(thr[i]), "rule": rule, "val_sensitivity": float(tpr[i]),
            "val_specificity": float(1 - fpr[i])}


def rates_at_threshold(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """Sensitivity, specificity, PPV and NPV of ``score >= threshold`` against binary ``y``, with the counts
    (tp, fp, fn, tn) they come from, so a reader sees each rate's denominator."""
    return rates_of_calls(y, np.asarray(score) >= threshold)


def rates_of_calls(y: np.ndarray, positive: np.ndarray) -> dict:
    """:func:`rates_at_threshold` for calls already made (bool ``positive``, e.g. from a site's own head)."""
    y, pos = np.asarray(y, bool), np.asarray(positive, bool)
    tp, fp = int((pos & y).sum()), int((pos & ~y).sum())
    fn, tn = int((~pos & y).sum()), int((~pos & ~y).sum())
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp), "ppv": _ratio(tp, tp + fp),
            "npv": _ratio(tn, tn + fn), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def proportion_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of ``k`` of ``n`` (scipy); None when ``n`` is 0. Each film counts as independent, so
    several films of one patient make it narrower than it should be."""
    if not n:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
