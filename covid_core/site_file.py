"""A site file: what validate-site adapted at one hospital, read back and applied to the model it was made for.

The file is plain JSON beside the model (``<model>.site.json``) or given with ``--site``. It is refused, with the
reason, when it was made for another checkpoint, when its content is damaged (a hand edit, a broken copy) or when
its head or familiarity means do not fit the model's features; a refused file is never half applied.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .digests import file_sha256
from .errors import ConfigError
from .formatting import WORD_JOINER, inert
from .stored_values import is_finite_number
from .targets import COVID_CLASS

SITE_FORMAT = "covid_core.site/1"
POOR_AUC = 0.75  # below this on the site's own films, the COVID-19 score hardly tells its COVID-19 films apart
POOR_BALANCED = 0.70  # below this mean of sensitivity and specificity, many verdicts either way are wrong
#: How a site head's threshold was chosen, written beside it: on each film's score by a head fitted without that
#: film's patient (``site.head_operating_point``). A head whose file does not say so had its threshold chosen on the
#: films it was fitted on, which at an unseen hospital caught 0.32-0.39 of other patients' COVID-19 films while its
#: report promised 44-75% (docs/site-validation.md): such a file is refused.
HEAD_THRESHOLD_FROM = "held-out scores"
POOR_RATE = 0.60  # below this sensitivity (or specificity), 40% or more of that class's films get a wrong verdict
MIN_PER_CLASS = 10  # films of each kind that a step of validate-site needs (COVID-19 and other; normal and pneumonia)
#: The classes of a three-class model's call under a negative verdict, whose words ("No pneumonia seen", "Pneumonia,
#: not COVID-19-like") a site must check before Diagnose says them there.
CALL_CLASSES = ("normal", "pneumonia")


#: What a site file of a model without a COVID-19 class (``--target pneumonia``) validated, written as its
#: ``validates``: that model's call between normal and pneumonia is all it says. A file without it validated
#: COVID-19 verdicts.
CALL_ONLY = "the call between normal and pneumonia"


def makes_call(classes) -> bool:
    """Whether a model with these classes makes the call between normal and pneumonia (a three-class model under a
    negative verdict; a model without a COVID-19 class always); a two-class COVID-19 model's call is its verdict."""
    return set(CALL_CLASSES) <= set(classes)


def call_problem(calls: dict | None, call_only: bool = False) -> str:
    """Why a site's own films do not confirm the call between a normal film and pneumonia of another cause (the
    first line under a negative verdict), in words; "" when they do. ``calls``: {labelled class: {called class:
    films}} of the films given a verdict (``site.call_counts``), None when the validation did not count them. The
    call is confirmed when the site labelled MIN_PER_CLASS films of each and it got the class right for each at a
    mean rate (balanced accuracy) of POOR_BALANCED or more, counting the films given a negative verdict (a positive
    one is the COVID-19 verdict's to answer for). At a hospital the network never saw it was right for about half of
    each (docs/site-validation.md). ``call_only``: the counts are of a model without a COVID-19 class, whose call
    is all it says and whose pneumonia counts COVID-19 too (every film that got a call counts)."""
    if calls is None:
        return "its validation did not count how often that call was right (validate the model there again)"
    (right_n, normal), (right_p, pneumonia) = calls_right(calls)
    given, kind = (("given a call", PNEUMONIA_ANY_CAUSE) if call_only
                   else ("given a negative verdict", "pneumonia of another cause"))
    if min(normal, pneumonia) < MIN_PER_CLASS:
        return (f"its labelled films {given} held {normal} normal films and {pneumonia} of {kind}; checking the "
                f"call needs at least {MIN_PER_CLASS} of each")
    if (right_n / normal + right_p / pneumonia) / 2 < POOR_BALANCED:
        return (f"on its own labelled films the call was right for only {right_n} of {normal} normal films and "
                f"{right_p} of {pneumonia} films of {kind}")
    return ""


#: The pneumonia class of a model without a COVID-19 class, in words (covid_core.targets counts COVID-19 in it).
PNEUMONIA_ANY_CAUSE = "pneumonia (COVID-19 or another cause)"


def calls_right(calls: dict) -> list[tuple[int, int]]:
    """[(normal films called normal, normal films), (the same for pneumonia)] among the films given a negative
    verdict (called normal or pneumonia), from a site's counts of the call."""
    return [((calls.get(c) or {}).get(c, 0), sum((calls.get(c) or {}).get(called, 0) for called in CALL_CLASSES))
            for c in CALL_CLASSES]


def poor_figures(auc: float | None, sensitivity: float | None, specificity: float | None) -> list[str]:
    """What in a site's own figures (after adaptation) says the model does poorly there, in words: an AUC below
    POOR_AUC; sensitivity or specificity below POOR_RATE, or the two averaging below POOR_BALANCED (a perfect
    specificity must not hide a sensitivity of 44%); [] when none (or without figures)."""
    poor = []
    if auc is not None and auc < POOR_AUC:
        poor.append(f"its COVID-19 score ranks them with an AUC of {auc:.2f}")
    if sensitivity is not None and specificity is not None and (
            (sensitivity + specificity) / 2 < POOR_BALANCED or min(sensitivity, specificity) < POOR_RATE):
        poor.append(f"its verdicts have sensitivity {100 * sensitivity:.0f}% and specificity {100 * specificity:.0f}%")
    return poor


def unsettled_figures(sensitivity: dict | None, specificity: dict | None) -> list[str]:
    """What the site's own figures (after adaptation; {"value", "low", "high"}) leave unknown because its films are
    too few, in words: a sensitivity or specificity that is not poor by itself (POOR_RATE or more) but whose 95%
    interval reaches below POOR_RATE. Validated on 10 COVID-19 films (8 given a verdict, 7 of those caught: 0.875,
    interval 0.53-0.98), a model trained without NIH caught 0.600 of other NIH-site patients' COVID-19 films
    (docs/site-validation.md). A figure that could not be measured (value None: no film of its kind got a verdict,
    as at a site validated without COVID-19 films) is unknown, and says so. [] when none, or without intervals."""
    unsettled = []
    for name, f, kind in (("sensitivity", sensitivity, "COVID-19 film"),
                          ("specificity", specificity, "film without COVID-19")):
        if isinstance(f, dict) and "value" in f and f["value"] is None:
            unsettled.append(f"its {name} is unknown (no {kind} of its own got a verdict)")
            continue
        if not isinstance(f, dict) or not all(isinstance(f.get(k), (int, float)) for k in ("value", "low")):
            continue
        if f["value"] >= POOR_RATE and f["low"] < POOR_RATE:
            low = math.floor(100 * f["low"] + 1e-9)  # rounded down: 0.596 reads 59%, not the 60% it is below
            unsettled.append(f"its {name} of {100 * f['value']:.0f}% could be as low as {low}% (95% interval)")
    return unsettled


# Characters that would make a site's name do something where it is shown (Markdown links and images, emphasis,
# tables, LaTeX, HTML): a name is words, and it is shown in many places (Diagnose, the report, the Models page).
_NAME_ACTIVE = str.maketrans({c: " " for c in "[]<>*_`|\\#$~{}"})
MAX_NAME_CHARS = 80


def clean_site_name(name) -> str:
    """A site's name as plain printable words, at most MAX_NAME_CHARS characters; "site" when nothing is left. A
    bare web or e-mail address in it is kept from becoming a link (an invisible word joiner, ``inert``)."""
    text = "".join(c if c.isprintable() else " " for c in str(name).replace(WORD_JOINER, "")).translate(_NAME_ACTIVE)
    return inert(" ".join(text.split())[:MAX_NAME_CHARS].strip())[:MAX_NAME_CHARS].strip() or "site"


@dataclass
class Site:
    """What a site file changes at inference (every field None = the shipped behaviour)."""

    name: str
    threshold: float | None = None
    temperature: float | None = None
    head: dict | None = None  # {"mean", "scale", "coef", "intercept"}: p = sigmoid(((f - mean) / scale) @ coef + b)
    ood_means: dict | None = None  # {part name: list of extra class means in that part's space}
    sensitivity: dict | None = None  # the local figures to show with a verdict: {"value", "low", "high"}
    specificity: dict | None = None
    given: tuple[int, int] | None = None  # (films that got a verdict, films) the figures count; None: every film
    counts: dict | None = None  # {"tp", "fn", "fp", "tn"} of the verdicts those figures count
    auc: dict | None = None  # the COVID-19 score's AUC on the site's films after adaptation: {"value", "low", "high"}
    version: str = ""  # digest of the site file's text: results scored with one version are not another's
    created: str = ""  # when validate-site made the file
    # {labelled class: {called class: films}}: how the call in words did on the site's films given a verdict
    calls: dict | None = None
    # like ``head``: p(pneumonia rather than a normal film) for a film without a positive verdict; the call follows it
    pneumonia_head: dict | None = None
    # the file validated only the call between normal and pneumonia (CALL_ONLY: a model without a COVID-19 class)
    call_only: bool = False

    @property
    def poor(self) -> str:
        """What says that the model does poorly on the site's own films even after adaptation (the Validate page
        warned of it before the file was made active), in words; "" when nothing does."""
        def value(f):
            return f.get("value") if isinstance(f, dict) else None

        return " and ".join(poor_figures(value(self.auc), value(self.sensitivity), value(self.specificity)))

    @property
    def unsettled(self) -> str:
        """What the site's films are too few to settle (:func:`unsettled_figures`), in words; "" when nothing, or
        when the model did poorly there anyway (``poor`` says more)."""
        return "" if self.poor else " and ".join(unsettled_figures(self.sensitivity, self.specificity))

    @property
    def confirmed(self) -> bool:
        """Whether the site's own films confirm the model's verdicts there: neither poor nor unsettled; for a file
        that validated only the call between normal and pneumonia (``call_only``), whether they confirm that call."""
        if self.call_only:
            return not self.call_problem
        return not self.poor and not self.unsettled

    @property
    def call_problem(self) -> str:
        """Why this site's films do not confirm the call between normal and pneumonia (:func:`call_problem`)."""
        return call_problem(self.calls, self.call_only)

    def head_probability(self, penultimate: np.ndarray, head: dict | None = None) -> np.ndarray:
        """The probability a head (``head``, else the COVID-19 head) gives each film's penultimate features."""
        from scipy.special import expit  # the logistic function without overflow far from the threshold

        h = {k: np.asarray((head or self.head)[k], np.float64) for k in ("mean", "scale", "coef", "intercept")}
        return expit(((np.asarray(penultimate, np.float64) - h["mean"]) / h["scale"]) @ h["coef"] + h["intercept"])

    def ood_stats(self, stats: dict) -> dict:
        """The checkpoint's familiarity statistics with the site's class means added to each part."""
        import torch

        if not self.ood_means or not stats.get("parts"):
            return stats
        parts = []
        for part in stats["parts"]:
            extra = self.ood_means.get(part["name"])
            if extra:
                part = {**part, "means": torch.cat([part["means"], torch.tensor(extra, dtype=torch.float32)])}
            parts.append(part)
        return {**stats, "parts": parts}


def load_site(path: str | Path, checkpoint_path: str | Path) -> Site:
    """Read a site file made for ``checkpoint_path``; ConfigError with the reason otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text)
    except OSError as exc:
        raise ConfigError(f"cannot read the site file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path.name} is not a site file: it is not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != SITE_FORMAT:
        raise ConfigError(f"{path.name} is not a site file (no format {SITE_FORMAT!r}); make one with "
                          "`python -m covid_core validate-site`")
    made_for = data.get("checkpoint")
    wanted = made_for.get("sha256") if isinstance(made_for, dict) else None
    actual = file_sha256(checkpoint_path)
    if wanted != actual:
        raise ConfigError(f"{path.name} was made for another model (checkpoint {str(wanted)[:12]}, not "
                          f"{Path(checkpoint_path).name} {actual[:12]}); validate this model at the site again")
    p = data.get("parameters") or {}
    after = data.get("after") or {}
    if not isinstance(p, dict) or not isinstance(after, dict):
        raise ConfigError(f"{path.name} is damaged: its parameters or figures are not a JSON object")
    given = after.get("given")
    figures, count = after, None
    if isinstance(given, dict) and "sensitivity" in given:  # the verdicts actually given (newer site files)
        films, withheld = given.get("films"), given.get("withheld")
        if not (is_whole(films) and is_whole(withheld)) or withheld > films:
            raise ConfigError(f"{path.name} is damaged (its count of films given a verdict is not two whole "
                              "numbers); validate this model at the site again")
        figures, count = given, (films - withheld, films)
    site = Site(name=clean_site_name(data.get("site", "site")), threshold=p.get("threshold"),
                temperature=p.get("temperature"), head=p.get("head"), ood_means=p.get("ood_means"),
                sensitivity=figures.get("sensitivity"), specificity=figures.get("specificity"), given=count,
                counts=figures.get("counts"), auc=after.get("auc"),
                version=hashlib.sha256(text.encode()).hexdigest()[:16], created=str(data.get("created", ""))[:40],
                calls=after.get("calls"), pneumonia_head=p.get("pneumonia_head"),
                call_only=data.get("validates") == CALL_ONLY)
    problem = _damage(site) or (f"its 'validates' is not {CALL_ONLY!r}"
                                if data.get("validates", CALL_ONLY) != CALL_ONLY else "")
    if problem:
        raise ConfigError(f"{path.name} is damaged ({problem}); validate this model at the site again")
    if site.head is not None and p.get("head_threshold_from") != HEAD_THRESHOLD_FROM:
        raise ConfigError(f"{path.name} has a head whose threshold was chosen on the films the head was fitted on; "
                          "such a threshold misses many COVID-19 films of other patients (docs/site-validation.md). "
                          "Validate this model at the site again")
    return site


def _number(v, low: float, high: float) -> bool:
    return is_finite_number(v) and low <= v <= high


#: More films than any site labels: a larger count is a damaged file (10**30 broke the interval's computation).
MAX_COUNT = 10**9


def is_whole(v) -> bool:
    """A count: an int (not a bool) from 0 to MAX_COUNT."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT


def are_verdict_counts(c) -> bool:
    """{"tp", "fn", "fp", "tn"}, each a count."""
    return isinstance(c, dict) and all(is_whole(c.get(k)) for k in ("tp", "fn", "fp", "tn"))


def are_call_counts(c) -> bool:
    """{labelled class: {called class: count}}, as ``site.call_counts`` writes it."""
    return isinstance(c, dict) and all(isinstance(label, str) and isinstance(row, dict) and all(
        isinstance(called, str) and is_whole(n) for called, n in row.items()) for label, row in c.items())


#: The largest magnitude a site head's number may have, and the smallest scale. Fitted heads hold features' means
#: and scales (a standard deviation plus 1e-6) of about 1e-6 to 10 and coefficients under 1; a hand edit of 1e308
#: made the head's probability NaN, which read as a negative verdict. Within these bounds the head's sum stays finite.
HEAD_LIMIT, HEAD_SCALE_FLOOR = 1e6, 1e-9


def _numbers(v, low: float = -math.inf, high: float = math.inf) -> bool:
    return isinstance(v, list) and bool(v) and all(_number(x, low, high) for x in v)


def _is_head(h) -> bool:
    """A logistic head as validate-site writes it: equal-length number lists, positive scales, an intercept."""
    return (isinstance(h, dict) and all(_numbers(h.get(k), -HEAD_LIMIT, HEAD_LIMIT) for k in ("mean", "coef"))
            and _numbers(h.get("scale"), HEAD_SCALE_FLOOR, HEAD_LIMIT)
            and _number(h.get("intercept"), -HEAD_LIMIT, HEAD_LIMIT)
            and len({len(h["mean"]), len(h["scale"]), len(h["coef"])}) == 1)


def _damage(site: Site) -> str:
    """What makes a site file's content unusable (a hand edit, a broken copy), or ""."""
    if site.threshold is not None and not _number(site.threshold, -math.inf, math.inf):
        return f"threshold {site.threshold!r} is not a number"
    if site.temperature is not None and not _number(site.temperature, 1e-3, 1e3):
        return f"temperature {site.temperature!r} is not a positive number"
    for name, h in (("head", site.head), ("pneumonia head", site.pneumonia_head)):
        if h is not None and not _is_head(h):
            return f"its {name} is not a set of equal-length number lists with positive scales and an intercept"
    if site.head is not None and site.threshold is None:
        return "its head has no threshold"
    if site.calls is not None and not are_call_counts(site.calls):
        return "its counts of the calls are not whole numbers by labelled and called class"
    if site.ood_means is not None and not (isinstance(site.ood_means, dict) and all(
            isinstance(v, list) and all(_numbers(m) for m in v) for v in site.ood_means.values())):
        return "its familiarity means are not lists of number lists"
    if site.counts is not None and not are_verdict_counts(site.counts):
        return "its verdict counts are not four whole numbers"
    for name, f in (("sensitivity", site.sensitivity), ("specificity", site.specificity), ("AUC", site.auc)):
        if f is not None and not (isinstance(f, dict) and all(f.get(k) is None or _number(f[k], 0.0, 1.0)
                                                               for k in ("value", "low", "high"))):
            return f"its {name} is not a share from 0 to 1"
        if name != "AUC" and f is not None and f.get("value") is not None and not (
                f.get("low") is not None and f.get("high") is not None and f["low"] <= f["value"] <= f["high"]):
            return f"its {name} has no 95% interval around it"  # without one, too few films would go unnoticed
    return ""


def _misfit(site: Site, classifier) -> str:
    """What in a site file does not fit this classifier's feature sizes (a file from another version), or ""."""
    from .models import last_linear

    width = last_linear(classifier.model).in_features
    for name, head in (("head", site.head), ("pneumonia head", site.pneumonia_head)):
        if head is not None and len(head["coef"]) != width:
            return f"its {name} takes {len(head['coef'])} features, the model gives {width}"
    if site.pneumonia_head is not None and not makes_call(classifier.classes):
        return f"it has a pneumonia head, and the model's classes are {', '.join(classifier.classes)}"
    covid = COVID_CLASS.get(classifier.target) is not None
    if site.call_only and covid:
        return "it validated only the call between normal and pneumonia, and the model gives COVID-19 verdicts"
    if not site.call_only and not covid:
        return "it validated COVID-19 verdicts, and the model has no COVID-19 class"
    parts = {part["name"]: part for part in (classifier.ood or {}).get("parts", [])}
    for name, extra in (site.ood_means or {}).items() if parts else ():  # an older reference takes no site means
        part = parts.get(name)
        if part is None:
            return f"its familiarity means are for a part ({name!r}) the model does not have"
        wanted = int(part["means"].shape[1])
        if any(len(m) != wanted for m in extra):
            return f"its familiarity means for {name!r} are not {wanted} long"
    return ""


def load_classifier_at_site(path: str | Path, site: str | Path | None = None, verdicts_unvalidated: bool = False):
    """covid_core.checkpoint.load_classifier, with the site file ``site`` applied when given (refused, with a
    ConfigError, when it was made for another checkpoint). Without a site file, a COVID-19 model withholds its
    verdicts unless ``verdicts_unvalidated`` (research use; see covid_core.inference.verdict_needs_site)."""
    from .checkpoint import load_classifier

    classifier = load_classifier(path)
    classifier.verdicts_unvalidated = bool(verdicts_unvalidated)
    if site is not None:
        applied = load_site(site, path)
        problem = _misfit(applied, classifier)
        if problem:
            raise ConfigError(f"{Path(site).name} does not fit this model ({problem}); validate it at the site again")
        classifier.site = applied
    return classifier
