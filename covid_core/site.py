"""Validate and adapt a classifier at one hospital: a site report, a local operating point, a site file.

``validate_site`` scores a hospital's own labelled films with the shipped model, reports COVID-19 sensitivity,
specificity and AUC at the shipped threshold with 95% intervals (bootstrap over patients), the calibration
error, the share of films the familiarity check flags and, under "given", the same figures counting only the films
that get a verdict (Diagnose withholds one from a film unlike the training X-rays or turned); then adapts what it
safely can, each step only when its estimate by patient-grouped cross-validation (no film, nor a film of the same
patient, scores itself) improves on the shipped model:

- temperature: refitted on the site's films (kept when the held-out log-loss falls and the COVID-19 verdicts at
  the shipped threshold, which a new temperature moves, are no worse by held-out balanced accuracy);
- familiarity reference: the site's own class means join the training ones, so the site's typical films are
  no longer "unlike the training X-rays" (kept when fewer held-out films are withheld and the model card's probes,
  synthetic non-X-ray images and rotated or inverted films, are still withheld: see :func:`probes_let_through`);
- operating point: a threshold on the COVID-19 probability for ``target_sensitivity``, or a logistic-regression
  head on the frozen network's penultimate features with its own threshold (chosen on held-out scores, see
  :func:`head_operating_point`; within the cross-validation, on scores held out inside each training part),
  whichever has the higher held-out balanced accuracy (mean of sensitivity and specificity), if that beats the
  shipped threshold's;
- the call between normal and pneumonia (a three-class model's first line under a negative verdict): a
  logistic-regression head on the frozen features, fitted on the site's normal and pneumonia films, kept when its
  held-out calls between the two have a higher balanced accuracy than the network's. The report counts how the
  call did (``calls``, :func:`call_counts`); Diagnose names the call only where those counts confirm it
  (:func:`covid_core.site_file.call_problem`).

A model without a COVID-19 class (``--target pneumonia``) makes only the call between normal and pneumonia, so that
call is what is measured and adapted (:func:`_validate_call_only`); its report says so in ``validates``.

Steps that need more films than the site has (MIN_PER_CLASS COVID-19 and non-COVID films; for the call, normal
and pneumonia films), or films of more patients than it has to cross-validate by patient, are skipped with a
reason. The result is a plain JSON site file (no images, no patient data)
that ``predict``, ``evaluate`` and ``explain`` apply with ``--site`` (read by :mod:`covid_core.site_file`); it is
refused for any other checkpoint. The site's films are read and scored by :mod:`covid_core.site_scoring`, the
figures and their intervals made by :mod:`covid_core.site_figures`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .digests import file_sha256
from .errors import ConfigError
from .metrics import mean_nll
from .site_figures import balanced_accuracy, figures, given_figures, reliability
from .site_file import (CALL_ONLY, HEAD_THRESHOLD_FROM, MIN_PER_CLASS, SITE_FORMAT, Site, clean_site_name,
                        makes_call)
from .site_scoring import PROBE_FILMS, scored_films, site_films, withheld_films
from .targets import COVID_CLASS


# ---- adapting: held-out folds and heads ---------------------------------------------------------------------

def _folds(patients: np.ndarray, y: np.ndarray, k: int = 5, seed: int = 0, nested: bool = False) -> list | None:
    """Patient-grouped folds (train, held) stratified by ``y``, or None when they cannot be made: every training part
    must hold films of both kinds, and with ``nested`` (its training parts are split again, as
    :func:`head_operating_point` splits them) films of at least 2 patients of each kind."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(patients))
    if n_groups < 2:
        return None
    k = max(2, min(k, n_groups, int(y.sum()), int((~y).sum())))
    folds = list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, patients))
    need = 2 if nested else 1
    for train, _ in folds:
        if min(len(set(patients[train][y[train]])), len(set(patients[train][~y[train]]))) < need:
            return None
    return folds


def _too_few_patients(patients: np.ndarray, y: np.ndarray, kinds: tuple[str, str], nested: bool) -> str:
    """Why :func:`_folds` could not be made, in words: how many patients the films of each kind (``kinds``: the
    positive's name, then the other's) come from, and the fewest that can be split (more may be needed, as patients
    fall into folds)."""
    pos, neg = len(set(patients[y])), len(set(patients[~y]))
    return (f"the {kinds[0]} films come from {pos} patient{'s' * (pos != 1)} and the {kinds[1]} films from {neg}; "
            f"cross-validating by patient needs films of more patients of each kind (at least {3 if nested else 2} "
            "each)")


def _threshold_for(y: np.ndarray, score: np.ndarray, target: float) -> float:
    from .metrics import choose_threshold

    return float(choose_threshold(y, score, min_sensitivity=target)["value"])


def _fit_head(features: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(0), features.std(0) + 1e-6
    model = LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000).fit((features - mean) / scale, y)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0])}


def _head_scores(head: dict, features: np.ndarray) -> np.ndarray:
    return Site("cv", head=head).head_probability(features)


def head_operating_point(features: np.ndarray, y: np.ndarray, patients: np.ndarray, target: float,
                         seed: int = 0) -> tuple[dict, float] | None:
    """(a head fitted on every film, its threshold for sensitivity ``target``), or None when the films cannot be
    split by patient (:func:`_folds`). The threshold is chosen on each film's score by a head fitted without that
    patient's films (patient-grouped folds), not on the head's scores of the films it was fitted on: those are
    overfitted (a head fitted on 393 films of a hospital the network never saw scored every one of its 19 COVID-19
    films at 0.86 or more, and the threshold chosen there for sensitivity 0.90 caught 13 of 41 COVID-19 films of
    other patients)."""
    folds = _folds(patients, y, seed=seed)
    if folds is None:
        return None
    held_out = np.zeros(len(y))
    for train, held in folds:
        held_out[held] = _head_scores(_fit_head(features[train], y[train]), features[held])
    return _fit_head(features, y), _threshold_for(y, held_out, target)


def _rows(feats: dict, rows) -> dict:
    return {k: v[rows] for k, v in feats.items()}


def probes_let_through(classifier, site_pixels: np.ndarray, site, floor: float = 0.95) -> str:
    """What the familiarity reference with ``site``'s class means added would no longer withhold, in words, or "".

    The probes of the model card's check (:func:`covid_core.ood_check.probe_images`): synthetic non-X-ray images,
    and the site's first films rotated and inverted. Each kind must stay withheld at least as often as ``floor``
    (or as the shipped reference does, if less): a folder of photos or noise labelled as films would otherwise
    teach the check that such images are familiar, and Diagnose would then give them verdicts.
    """
    from .ood_check import probe_images
    from .preprocess import prepare_pixels

    probes = probe_images([np.asarray(p, np.float32) / 255 for p in site_pixels[:PROBE_FILMS]])
    words = {"non_xray": "synthetic non-X-ray images", "transformed_xray": "the site's films rotated or inverted"}
    problems = []
    for kind, images in probes.items():
        if not images:
            continue
        pixels = np.stack([prepare_pixels(img, classifier.preprocess)[0] for img in images])
        _, feats, copies = scored_films(classifier, pixels)
        shipped = withheld_films(classifier.ood, feats, copies).mean()
        adapted = withheld_films(site.ood_stats(classifier.ood), feats, copies).mean()
        if adapted < min(floor, shipped):
            problems.append(f"{words[kind]} (withheld {100 * shipped:.0f}% -> {100 * adapted:.0f}% of {len(images)})")
    return " and ".join(problems)


# ---- the report ----------------------------------------------------------------------------------------------

def validate_site(classifier, folder: str | Path, **options) -> dict:
    """The site report (a plain dict, written as site.json): see the module doc."""
    return validate_site_with_films(classifier, folder, **options)[0]


def call_counts(logits: np.ndarray, positive: np.ndarray, withheld: np.ndarray, labels: np.ndarray, classes: list,
                covid: int | None) -> dict | None:
    """How Diagnose's first line, the call in words (:func:`covid_core.inference.call_indices`: COVID-19 where the
    verdict is positive, else the most probable other class; ``covid`` None for a model without a COVID-19 class),
    did on the films given a verdict: {labelled class: {called class: films}}, with every class the films are
    labelled with, and every class as a call, in the model's order. None for a model without the call
    (:func:`makes_call`)."""
    return _calls(logits, positive, withheld, labels, classes, covid)[0]


def _calls(scores, positive, withheld, labels, classes: list, covid: int | None,
           withheld_word: str = "") -> tuple[dict | None, dict]:
    """(:func:`call_counts`, the per-film columns of the call in words: the class it names, ``withheld_word`` for a
    film given no verdict, and whether that is the film's label, "" for such a film), from one reading of the calls;
    (None, {}) for a model without the call."""
    from .inference import call_indices

    if not makes_call(classes):
        return None, {}
    withheld = np.asarray(withheld, bool)
    called = call_indices(scores, positive, covid)
    given, labelled = called[~withheld], labels[~withheld]
    counts = {classes[i]: {c: int(((labelled == i) & (given == j)).sum()) for j, c in enumerate(classes)}
              for i in range(len(classes)) if (labels == i).any()}
    return counts, {"call": np.where(withheld, withheld_word, np.asarray(classes)[called]),
                    "call right": np.where(withheld, "", np.where(called == labels, "yes", "no"))}


def pneumonia_step(logits: np.ndarray, pen: np.ndarray, labels: np.ndarray, patients: np.ndarray, classes: list,
                   seed: int = 0) -> tuple[dict | None, str, np.ndarray | None]:
    """(a head telling pneumonia from a normal film on the frozen features, or None; the report's line; each film's
    held-out head probability, or None). Fitted on the films labelled normal or pneumonia and kept where, held out
    by patient, its calls between the two (p >= 0.5) have a higher balanced accuracy than the network's own order
    of the two classes. A film labelled COVID-19 is scored by the head fitted on all of those films (none of it).
    A model without that call (a two-class COVID-19 model) gets no head and no line ("")."""
    if not makes_call(classes):
        return None, "", None
    ni, pi = classes.index("normal"), classes.index("pneumonia")
    rows = np.flatnonzero((labels == ni) | (labels == pi))
    y = labels[rows] == pi
    if min(int(y.sum()), int((~y).sum())) < MIN_PER_CLASS:
        return None, (f"the call between normal and pneumonia: {int((~y).sum())} normal and {int(y.sum())} pneumonia "
                      f"films; checking and adapting it needs at least {MIN_PER_CLASS} of each"), None
    folds = _folds(patients[rows], y, seed=seed)
    if folds is None:
        return None, ("the call between normal and pneumonia: "
                      + _too_few_patients(patients[rows], y, ("pneumonia", "normal"), nested=False)), None
    held = np.zeros(len(rows))
    for train, test in folds:
        held[test] = _head_scores(_fit_head(pen[rows][train], y[train]), pen[rows][test])
    network = balanced_accuracy(y, logits[rows, pi] > logits[rows, ni])
    adapted = balanced_accuracy(y, held >= 0.5)
    if adapted <= network:
        return None, (f"the call between normal and pneumonia: a head on the frozen features did not beat the "
                      f"network's call held out (balanced accuracy {adapted:.3f} against {network:.3f})"), None
    head = _fit_head(pen[rows], y)
    probability = _head_scores(head, pen)
    probability[rows] = held
    return head, (f"the call between normal and pneumonia: a head on the frozen features (held-out balanced "
                  f"accuracy {network:.3f} -> {adapted:.3f})"), probability


def _adapt_call(report: dict, logits, pen, labels, patients, classes: list, seed: int) -> np.ndarray:
    """The call step of the validation (:func:`pneumonia_step`), its line and any head written into ``report``;
    returns the scores that decide the call after it (:func:`_calls` reads them)."""
    from .inference import head_as_scores

    head, line, held_out = pneumonia_step(logits, pen, labels, patients, classes, seed)
    if line:  # a model without the call has nothing to report
        report["skipped" if head is None else "adapted"].append(line)
    if head is None:
        return logits
    report["parameters"]["pneumonia_head"] = head
    return head_as_scores(held_out, classes)


def _film_rows(y, score, positive, withheld) -> dict:
    """Per-film columns of one model state: its COVID-19 score, its verdict and whether that verdict was right."""
    verdict = np.where(withheld, "withheld", np.where(positive, "positive", "negative"))
    right = np.where(withheld, "", np.where(positive == y, "yes", "no"))
    return {"score": np.round(score, 4), "verdict": verdict, "right": right}


def _site_patients(table) -> tuple[np.ndarray, bool]:
    """(each film's patient, whether the films say who that is). Where every film of the site falls to one patient
    (one DICOM PatientID, or one folder name inside every class folder: an anonymised export), that says nothing, and
    each film counts as its own patient."""
    patients = table["patient"].astype(str).to_numpy() if "patient" in table else table["filename"].to_numpy()
    if len(patients) > 1 and len(set(patients)) == 1:
        return np.array([f"film-{i}" for i in range(len(patients))]), False
    return patients, True


def validate_site_with_films(classifier, folder: str | Path, *, name: str = "", target_sensitivity: float = 0.90,
                             layout: str = "auto", seed: int = 0, on_progress=None):
    """(the site report, one row per film used): the report as :func:`validate_site`; the rows give each film's
    file (as named inside the folder), label, and the COVID-19 score, verdict and whether it was right, by the
    shipped model and after adaptation (held out: each film scored by what was fitted without its fold). The rows
    name the site's files, so they are for the site's own review and never go into the site file."""
    from .inference import calibrated_probabilities
    from .metrics import expected_calibration_error
    from .ood import has_ood, ood_scores

    if not 0.5 <= target_sensitivity < 1.0:
        raise ConfigError("target sensitivity must be from 0.5 to below 1")
    covid = COVID_CLASS.get(classifier.target)
    if covid is None and not makes_call(classifier.classes):
        raise ConfigError(f"this model's classes ({', '.join(classifier.classes)}) give neither a COVID-19 verdict "
                          "nor the call between normal and pneumonia, which site validation measures")
    films = site_films(classifier, folder, layout, on_progress)
    table, logits, feats, copies = films["table"], films["logits"], films["features"], films["copies"]
    labels = table["label_idx"].to_numpy()
    patients, told_apart = _site_patients(table)
    counts = {c: int((labels == i).sum()) for i, c in enumerate(classifier.classes) if (labels == i).any()}
    report = {"format": SITE_FORMAT, "site": clean_site_name(name or Path(folder).name),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "checkpoint": {"file": Path(classifier.path).name, "sha256": file_sha256(classifier.path)},
              "counts": counts, "films_used": int(len(table)),
              "patients": int(len(set(patients))) if told_apart else None,
              "problems": films["problems"], "adapted": [], "skipped": [], "parameters": {}}
    if not told_apart:
        report["skipped"].append(
            f"telling patients apart: all {len(table)} films carry the same patient ID in their DICOM headers, or lie "
            "in folders of the same name inside their class folders, as an anonymised export does; each file is "
            "counted as its own patient, so that several films of one patient, if there are any, narrow the "
            "intervals more than they should")
    if covid is None:
        return _validate_call_only(classifier, folder, films, report, labels, patients, seed)
    report["target_sensitivity"] = target_sensitivity
    ci = classifier.classes.index(covid)
    y = labels == ci
    if len(counts) < 2 or not y.any() or y.all():
        report["skipped"].append("the COVID-19 verdict: the films hold no COVID-19 films or only COVID-19 films; both "
                                 "are needed to measure sensitivity and specificity")
    probs = calibrated_probabilities(logits, classifier.temperature)
    threshold = float(classifier.threshold.get("value", 0.5))
    flagged = None
    if has_ood(classifier.ood):
        flagged = ood_scores(classifier.ood, feats) > classifier.ood["threshold"]
    withheld = withheld_films(classifier.ood, feats, copies)
    shipped_positive = probs[:, ci] >= threshold  # the shipped model's verdicts
    before = figures(y, probs[:, ci], shipped_positive, patients, seed)
    before.update(ece=expected_calibration_error(probs, labels), reliability=reliability(probs, labels),
                  threshold=threshold,
                  ood_flagged=None if flagged is None else float(flagged.mean()),
                  given=given_figures(y, probs[:, ci], shipped_positive, patients, withheld, seed))
    before["calls"], shipped_calls = _calls(logits, shipped_positive, withheld, labels, classifier.classes, ci)
    report["before"] = before
    shipped_rows = {**_film_rows(y, probs[:, ci], shipped_positive, withheld), **shipped_calls}
    enough = min(int(y.sum()), int((~y).sum())) >= MIN_PER_CLASS
    folds = _folds(patients, y, seed=seed, nested=True) if enough else None
    if folds is None:
        report["skipped"].append("adapting the COVID-19 verdict: " + (
            _too_few_patients(patients, y, ("COVID-19", "other"), nested=True) if enough else
            f"{int(y.sum())} COVID-19 and {int((~y).sum())} other films; each of its steps needs at least "
            f"{MIN_PER_CLASS} of each"))
        after = {k: before[k] for k in ("sensitivity", "specificity", "auc", "counts", "given")}
        after["estimated_by"] = "no adaptation of the COVID-19 verdict: the shipped figures above"
        call_scores = _adapt_call(report, logits, feats["penultimate"], labels, patients, classifier.classes, seed)
        after["calls"], calls = _calls(call_scores, shipped_positive, withheld, labels, classifier.classes, ci)
        report["after"] = after
        return report, _films_table(table, folder, classifier, labels, shipped_rows, {
            **_film_rows(y, probs[:, ci], shipped_positive, withheld), **calls})

    # 1. temperature (held-out log-loss, and no worse held-out verdicts at the shipped threshold)
    refit, calibrated, line = temperature_step(logits, labels, y, ci, folds, classifier.temperature, threshold)
    report["skipped" if refit is None else "adapted"].append(line)
    temperature = classifier.temperature if refit is None else refit
    if refit is not None:
        report["parameters"]["temperature"] = refit
    probs = calibrated_probabilities(logits, temperature)

    # 2. familiarity reference (held-out share of films given no verdict as unfamiliar or turned)
    withheld = familiarity_step(report, classifier, films, labels, folds, withheld)

    # 3. operating point (held-out balanced accuracy; each film's p(COVID-19) by a temperature fitted without it)
    score = calibrated[:, ci]
    pen = feats["penultimate"]
    oof = {"threshold": np.zeros(len(y), bool), "head": np.zeros(len(y), bool)}
    oof_score = {"threshold": score, "head": np.zeros(len(y))}
    for train, held in folds:
        oof["threshold"][held] = score[held] >= _threshold_for(y[train], score[train], target_sensitivity)
        if "head" not in oof:
            continue
        fitted = head_operating_point(pen[train], y[train], patients[train], target_sensitivity, seed)
        if fitted is None:  # a training part too small to split by patient again: no head is tried
            del oof["head"]
            continue
        oof_score["head"][held] = _head_scores(fitted[0], pen[held])
        oof["head"][held] = oof_score["head"][held] >= fitted[1]
    shipped = balanced_accuracy(y, score >= threshold)
    cv = {k: balanced_accuracy(y, v) for k, v in oof.items()}
    best = max(cv, key=cv.get)
    after_positive, after_score = score >= threshold, score
    if cv[best] > shipped:
        if best == "threshold":
            report["parameters"]["threshold"] = _threshold_for(y, probs[:, ci], target_sensitivity)
        else:  # split by the same folds as above, which passed the stricter nested check: never None here
            head, head_threshold = head_operating_point(pen, y, patients, target_sensitivity, seed)
            report["parameters"].update(head=head, threshold=head_threshold, head_threshold_from=HEAD_THRESHOLD_FROM)
        how = "a site threshold" if best == "threshold" else "a head on the frozen features with its own threshold"
        report["adapted"].append(f"operating point: {how} for sensitivity {target_sensitivity:.2f} (held-out "
                                 f"balanced accuracy {shipped:.3f} -> {cv[best]:.3f})")
        after_positive, after_score = oof[best], oof_score[best]
    else:
        head_text = f"({cv['head']:.3f})" if "head" in cv else "(too few patients to try one)"
        report["skipped"].append(f"operating point: neither a site threshold ({cv['threshold']:.3f}) nor a head "
                                 f"{head_text} beat the shipped threshold's balanced accuracy ({shipped:.3f})")
    after = figures(y, after_score, after_positive, patients, seed)
    after["given"] = given_figures(y, after_score, after_positive, patients, withheld, seed)
    after["ece"] = expected_calibration_error(calibrated, labels)  # held out: no film calibrated on itself
    after["reliability"] = reliability(calibrated, labels)
    # 4. the call between normal and pneumonia under a negative verdict (held-out balanced accuracy of that call)
    call_scores = _adapt_call(report, logits, pen, labels, patients, classifier.classes, seed)
    after["calls"], calls = _calls(call_scores, after_positive, withheld, labels, classifier.classes, ci)
    after["estimated_by"] = f"patient-grouped {len(folds)}-fold cross-validation: no film scores itself"
    report["after"] = after
    return report, _films_table(table, folder, classifier, labels, shipped_rows, {
        **_film_rows(y, after_score, after_positive, withheld), **calls})


def familiarity_step(report: dict, classifier, films: dict, labels: np.ndarray, folds: list,
                     withheld: np.ndarray) -> np.ndarray:
    """Step 2 of :func:`validate_site`, the familiarity reference, written into ``report``: the site's class means
    join the training ones where fewer held-out films are then withheld (as unfamiliar or turned) and the probes
    are still withheld (:func:`probes_let_through`). Returns which films are withheld after it (held out)."""
    if not withheld.any():
        return withheld
    feats, copies = films["features"], films["copies"]
    held_withheld = np.zeros(len(labels), bool)
    for train, held in folds:
        stats = Site("cv", ood_means=_class_means(feats, labels, train, classifier)).ood_stats(classifier.ood)
        held_withheld[held] = withheld_films(stats, _rows(feats, held), [_rows(c, held) for c in copies])
    means = _class_means(feats, labels, np.arange(len(labels)), classifier)
    if held_withheld.mean() >= withheld.mean():
        report["skipped"].append("familiarity reference: adding the site did not withhold fewer held-out films")
    elif let_through := probes_let_through(classifier, films["first_pixels"], Site("site", ood_means=means)):
        report["skipped"].append(f"familiarity reference: the site's class means would let through {let_through} "
                                 "(check that the folder holds frontal chest X-rays)")
    else:
        report["parameters"]["ood_means"] = means
        report["adapted"].append(f"familiarity reference: the site's class means added (held-out films given no "
                                 f"verdict as unfamiliar or turned {100 * withheld.mean():.0f}% -> "
                                 f"{100 * held_withheld.mean():.0f}%)")
        return held_withheld
    return withheld


def _validate_call_only(classifier, folder, films: dict, report: dict, labels: np.ndarray, patients: np.ndarray,
                        seed: int):
    """:func:`validate_site_with_films` for a model without a COVID-19 class (``--target pneumonia``): its call
    between normal and pneumonia is all it says, so that call is what is measured (counted as
    :func:`call_counts` does, on the films the familiarity check lets through) and adapted: the temperature
    (calibration only: a two-class model's call does not move with it), the familiarity reference and a head for the
    call (:func:`pneumonia_step`), each kept only where held out by patient it does better. The report says so in
    ``validates`` (:data:`~covid_core.site_file.CALL_ONLY`) and has no COVID-19 figures."""
    from .inference import calibrated_probabilities
    from .metrics import expected_calibration_error
    from .ood import has_ood, ood_scores

    classes, logits, feats = classifier.classes, films["logits"], films["features"]
    report["validates"] = CALL_ONLY
    pi = classes.index("pneumonia")
    y = labels == pi
    none = np.zeros(len(labels), bool)  # no COVID-19 verdict: every film's call is its most probable class
    probs = calibrated_probabilities(logits, classifier.temperature)
    withheld = withheld_films(classifier.ood, feats, films["copies"])
    flagged = ood_scores(classifier.ood, feats) > classifier.ood["threshold"] if has_ood(classifier.ood) else None
    given = {"films": int(len(labels)), "withheld": int(withheld.sum())}
    calls, shipped_calls = _calls(logits, none, withheld, labels, classes, None, withheld_word="no call")
    report["before"] = {"ece": expected_calibration_error(probs, labels), "reliability": reliability(probs, labels),
                        "ood_flagged": None if flagged is None else float(flagged.mean()), "given": given,
                        "calls": calls}
    shipped_rows = {"pneumonia probability": np.round(probs[:, pi], 4), **shipped_calls}
    after = {"ece": report["before"]["ece"], "reliability": report["before"]["reliability"]}
    after_probs = probs  # each film's probabilities after adaptation (held out, where the temperature is refitted)
    folds = _folds(patients, y, seed=seed) if min(int(y.sum()), int((~y).sum())) >= MIN_PER_CLASS else None
    if folds is not None:
        refit, calibrated, line = temperature_step(logits, labels, y, pi, folds, classifier.temperature, 0.5,
                                                   decisions="the calls between normal and pneumonia")
        report["skipped" if refit is None else "adapted"].append(line)
        if refit is not None:
            report["parameters"]["temperature"] = refit
            after_probs = calibrated
            after.update(ece=expected_calibration_error(calibrated, labels),
                         reliability=reliability(calibrated, labels))
        withheld = familiarity_step(report, classifier, films, labels, folds, withheld)
    after["given"] = {"films": int(len(labels)), "withheld": int(withheld.sum())}
    call_scores = _adapt_call(report, logits, feats["penultimate"], labels, patients, classes, seed)
    after["calls"], calls = _calls(call_scores, none, withheld, labels, classes, None, withheld_word="no call")
    adapted = "pneumonia_head" in report["parameters"] or "ood_means" in report["parameters"]
    after["estimated_by"] = ("patient-grouped cross-validation: no film scores itself" if adapted
                             else "no adaptation of the call: the shipped model's calls above")
    report["after"] = after
    head_probability = (call_scores if "pneumonia_head" in report["parameters"] else after_probs)[:, pi]
    return report, _films_table(films["table"], folder, classifier, labels, shipped_rows, {
        "pneumonia probability": np.round(head_probability, 4), **calls})


def _films_table(table, folder, classifier, labels, shipped: dict, after: dict):
    """The per-film rows of :func:`validate_site_with_films` (file names safe to open in a spreadsheet)."""
    import pandas as pd

    from .csv_safe import safe_cell

    root = Path(folder).resolve()

    def named(path: str, filename: str) -> str:  # as the site sees it: its path inside the folder
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            return filename

    columns = {"file": [safe_cell(named(p, f)) for p, f in zip(table["path"], table["filename"])],
               "label": [classifier.classes[i] for i in labels]}
    for when, rows in (("shipped", shipped), ("after adaptation", after)):
        columns.update({f"{key} ({when})": value for key, value in rows.items()})
    return pd.DataFrame(columns)


def temperature_step(logits: np.ndarray, labels: np.ndarray, y: np.ndarray, ci: int, folds: list,
                     temperature: float, threshold: float,
                     decisions: str = "the COVID-19 verdicts") -> tuple[float | None, np.ndarray, str]:
    """Step 1 of :func:`validate_site`: (the refitted temperature, or None to keep ``temperature``; each film's
    probabilities, by a temperature fitted without its fold where the refit is kept; the report line).

    A refitted temperature is kept only when it lowers the held-out log-loss and the COVID-19 verdicts it gives
    at the shipped threshold are no worse by held-out balanced accuracy: p(COVID-19) moves with the temperature,
    so a refit meant for calibration also moves films across the threshold, and that must not slip in unmeasured.
    ``decisions`` names what class ``ci`` at ``threshold`` decides, in the report's line.
    """
    from .inference import calibrated_probabilities
    from .metrics import fit_temperature

    shipped = calibrated_probabilities(logits, temperature)
    held_out = shipped.copy()
    for train, held in folds:
        held_out[held] = calibrated_probabilities(logits[held], fit_temperature(_torch(logits[train]),
                                                                                _torch(labels[train])))
    nll = [(mean_nll(shipped[held], labels[held]), mean_nll(held_out[held], labels[held])) for _, held in folds]
    nll_before, nll_after = np.mean(nll, axis=0)
    verdicts_before = balanced_accuracy(y, shipped[:, ci] >= threshold)
    verdicts_after = balanced_accuracy(y, held_out[:, ci] >= threshold)
    if nll_after >= nll_before:
        return None, shipped, "temperature: refitting did not lower the held-out log-loss"
    if verdicts_after < verdicts_before:
        return None, shipped, (
            f"temperature: refitting lowered the held-out log-loss ({nll_before:.3f} -> {nll_after:.3f}) but made "
            f"{decisions} at the shipped threshold worse (held-out balanced accuracy {verdicts_before:.3f} "
            f"-> {verdicts_after:.3f})")
    refit = fit_temperature(_torch(logits), _torch(labels))
    return refit, held_out, (f"temperature {temperature:.3f} -> {refit:.3f} (held-out log-loss {nll_before:.3f} -> "
                             f"{nll_after:.3f}; held-out balanced accuracy of {decisions} {verdicts_before:.3f} -> "
                             f"{verdicts_after:.3f})")


def _torch(a):
    import torch

    return torch.as_tensor(np.array(a))  # a copy: torch wants writable memory


def _class_means(feats: dict, labels: np.ndarray, rows: np.ndarray, classifier) -> dict:
    """The site's class means (rows ``rows``) in each familiarity part's own space (projected where it is)."""
    out = {}
    for part in classifier.ood.get("parts", []):
        f = np.asarray(feats[part["name"]][rows], np.float64)
        if "projection" in part:
            f = (f - part["center"].numpy()) @ part["projection"].numpy()
        out[part["name"]] = [f[labels[rows] == c].mean(0).tolist() for c in np.unique(labels[rows])]
    return out
