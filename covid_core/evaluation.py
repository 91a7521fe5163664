"""How a classifier did, in the figures its cards, the Models page and ``evaluate`` report: the normal vs
pneumonia pair, per-source results, COVID-19 calls per source (by most probable class or at the operating
threshold), the within-source table, and where a checkpoint keeps its TEST metrics."""

from __future__ import annotations

import numpy as np

from .metrics import binary_auc
from .shortcuts import SWAP_WORDS
from .targets import COVID_CLASS


def pair_metrics(labels: np.ndarray, probs: np.ndarray, classes, a: str = "normal", b: str = "pneumonia") -> dict | None:
    """AUC and accuracy of ``a`` vs ``b`` on the images whose true class is one of the two
    (score: p_b / (p_a + p_b); accuracy: the more probable of the two). None if not applicable."""
    classes = list(classes)
    if a not in classes or b not in classes:
        return None
    ia, ib = classes.index(a), classes.index(b)
    labels = np.asarray(labels)
    m = (labels == ia) | (labels == ib)
    if m.sum() == 0:
        return None
    y = labels[m] == ib
    score = probs[m, ib] / np.clip(probs[m, ia] + probs[m, ib], 1e-12, None)
    auc = binary_auc(y, score)
    return {"n": int(m.sum()), "auc": auc, "accuracy": float(((score >= 0.5) == y).mean())}


def macro_auc_interval(table, probs: np.ndarray) -> dict:
    """{"macro_auc_low", "macro_auc_high"}: the 95% interval of the macro AUC of ``probs`` on ``table``'s films, from
    a bootstrap that draws its patients (each film its own patient without a "patient" column)."""
    from .intervals import macro_auc_with_interval, table_patients

    found = macro_auc_with_interval(table["label_idx"].to_numpy(), probs, table_patients(table))
    return {"macro_auc_low": found["low"], "macro_auc_high": found["high"]}


def per_source_metrics(table, probs: np.ndarray, classes) -> dict:
    """{source: {"n", "accuracy", "true": {class: n}, "predicted": {class: n}}} for confound checks."""
    out = {}
    pred = np.asarray(classes)[probs.argmax(1)]
    for source in sorted(table["source"].unique()):
        m = (table["source"] == source).to_numpy()
        true = table["label"].to_numpy()[m]
        out[source] = {"n": int(m.sum()), "accuracy": float((pred[m] == true).mean()),
                       "true": {c: int((true == c).sum()) for c in classes},
                       "predicted": {c: int((pred[m] == c).sum()) for c in classes},
                       "confusion": {t: {c: int(((true == t) & (pred[m] == c)).sum()) for c in classes}
                                     for t in classes if (true == t).any()}}
    return out


def covid_calls_by_source(per_source: dict, covid: str | None) -> list[dict]:
    """How often non-COVID films were called COVID-19, per source and true class (the confound check).

    per_source: ``metrics["per_source"]`` ({source: {"confusion": {true: {predicted: n}}, ...}}).
    Rows: {"source", "true class", "n", "called covid", "share"}.
    """
    rows = []
    for source, m in per_source.items():
        for true_class, row in (m.get("confusion") or {}).items():
            if covid and covid in row and true_class != covid:
                n = sum(row.values())
                rows.append({"source": source, "true class": true_class, "n": n, "called covid": row[covid],
                             "share": row[covid] / max(n, 1)})
    return rows


def covid_calls_at_threshold(table, covid_probability: np.ndarray, threshold: float, covid: str) -> list[dict]:
    """Like :func:`covid_calls_by_source`, but counting the films a COVID-19 positive verdict was given to (calibrated
    p(COVID-19) at or above the operating ``threshold``), so the groups add up to the false positives behind PPV.

    table: the evaluated films (columns source, label), aligned with ``covid_probability`` (float N).
    """
    called = np.asarray(covid_probability) >= threshold
    rows = []
    for (source, true_class), idx in table.reset_index(drop=True).groupby(["source", "label"]).indices.items():
        if true_class != covid:
            n, hits = len(idx), int(called[idx].sum())
            rows.append({"source": str(source), "true class": str(true_class), "n": n, "called covid": hits,
                         "share": hits / n})
    return rows


def metrics_on_test(metadata: dict) -> dict:
    """A checkpoint's TEST metrics: the card's re-evaluation (``model-card --data``) if present, else training's."""
    return (metadata.get("card") or {}).get("test") or (metadata.get("metrics") or {}).get("test") or {}


def metrics_on_val(metadata: dict) -> dict:
    """A checkpoint's VALIDATION metrics: the card's re-evaluation (``model-card --data``) if present, else
    training's."""
    return (metadata.get("card") or {}).get("val") or (metadata.get("metrics") or {}).get("val") or {}


def false_covid_calls(metadata: dict) -> tuple[list[dict], bool]:
    """(rows, at_threshold): the non-COVID TEST films called COVID-19, per source and true class.

    Counted at the operating threshold when ``model-card --data`` stored them (``card.covid_calls_at_threshold``,
    at_threshold True), else by most probable class from the per-source confusion (older checkpoints).
    """
    stored = (metadata.get("card") or {}).get("covid_calls_at_threshold")
    if stored is not None:
        return stored, True
    per_source = metrics_on_test(metadata).get("per_source") or {}
    return covid_calls_by_source(per_source, COVID_CLASS.get(metadata.get("target"))), False


#: What the texture-swap rows of :func:`shortcut_rows` mean, for a reader of the card and the Models page.
TEXTURE_SWAP_NOTE = ("The texture-swap rows give TEST films the Fourier amplitude spectrum of another film (its "
                     "hospital's sharpness, noise, contrast and framing) and keep their own phase (anatomy, lesions): "
                     "a model that reads the lungs calls about the same share positive whatever the donor film, and "
                     "the donor from the films' own group is the control.")


def texture_swap_warning(metadata: dict) -> str | None:
    """A sentence for a reader when NIH adult normals given another source's amplitude spectrum were called
    COVID-19 positive at least 10 points more often than with another NIH normal's (the control); else None."""
    rows = {(r["films"], r["donor"]): r for r in (metadata.get("card") or {}).get("texture_swap") or []}
    control = rows.get(("NIH normal", "NIH normal"))
    foreign = [r for (films, donor), r in rows.items() if films == "NIH normal" and donor != "NIH normal"]
    if not control or not foreign or max(r["swapped"] for r in foreign) < control["swapped"] + 0.10:
        return None
    worst = max(foreign, key=lambda r: r["swapped"])
    donor = SWAP_WORDS.get(worst["donor"], worst["donor"])
    return (f"On TEST, normal adult films from NIH were called COVID-19 positive {100 * worst['as_is']:.0f}% of the "
            f"time as they are, {100 * control['swapped']:.0f}% with the image texture of another NIH normal film "
            f"and {100 * worst['swapped']:.0f}% with that of a {donor} film (the texture is "
            "the film's Fourier amplitude spectrum; its phase, which holds the anatomy, was kept): a film that looks "
            "unlike those of the training hospitals is often called COVID-19 positive even when its lungs are "
            "normal.")


#: What the intervals beside the within-source AUCs are (the card and the Models page).
WITHIN_SOURCE_INTERVALS_NOTE = ("Each AUC's 95% interval comes from a bootstrap that draws the split's patients, "
                                "widened to the Wilson interval on the patients of its smaller side: a question "
                                "asked of a dozen films is answered only roughly.")


def shortcut_rows(metadata: dict) -> list[dict]:
    """The within-source AUCs and the source probe of a checkpoint (see covid_core.shortcuts), VALIDATION then
    TEST, then the texture swaps stored by ``model-card --data``, as rows {"split", "question", "figure", "interval"
    (the AUC's 95% interval (low, high), or None), "films", "positives labelled as such"}: the card and the Models
    page show the same table."""
    rows = []
    for split, metrics in (("VALIDATION", metrics_on_val(metadata)), ("TEST", metrics_on_test(metadata))):
        shortcuts = (metrics or {}).get("shortcuts") or {}
        for q in (shortcuts.get("within_source") or {}).values():
            interval = (q["auc_low"], q["auc_high"]) if q.get("auc_low") is not None and q.get("auc_high") is not None \
                else None
            rows.append({"split": split, "question": q["description"], "figure": q["auc"], "interval": interval,
                         "films": f"{q['n_negative']} / {q['n_positive']}",
                         "positives labelled as such": q.get("positive_called")})
        probe = shortcuts.get("source_probe")
        if probe:
            rows.append({"split": split, "question": f"source probe: naming the source ({', '.join(probe['sources'])}) "
                                                     f"from the penultimate features (lower is better; majority "
                                                     f"share {probe['majority_share']:.3f})",
                         "figure": probe["accuracy"], "interval": None, "films": str(probe["n"]),
                         "positives labelled as such": None})
    for r in (metadata.get("card") or {}).get("texture_swap") or []:
        films, donor = SWAP_WORDS.get(r["films"], r["films"]), SWAP_WORDS.get(r["donor"], r["donor"])
        donor = f"another {donor}" if r["films"] == r["donor"] else f"{'an' if donor[0] in 'AEINO' else 'a'} {donor}"
        rows.append({"split": "TEST", "question": f"texture swap: {films} films given the amplitude spectrum of "
                                                  f"{donor} film, own phase kept: share called COVID-19 positive "
                                                  f"(as they are: {r['as_is']:.3f})",
                     "figure": r["swapped"], "interval": None, "films": str(r["n"]),
                     "positives labelled as such": None})
    return rows
