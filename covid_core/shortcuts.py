"""Shortcut meters: does a model read the disease, or where the film came from?

A model trained on films whose source and class go together (every child from one hospital,
most COVID-19 films from publications, the adult normals from another hospital) can score
well by recognising the source. Two measures expose that:

- :func:`within_source_aucs`: per source, the AUC of a question that the source does not
  answer (NIH adults normal vs pneumonia, Kermany children normal vs pneumonia, the COVID-19
  collection's COVID-19 vs other pneumonia). Within one source the hospital, age group and
  markers are the same for both answers, so only the lungs can separate them.
- :func:`source_probe`: the accuracy of a linear probe that predicts the SOURCE from the
  model's penultimate features, cross-validated by patient. High accuracy means the features
  carry the hospital; lower is better (the majority share is the floor).
- :func:`texture_swap`: TEST films of one group given the Fourier amplitude spectrum of a film
  from another group, their own phase kept (the anatomy and any lesion stay; the sharpness, noise,
  contrast and framing of the donor's machine and hospital come in), and the share of them called
  COVID-19 positive. A donor from the film's own group is the control.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .intervals import auc_with_interval, table_patients


@dataclass(frozen=True)
class WithinSourceQuestion:
    """Within ``source``: ``negative`` films against ``positive`` films, scored by ``score``.

    score: "not_negative" = 1 - p(negative class) (any disease counts), or "positive" = p(positive class).
    """

    key: str
    source: str
    negative: str
    positive: str
    score: str
    description: str


WITHIN_SOURCE_QUESTIONS = (
    WithinSourceQuestion("nih_normal_vs_pneumonia", "nih", "normal", "pneumonia", "not_negative",
                         "NIH adults: normal vs pneumonia"),
    WithinSourceQuestion("kermany_normal_vs_pneumonia", "kermany", "normal", "pneumonia", "not_negative",
                         "Kermany children: normal vs pneumonia"),
    WithinSourceQuestion("cohen_covid_vs_other_pneumonia", "cohen", "pneumonia", "covid19", "positive",
                         "COVID-19 collection: COVID-19 vs other pneumonia"),
)


def within_source_aucs(table: pd.DataFrame, probs: np.ndarray, classes) -> dict:
    """{key: {"description", "auc", "auc_low", "auc_high", "n_negative", "n_positive", "positive_called"}} for each
    question the table and classes allow. ``auc_low``-``auc_high``: its 95% interval, from a bootstrap that draws
    the table's patients (each film its own patient without a "patient" column), widened to the Wilson interval on
    the patients of the smaller side (:func:`covid_core.intervals.auc_with_interval`): a question of 11 other
    pneumonias is not measured to the third decimal. ``positive_called``: share of the positive films whose most
    probable class is the positive class. ``auc`` (and its interval) is None when one side has no film."""
    classes = list(classes)
    if "source" not in table.columns:
        return {}
    sources = table["source"].astype(str).to_numpy()
    labels = table["label"].astype(str).to_numpy()
    patients = table_patients(table)
    predicted = np.asarray(classes)[np.asarray(probs).argmax(1)] if len(probs) else np.array([])
    out = {}
    for q in WITHIN_SOURCE_QUESTIONS:
        if q.negative not in classes or q.positive not in classes:
            continue
        in_source = sources == q.source
        neg, pos = in_source & (labels == q.negative), in_source & (labels == q.positive)
        if not neg.any() and not pos.any():
            continue
        column = classes.index(q.negative if q.score == "not_negative" else q.positive)
        score = 1.0 - probs[:, column] if q.score == "not_negative" else probs[:, column]
        both = neg | pos
        auc = auc_with_interval(pos[both], score[both], patients[both])
        out[q.key] = {"description": q.description, "auc": auc["value"], "auc_low": auc.get("low"),
                      "auc_high": auc.get("high"), "n_negative": int(neg.sum()), "n_positive": int(pos.sum()),
                      "positive_called": float((predicted[pos] == q.positive).mean()) if pos.any() else None}
    return out


def source_probe(features: np.ndarray, sources, patients=None, folds: int = 5, seed: int = 0) -> dict | None:
    """Accuracy of a logistic-regression probe predicting the source from ``features`` (float NxD).

    Cross-validated with folds grouped by patient when ``patients`` is given (no film scores itself or
    a film of the same patient). Returns {"accuracy", "balanced_accuracy", "majority_share", "n", "sources"},
    or None with fewer than two sources or too few films (under ``folds`` films of a source).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sources = np.asarray(sources).astype(str)
    names, counts = np.unique(sources, return_counts=True)
    keep = np.isin(sources, names[counts >= folds])
    if len(names[counts >= folds]) < 2:
        return None
    x, y = np.asarray(features, np.float64)[keep], sources[keep]
    groups = None if patients is None else np.asarray(patients).astype(str)[keep]
    if groups is not None and len(np.unique(groups)) >= folds:
        splits = GroupKFold(folds).split(x, y, groups)
    else:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)
    predicted = np.empty(len(y), dtype=object)
    for train, test in splits:
        if len(np.unique(y[train])) < 2:
            predicted[test] = y[train][0]
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        probe.fit(x[train], y[train])
        predicted[test] = probe.predict(x[test])
    _, kept_counts = np.unique(y, return_counts=True)
    return {"accuracy": float((predicted == y).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted.astype(str))),
            "majority_share": float(kept_counts.max() / len(y)), "n": int(len(y)),
            "sources": sorted(np.unique(y).tolist())}


def shortcut_report(table: pd.DataFrame, probs: np.ndarray, classes, features: np.ndarray | None) -> dict:
    """{"within_source": within_source_aucs(...), "source_probe": source_probe(...) or None}."""
    probe = None
    if features is not None and "source" in table.columns:
        patients = table["patient"].to_numpy() if "patient" in table.columns else None
        probe = source_probe(features, table["source"].to_numpy(), patients)
    return {"within_source": within_source_aucs(table, probs, classes), "source_probe": probe}


#: Groups of TEST films for :func:`texture_swap`: name -> (sources, class).
SWAP_GROUPS = {
    "NIH normal": (("nih",), "normal"),
    "NIH pneumonia": (("nih",), "pneumonia"),
    "Kermany normal": (("kermany",), "normal"),
    "COVID-19": (("cohen", "figure1"), "covid19"),
}
#: (films, donor) pairs that the model card measures: an adult normal given another source's look, and a
#: COVID-19 film given an NIH normal's, each with its own group's donor as the control.
CARD_SWAPS = (("NIH normal", "NIH normal"), ("NIH normal", "Kermany normal"), ("NIH normal", "COVID-19"),
              ("COVID-19", "COVID-19"), ("COVID-19", "NIH normal"))
SWAP_WORDS = {"NIH normal": "NIH adult normal", "NIH pneumonia": "NIH adult pneumonia",
              "Kermany normal": "Kermany child normal", "COVID-19": "COVID-19"}


def swap_group(table: pd.DataFrame, name: str) -> np.ndarray:
    """Row positions of ``table`` in the SWAP_GROUPS group ``name``."""
    sources, label = SWAP_GROUPS[name]
    return np.flatnonzero(table["source"].isin(sources).to_numpy() & (table["label"].to_numpy() == label))


def with_donor_amplitude(films: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """uint8 NxSxS films with the amplitude spectra of uint8 NxSxS donors, each keeping its own phase."""
    import torch

    from .augment import blend_amplitude

    x = torch.from_numpy(np.asarray(films)).float().div(255)[:, None]
    d = torch.from_numpy(np.asarray(donors)).float().div(255)[:, None]
    return (blend_amplitude(x, d, 1.0)[:, 0] * 255).round().byte().numpy()


def texture_swap(classifier, table: pd.DataFrame, images: np.ndarray, pairs=CARD_SWAPS, seed: int = 0) -> list[dict]:
    """For each (films, donor) pair of SWAP_GROUPS names: {"films", "donor", "n", "as_is", "swapped"}, the shares
    of the films called COVID-19 positive at the classifier's threshold as they are and with a donor film's
    amplitude spectrum (a donor drawn from the donor group, never the film itself). ``table``: TEST rows with
    "source" and "label"; ``images``: their uint8 model-space pixels. Empty without a COVID-19 threshold or
    sources; a pair whose groups have no film (or a donor group of one film, the film itself) is left out."""
    from .inference import predict_pixels

    covid = (classifier.threshold or {}).get("class")
    if covid not in classifier.classes or "source" not in table.columns:
        return []

    def positive(films):
        probs, _ = predict_pixels(classifier, films)
        return float(np.mean(probs[:, classifier.classes.index(covid)] >= classifier.threshold["value"]))

    rng = np.random.default_rng(seed)
    rows, as_is = [], {}  # a group's share as it is, scored once however many donors it is paired with
    for group, donor in pairs:
        members, pool = swap_group(table, group), swap_group(table, donor)
        if not len(members) or not len(pool) or (group == donor and len(pool) < 2):
            continue
        picks = np.array([rng.choice(pool[pool != m]) for m in members])
        films = images[members]
        if group not in as_is:
            as_is[group] = positive(films)
        rows.append({"films": group, "donor": donor, "n": int(len(members)), "as_is": as_is[group],
                     "swapped": positive(with_donor_amplitude(films, images[picks]))})
    return rows
