"""What a case says to a clinician, in words: the headline, the COVID-19 line, its limits, why none is given.

One vocabulary for the Diagnose page, the case report and the command line. The figures come from the
checkpoint (TEST rates at the operating threshold, per-source results); the words say plainly what they
do and do not cover.
"""

from __future__ import annotations

from dataclasses import dataclass

from .evaluation import false_covid_calls, metrics_on_test, texture_swap_warning
from .formatting import pct as _pct, possessive, probability_pcts
from .goals import UNSEEN_SOURCE_WRONG_VERDICTS
from .site_file import CALL_CLASSES, PNEUMONIA_ANY_CAUSE, calls_right
from .targets import COVID_CLASS
from .training_data import PUBLIC_SOURCES, not_validated_statement, training_data


# A group of non-COVID films called COVID-19 this often (or more) on TEST is named next to every positive verdict
# (older checkpoints, whose groups were counted by most probable class rather than at the threshold).
NOTABLE_FALSE_COVID_SHARE = 0.2


def positive_verdict_limits(metadata: dict, threshold: dict) -> list[str]:
    """What a COVID-19 positive verdict of this model is worth, measured on TEST: sentences for a clinician.

    metadata: a classifier checkpoint's metadata (``Classifier.metadata``); threshold: its ``threshold`` entry, whose
    ``test`` rates were measured at the operating threshold. The PPV sentence gives TEST's COVID-19 share, since
    PPV falls where COVID-19 is rarer. The second says where the false positives came from: every (source, true
    class) group of non-COVID films given a positive verdict at the threshold (``card.covid_calls_at_threshold``,
    stored by ``model-card --data``), so the groups add up to the false positives; for older checkpoints, the groups
    whose most probable class was COVID-19 at least ``NOTABLE_FALSE_COVID_SHARE`` of the time. Empty without a
    COVID-19 class or TEST metrics.
    """
    covid = COVID_CLASS.get(metadata.get("target"))
    test = metrics_on_test(metadata)
    if not covid or not test:
        return []
    sentences = []
    ppv = ((threshold or {}).get("test") or {}).get("ppv")
    if ppv is not None:
        text = f"On TEST, {_pct(ppv)} of the films this model called COVID-19 positive had COVID-19 (PPV)."
        n, n_covid = test.get("n"), ((test.get("per_class") or {}).get(covid) or {}).get("support")
        if n and n_covid:
            text += (f" {n_covid} of the {n} TEST films ({_pct(n_covid / n)}) had COVID-19; where COVID-19 is rarer, "
                     "a larger share of positive verdicts is wrong.")
        sentences.append(text)
    calls, at_threshold = false_covid_calls(metadata)
    if at_threshold:
        groups = sorted((r for r in calls if r["called covid"]), key=lambda r: -r["share"])
        lead = f"Its {sum(r['called covid'] for r in groups)} false positives on TEST were"
    else:
        groups = [r for r in calls if r["called covid"] and r["share"] >= NOTABLE_FALSE_COVID_SHARE]
        lead = f"On TEST it also named {covid} the most probable class for"
    if groups:
        notes = PUBLIC_SOURCES if training_data(metadata).public else {}  # another data set's "nih" is not NIH's
        listed = "; ".join(f"{r['called covid']} of {r['n']} {r['true class']} films from source '{r['source']}'"
                           + (f" ({notes[r['source']]})" if r["source"] in notes else "")
                           for r in groups)
        sentences.append(f"{lead}: {listed}. A positive verdict means the film looks like the COVID-19 films it was "
                         "trained on; it does not tell COVID-19 from other lung disease in the same kind of patient "
                         "(age, hospital).")
    return sentences


# (key in a threshold's ``test`` rates, its name for a reader), and the counts each rate is made of
THRESHOLD_RATES = (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"), ("npv", "NPV"))
_RATE_COUNTS = {"sensitivity": ("tp", "fn"), "specificity": ("tn", "fp"), "ppv": ("tp", "fp"), "npv": ("tn", "fn")}
# The rate that says how often a verdict of this kind was right (Prediction.covid_call -> rate key).
VERDICT_RATE = {"positive": "ppv", "negative": "npv"}


RATE_TERMS = ("sensitivity: COVID-19 films called positive; specificity: other films called negative; PPV / NPV: "
              "positive / negative verdicts that were right, which depend on how common COVID-19 is among the films "
              "checked")


def rate_text(rates: dict, key: str) -> str:
    """'98.3% (59 of 60)' from a threshold's TEST rates; without the counts (older checkpoints) just '98.3%'."""
    num, other = _RATE_COUNTS[key]
    text = _pct(rates.get(key))
    if rates.get(key) is not None and rates.get(num) is not None and rates.get(other) is not None:
        text += f" ({rates[num]} of {rates[num] + rates[other]})"
    return text



#: The three-class call in a clinician's words (the most probable class of the model).
CALL_WORDS = {
    "normal": "No pneumonia seen",
    "pneumonia": "Pneumonia, not COVID-19-like",
    "covid19": "COVID-19-like pneumonia",
    "negative": "Not COVID-19-like",
    "positive": "COVID-19-like",
}

#: The call of a model without a COVID-19 class (``--target pneumonia``): its "pneumonia" counts COVID-19 films too
#: (covid_core.targets), so it says nothing about COVID-19 either way.
NO_COVID_CLASS_WORDS = {**CALL_WORDS, "pneumonia": "Pneumonia (COVID-19 or another cause)"}

#: A class the model finds more probable than the one its COVID-19 verdict names, in words.
MORE_PROBABLE_WORDS = {"normal": "a normal film", "pneumonia": "pneumonia", "negative": "no COVID-19"}


def share_with_interval(k: int, n: int) -> str:
    """46 of 65 -> "70.8% (95% CI 59-80%)": the share and its Wilson interval (:func:`metrics.proportion_interval`)."""
    from .metrics import proportion_interval

    low, high = proportion_interval(k, n)
    return f"{_pct(k / n)} (95% CI {100 * low:.0f}-{100 * high:.0f}%)"


def _both_kinds(counts: dict) -> tuple[int, int, int, int] | None:
    """(tp, fp, fn, tn) of ``counts`` when there are COVID-19 films and other films among them, else None."""
    tp, fp, fn, tn = (counts.get(k) for k in ("tp", "fp", "fn", "tn"))
    return None if None in (tp, fp, fn, tn) or not (tp + fn) or not (fp + tn) else (tp, fp, fn, tn)


def predictive_values_sentence(counts: dict, films: str) -> str:
    """How often the positive and negative verdicts counted by ``counts`` ({"tp", "fp", "fn", "tn"}) were right,
    with the COVID-19 share they hold for, after ``films`` ("On these films"); "" without both kinds of film."""
    kinds = _both_kinds(counts)
    if kinds is None:
        return ""
    tp, fp, fn, tn = kinds
    parts = [f"{share_with_interval(tp, tp + fp)} of the positive verdicts were right (PPV, {tp} of {tp + fp})"
             if tp + fp else "no verdict was positive",
             f"{share_with_interval(tn, tn + fn)} of the negative verdicts were right (NPV, {tn} of {tn + fn})"
             if tn + fn else "no verdict was negative"]
    share = (tp + fn) / (tp + fn + fp + tn)
    return (f"{films}, {_pct(share)} of them COVID-19, " + " and ".join(parts) + ". Where COVID-19 is rarer "
            "than among the films you labelled, a larger share of positive verdicts is wrong.")


def validation_statement(site, prediction=None, metadata: dict | None = None) -> str:
    """Whether the verdicts were checked at this hospital: the site's name and local figures, or, without a site,
    where the figures shown come from instead (the data set of the checkpoint's ``metadata``,
    :func:`covid_core.training_data.not_validated_statement`).
    With the ``prediction`` whose limits already gave the site's PPV or NPV (:func:`verdict_limits`), the
    statement leaves its own PPV and NPV sentence out rather than say it twice."""
    if site is None:
        return not_validated_statement(metadata or {})
    if site.call_only:
        return call_validation_statement(site)

    def figure(name, f):
        if not f or f.get("value") is None:
            return f"{name} n/a"
        ci = f" (95% CI {100 * f['low']:.0f}-{100 * f['high']:.0f}%)" if f.get("low") is not None else ""
        return f"{name} {100 * f['value']:.0f}%{ci}"

    films = "on its own labelled films"
    if site.given is not None and site.given[0] < site.given[1]:
        films = (f"on the {site.given[0]} of its {site.given[1]} labelled films that got a verdict (the others "
                 "looked unlike the training X-rays or turned)")
    said = prediction is not None and _worth_at_site(prediction, site)
    worth = "" if said else predictive_values_sentence(site.counts or {}, "On those films")
    poor = (f" That is poor: on those films, even after adaptation, {site.poor}, so many of this model's verdicts "
            "at this hospital are wrong either way." if site.poor else "")
    unsettled = (f" Too few films to confirm it: {site.unsettled}. Label more films and validate again."
                 if site.unsettled else "")
    return (f"Validated at {site.name}: {films}, COVID-19 {figure('sensitivity', site.sensitivity)}, "
            f"{figure('specificity', site.specificity)}, estimated without any film scoring itself."
            + poor + unsettled + (" " + worth if worth else ""))


def call_validation_statement(site) -> str:
    """:func:`validation_statement` of a site file that validated a model without a COVID-19 class: how often its
    call between normal and pneumonia was right on the site's own films, and whether they confirm it."""
    (right_n, normal), (right_p, pneumonia) = calls_right(site.calls or {})
    films = "on its own labelled films"
    if site.given is not None and site.given[0] < site.given[1]:
        films = (f"on the {site.given[0]} of its {site.given[1]} labelled films that got a call (the others looked "
                 "unlike the training X-rays or turned)")
    by = " (made there by a head fitted on its films)" if site.pneumonia_head else ""
    problem = site.call_problem
    return (f"Validated at {site.name} for the call between normal and pneumonia{by}, the only call this model makes "
            f"(it gives no COVID-19 verdict): {films}, it was right for {right_n} of {normal} normal films and "
            f"{right_p} of {pneumonia} films with {PNEUMONIA_ANY_CAUSE}, estimated without any film scoring itself."
            + (f" That does not confirm it: {problem}." if problem else ""))


def site_doubt_sentence(site, whose: str) -> str:
    """Why the verdicts at ``site`` are not confirmed there, beside a list of them (the results table, ``predict``):
    the model did poorly on ``whose`` own labelled films (``Site.poor``: "on ``whose`` own labelled films, even after
    adaptation, ..."), or they are too few to know how well it does (``Site.unsettled``); "" when they confirm it. For
    a site file that validated only the call between normal and pneumonia, why its films do not confirm that call."""
    if site.call_only:
        problem = site.call_problem
        return f"{whose} labelled films do not confirm this model's call: {problem}" if problem else ""
    if site.poor:
        return (f"on {whose} own labelled films, even after adaptation, {site.poor}, so many of these verdicts are "
                "wrong either way")
    if site.unsettled:
        return (f"{whose} labelled films are too few to confirm these verdicts: {site.unsettled}; label more films "
                "and validate again")
    return ""


WITHHELD_TITLE = "No verdict: this film is unlike the X-rays the model learned from"
TURNED_TITLE = "No verdict: this film may be turned or inverted"
NOT_FRONTAL_TITLE = "No verdict: the DICOM header says this is not a frontal chest X-ray"
RAW_TITLE = "No verdict: the DICOM header says this is a raw detector image, not the processed film"
NOT_VALIDATED_TITLE = "No verdict: this model is not validated at your hospital"
#: The headline of a film withheld for a known reason, by ``Prediction.withheld_kind``.
WITHHELD_TITLES = {"turned": TURNED_TITLE, "not_frontal": NOT_FRONTAL_TITLE, "raw": RAW_TITLE}


@dataclass(frozen=True)
class Headline:
    """title: the three-class call in words (or why there is none); covid_line: the COVID-19 verdict in words
    ("" without a COVID-19 class or when withheld); tone, what the call's colour says: "positive" (COVID-19-like),
    "abnormal" (pneumonia of another kind: not a reassuring result, though the COVID-19 verdict is negative),
    "negative" (no pneumonia seen, or not COVID-19-like), "withheld" or "neutral" (no COVID-19 verdict to give)."""

    title: str
    covid_line: str
    tone: str


def headline(prediction) -> Headline:
    """The two lines a clinician reads first, from a covid_core.inference.Prediction."""
    if prediction.ood_flagged:
        return Headline(WITHHELD_TITLES.get(prediction.withheld_kind, WITHHELD_TITLE), "", "withheld")
    if prediction.not_validated:
        return Headline(NOT_VALIDATED_TITLE, "", "withheld")
    words = CALL_WORDS if prediction.covid_positive is not None else NO_COVID_CLASS_WORDS
    title = words.get(prediction.call, f"Most probable: {prediction.call}")
    abnormal = prediction.call == "pneumonia"
    if prediction.covid_positive is None:
        return Headline(title, "", "abnormal" if abnormal else "neutral")
    if prediction.call_unconfirmed and not prediction.covid_positive:  # the site did not confirm normal/pneumonia
        title, abnormal = CALL_WORDS["negative"], False
    word = "positive" if prediction.covid_positive else "negative"
    probability, threshold = probability_pcts(prediction.covid_probability, prediction.threshold)
    covid_line = (f"COVID-19: {word} (probability {probability}, "
                  f"{'at or above' if prediction.covid_positive else 'below'} the operating threshold of {threshold})")
    top = prediction.label  # where the threshold, not the most probable class, decided the verdict, say so
    if (top != prediction.call) if prediction.covid_positive else (top in COVID_CLASS.values()):
        share = probability_pcts(prediction.probabilities[top])[0]
        covid_line += (f"; the model finds {MORE_PROBABLE_WORDS.get(top, top)} more probable ({share})"
                       if prediction.covid_positive else f"; the network still ranks COVID-19 first ({share})")
    return Headline(title, covid_line, "abnormal" if abnormal else word)  # a positive verdict's call is COVID-19


NOT_VALIDATED_CAVEAT = "Unconfirmed: this model has not been validated at your hospital."


def call_caveat(site) -> str:
    """:func:`verdict_caveat` of the call of a model without a COVID-19 class, whose site file (``call_only``)
    checked that call: "" where the site's films confirm it."""
    if site is None:
        return NOT_VALIDATED_CAVEAT
    return "" if site.confirmed else f"Unconfirmed: at {site.name}, {site.call_problem}."


def verdict_caveat(prediction, site) -> str:
    """The line a verdict carries when it is not settled, or "": a verdict of a model no site file validates here
    (``site`` None; given only on request, research use), or validated at a site where it did poorly or on too few
    films to know; for a model without a COVID-19 class, its call where no site's films confirm it. The Diagnose
    card and the case report put it inside the verdict itself, so that a verdict never reads as settled where it is
    not."""
    if prediction.withheld:
        return ""
    if prediction.covid_positive is None:  # a model without a COVID-19 class: its call is what a site checks
        return call_caveat(site)
    if site is not None and site.confirmed:
        return ""
    if site is None:
        return NOT_VALIDATED_CAVEAT
    if site.poor:
        return f"Often wrong here: this model did poorly on {possessive(site.name)} own labelled films."
    return (f"Unconfirmed: {possessive(site.name)} labelled films are too few to know how often this model is right "
            "here.")


NOT_VALIDATED_REASON = (
    "At hospitals it never saw, this kind of model calls most normal adult films COVID-19: trained without one of its "
    f"hospitals, it gave {UNSEEN_SOURCE_WRONG_VERDICTS} of that hospital's films a wrong COVID-19 positive verdict, "
    "and nothing in a film told those apart from real COVID-19 films. So it gives verdicts only where a hospital "
    "has checked it on its own "
    "labelled films: validate it on the Validate page (at least 10 COVID-19 and 10 other films), and verdicts then "
    "appear with your hospital's own sensitivity and specificity. Researchers can ask for verdicts before "
    "validation (in the Diagnose page's sidebar, or --unvalidated on the command line).")


def withheld_reason(prediction) -> str:
    """Why no verdict is given, for a clinician."""
    if prediction.not_validated:
        return NOT_VALIDATED_REASON
    if getattr(prediction, "withheld_why", ""):  # turned, another kind of film or a raw image (DICOM header)
        return prediction.withheld_why + " Read the film without the model."
    return ("The model has not seen films like this one, so its output would be a guess. This happens with "
            "lateral or rotated views, films of other body parts, unusual exposure or processing, and films from "
            "hospitals and machines unlike those in its training data. Read the film without the model, or "
            "validate the model on your own films first.")


def negative_verdict_limits(metadata: dict, threshold: dict) -> list[str]:
    """What a COVID-19 negative verdict is worth, for a clinician: its TEST NPV with where that comes from, the
    COVID-19 films it missed, and what a negative does not say. Empty without a COVID-19 class or TEST figures."""
    covid = COVID_CLASS.get(metadata.get("target"))
    test = metrics_on_test(metadata)
    rates = (threshold or {}).get("test") or {}
    if not covid or not test or rates.get("npv") is None:
        return []
    n, n_covid = test.get("n"), ((test.get("per_class") or {}).get(covid) or {}).get("support")
    text = f"On TEST, {100 * rates['npv']:.1f}% of the films called COVID-19 negative had no COVID-19 (NPV)"
    if n and n_covid:
        text += f", where {n_covid} of the {n} films ({100 * n_covid / n:.0f}%) had COVID-19"
    if rates.get("fn") is not None:
        text += f"; {rates['fn']} COVID-19 film{'s were' if rates['fn'] != 1 else ' was'} called negative"
    return [text + ".", NEGATIVE_IS_NOT_NORMAL]


NEGATIVE_IS_NOT_NORMAL = (
    "A negative COVID-19 verdict is not a normal film: pneumonia of another cause can be present (see the first "
    "line), and a high NPV on public data does not carry over to a hospital whose patients, machines and COVID-19 "
    "prevalence differ.")


def scored_by_site_head(classifier) -> bool:
    """Whether this classifier's COVID-19 verdicts compare a site head's probability with the site's threshold,
    rather than the network's own p(COVID-19)."""
    return classifier.site is not None and classifier.site.head is not None


def operating_threshold(classifier) -> dict:
    """The operating point behind this classifier's COVID-19 verdicts, as a threshold entry ({"value", "rule",
    "test", ...}): the checkpoint's, with its TEST rates; or, where a site file brings its own threshold (on
    p(COVID-19) or on its head's probability), the site's, named by ``site``, with no TEST rates: those were
    measured at the checkpoint's threshold and do not describe the site's verdicts."""
    site = classifier.site
    if site is None or (site.threshold is None and site.head is None):
        return classifier.threshold or {}
    score = ("the probability of a head fitted on the network's features" if site.head is not None
             else "the COVID-19 probability")
    return {"class": (classifier.threshold or {}).get("class"), "value": site.threshold, "site": site.name,
            "rule": f"the operating point validated at {site.name}: a threshold on {score}, chosen on its own films",
            "test": {}}


def site_verdict_worth(site, positive: bool) -> str:
    """How often a verdict of this kind (positive or negative) was right on the site's own labelled films, with
    the counts and the COVID-19 share it holds for; "" when the site file has no counts or no such verdicts."""
    kinds = _both_kinds(site.counts or {})
    if kinds is None:
        return ""
    tp, fp, fn, tn = kinds
    right, wrong, kind, name = (tp, fp, "positive", "PPV") if positive else (tn, fn, "negative", "NPV")
    if not right + wrong:
        return ""
    share = (tp + fn) / (tp + fn + fp + tn)
    rarer = ("where COVID-19 is rarer, a larger share of positive verdicts is wrong" if positive else
             "where COVID-19 is more common, a larger share of negative verdicts is wrong")
    return (f"At {site.name}, {share_with_interval(right, right + wrong)} of the {kind} verdicts on its own labelled "
            f"films were right ({name}, {right} of {right + wrong}), where {_pct(share)} of those films had COVID-19; "
            f"{rarer}.")


#: A labelled class in words, as a site's counts of the call name it.
LABEL_WORDS = {"normal": "normal", "pneumonia": "pneumonia of another cause", "covid19": "COVID-19"}


def site_call_sentence(prediction, site) -> str:
    """What the first line under a negative verdict ("No pneumonia seen", "Pneumonia, not COVID-19-like") was worth
    on the site's own labelled films, or why the site's films do not confirm it and it is not said (the headline then
    reads "Not COVID-19-like"); "" without a site or a negative verdict. For a model without a COVID-19 class, what
    its call was worth at a site that validated it (``Site.call_only``) and confirmed it (its caveat says why not)."""
    if site is None or prediction.withheld or prediction.covid_positive or prediction.call not in CALL_CLASSES:
        return ""  # a two-class COVID-19 model's call is its verdict
    if prediction.covid_positive is None:  # a model without a COVID-19 class: the site's counts are its calls
        if not site.call_only or prediction.call_unconfirmed:
            return ""  # the caveat in the verdict says why its call is not confirmed
        words, labels = NO_COVID_CLASS_WORDS, {**LABEL_WORDS, "pneumonia": PNEUMONIA_ANY_CAUSE}
    elif prediction.call_unconfirmed:
        return (f"Whether this film shows pneumonia of another cause is not said here: at {site.name}, "
                f"{prediction.call_unconfirmed}. Read the film for it.")
    else:
        words, labels = CALL_WORDS, LABEL_WORDS
    call = prediction.call
    row = {label: (called or {}).get(call, 0) for label, called in (site.calls or {}).items()}
    k, n = row.get(call, 0), sum(row.values())
    if not n:
        return f'At {site.name}, none of its own labelled films was called "{words.get(call, call)}".'
    others = ", ".join(f"{v} {labels.get(label, label)}" for label, v in row.items() if label != call and v)
    by = " There a head fitted on its films makes the call between normal and pneumonia." if site.pneumonia_head \
        else ""
    return (f'At {site.name}, {share_with_interval(k, n)} of its own labelled films called '
            f'"{words.get(call, call)}" were {labels.get(call, call)} ({k} of {n}'
            + (f"; the others: {others}" if others else "") + ")." + by)


#: The name of a site's pneumonia head's probability where it is shown beside the network's own probabilities.
SITE_PNEUMONIA_SCORE = ("Pneumonia probability at this site (the call's, from a head fitted on its films; the "
                        "network's own is above)")


def _worth_at_site(prediction, site) -> str:
    """:func:`site_verdict_worth` of this prediction's verdict, the first of its limits; "" without a verdict, a
    site or the site's counts."""
    if site is None or prediction.withheld or prediction.covid_positive is None:
        return ""
    return site_verdict_worth(site, prediction.covid_positive)


def verdict_limits(prediction, metadata: dict, threshold: dict, site=None) -> list[str]:
    """The limits that go with this prediction's verdict (positive or negative); none for a withheld one.
    ``threshold``: :func:`operating_threshold`'s entry; a site's operating point has no TEST figures to quote.
    ``site``: the active site file; where it counts its verdicts, their worth at that hospital comes first and
    replaces the public TEST set's (which stays in the details at a kept shipped threshold)."""
    if prediction.withheld:
        return []
    if prediction.covid_positive is None:  # no verdict: what its call was worth where a site checked it
        return [sentence for sentence in [site_call_sentence(prediction, site)] if sentence]
    worth = _worth_at_site(prediction, site)
    call = [sentence for sentence in [site_call_sentence(prediction, site)] if sentence]
    # "pneumonia of another cause can be present (see the first line)": said where the first line names the call
    not_normal = [] if prediction.covid_positive or prediction.call_unconfirmed else [NEGATIVE_IS_NOT_NORMAL]
    if worth:
        moved = [] if threshold.get("site") is None else [
            f"This verdict uses the operating point validated at {threshold['site']}, not the shipped threshold, so "
            "the public TEST figures do not describe it."]
        return [worth] + call + moved + not_normal
    if threshold.get("site") is not None:
        return call + [f"This verdict uses the operating point validated at {threshold['site']}, not the shipped "
                "threshold, so the model's TEST figures (PPV, NPV, false positives by source) do not describe it; "
                "its sensitivity and specificity on that site's own films are given with the validation below."] + (
            not_normal)
    if prediction.covid_positive:
        texture = texture_swap_warning(metadata)
        return positive_verdict_limits(metadata, threshold) + [
            "The films behind these figures come from few hospitals. At a hospital the model never saw, normal "
            "adult films can be called COVID-19 positive far more often."] + ([texture] if texture else [])
    return call + [s for s in negative_verdict_limits(metadata, threshold) if s != NEGATIVE_IS_NOT_NORMAL or not_normal]

