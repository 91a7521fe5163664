"""Site validation as a background thread for the Validate page, and its report as table rows (no Streamlit)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from .digests import file_sha256
from .errors import ConfigError, CovidCoreError
from .saved_validations import SavedValidation, load_validation, made_for, save_validation
from .site import validate_site_with_films
from .site_file import (CALL_ONLY, PNEUMONIA_ANY_CAUSE, are_call_counts, are_verdict_counts, call_problem,
                        calls_right, is_whole, poor_figures, unsettled_figures)
from .stored_values import section, share


class ValidationJob:
    """:func:`~covid_core.site.validate_site` in a thread of its own, so the page stays usable and shows progress.

    Plain attributes the page polls: ``done``/``total`` films scored, then ``report`` and ``films`` (one row per
    film, for the site's own review) or ``error`` (a sentence, never a traceback). ``cleanup`` is a folder removed
    when the job ends (an unpacked zip).
    """

    def __init__(self, classifier, folder, *, model: str, name: str, target: float, cleanup: str | None = None,
                 store: Path | None = None):
        self.model, self.done, self.total, self.report, self.films, self.error = model, 0, 0, None, None, None
        self.name, self.started, self._store = name, time.time(), store
        self.thread = threading.Thread(target=self._run, args=(classifier, folder, name, target, cleanup),
                                       daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self, classifier, folder, name, target, cleanup) -> None:
        try:
            self.report, self.films = validate_site_with_films(classifier, folder, name=name,
                                                               target_sensitivity=target, on_progress=self._progress)
            if self._store is not None:
                try:
                    save_validation(self._store, self)
                except OSError:  # a full or read-only disk: the report stays on the page until the server stops
                    pass
        except CovidCoreError as exc:
            self.error = str(exc)
        except Exception as exc:  # never a traceback in the page
            self.error = f"the validation failed ({type(exc).__name__}: {str(exc)[:200]})"
        finally:
            if cleanup:
                shutil.rmtree(cleanup, ignore_errors=True)


class ValidationJobs:
    """The server's site validations, shared by every page and browser tab: one runs at a time (each keeps the CPU
    busy for minutes), and the newest of each model stays here, running or finished, so that a reloaded page or
    another tab shows its progress, then its report, instead of losing it and starting it again. With a ``store``
    folder, a finished validation is also saved there, and a restarted server shows the newest of each model."""

    def __init__(self, store: str | Path | None = None):
        self._lock = threading.Lock()
        self._newest: dict[str, ValidationJob | SavedValidation] = {}
        self._store = Path(store) if store is not None else None
        self._digests: dict[str, tuple[tuple[int, int], str]] = {}  # model: (its file's (mtime, size), sha256)
        self._looked_up: dict[str, str | None] = {}  # model: the checkpoint digest the store was last read for

    def start(self, classifier, folder, *, model: str, name: str, target: float,
              cleanup: str | None = None) -> ValidationJob:
        """A new :class:`ValidationJob`; ConfigError (nothing started) while another validation runs."""
        with self._lock:
            running = next((job for job in self._newest.values() if job.running), None)
            if running is not None:
                scored = f"{running.done} of {running.total} films scored" if running.total else "starting"
                raise ConfigError(f"the validation of site {running.name!r} is still running ({scored}); one "
                                  "validation runs at a time on this server: wait for it to finish")
            job = self._newest[model] = ValidationJob(classifier, folder, model=model, name=name, target=target,
                                                      cleanup=cleanup, store=self._store)
            return job

    def newest(self, model: str) -> ValidationJob | SavedValidation | None:
        """The newest validation of ``model`` (its checkpoint's path), running or finished (also one saved before
        the server restarted), or None. A finished one made for another checkpoint than the one now at that path
        (the model was retrained or replaced since) is forgotten: its site file would not fit the model."""
        with self._lock:
            digest = self._digest(model)
            entry = self._newest.get(model)
            if entry is not None and entry.report is not None and made_for(entry.report) != digest:
                del self._newest[model]
                entry = None
            if entry is None and self._store is not None and self._looked_up.get(model, "") != digest:
                self._looked_up[model] = digest  # read the store again only once the checkpoint changes
                entry = load_validation(self._store, model, digest)
                if entry is not None:
                    self._newest[model] = entry
            return entry

    def _digest(self, model: str) -> str | None:
        """The sha256 of the checkpoint at ``model``, hashed again only when its time or size changes; None when it
        cannot be read."""
        try:
            stat = Path(model).stat()
            key = (stat.st_mtime_ns, stat.st_size)
            if self._digests.get(model, (None, ""))[0] != key:
                self._digests[model] = (key, file_sha256(model))
        except OSError:
            return None
        return self._digests[model][1]


SWAPPED_AUC = 0.25  # a shipped AUC this far below chance on labelled films: the labels are probably swapped


def films_used_text(report: dict) -> str:
    """ "120 films of 97 patients": the films a validation used and the patients they come from (told apart by
    provenance.csv, a DICOM header's PatientID or the folder inside a class folder; else each file is one)."""
    films, patients = report.get("films_used"), report.get("patients")
    return f"{films} films" + (f" of {patients} patients" if isinstance(patients, int) and patients > 0 else "")


def poor_site_warning(report: dict) -> str:
    """A warning in words when the model, even after adaptation, does poorly on the site's own films
    (:func:`~covid_core.site_file.poor_figures`, counting the verdicts given where the report says which), or when
    those films are too few to know whether it does (:func:`~covid_core.site_file.unsettled_figures`), and when the
    shipped model's AUC is below SWAPPED_AUC (swapped labels, which a head on the frozen features can learn and
    then look good); "" otherwise or without figures. For a model without a COVID-19 class, whose call between
    normal and pneumonia is all it says, when the site's films do not confirm that call."""
    if call_only(report):
        problem = call_problem(_calls(report, "after"), call_only=True)
        return (f"Your films do not confirm this model's call between normal and pneumonia: {problem}. If you make "
                "this the active site, Diagnose marks each call as unconfirmed here." if problem else "")
    after = section(report, "after")
    rates = _given(report) or after
    sens, spec = (_value(rates, k) for k in ("sensitivity", "specificity"))
    poor = poor_figures(_value(after, "auc"), sens, spec)
    shipped_auc = _value(section(report, "before"), "auc")
    swapped = ""
    if shipped_auc is not None and shipped_auc < SWAPPED_AUC:
        swapped = (f" The shipped model's AUC on your films, {shipped_auc:.2f}, is far below chance: check that the "
                   "labels are not swapped (COVID-19 films in another class's folder, or the other way round).")
    if poor:
        return ("On your films, even after adaptation, " + " and ".join(poor) + ". Making this the active site "
                "would give verdicts that are often wrong; consider not using this model at your hospital." + swapped)
    unsettled = unsettled_figures(rates.get("sensitivity"), rates.get("specificity"))
    if unsettled:
        return ("Your films are too few to confirm this model here: " + " and ".join(unsettled) + ". If you make "
                "this the active site now, its verdicts are marked as unconfirmed; label more films (how many is said "
                "above) and validate again." + swapped)
    return swapped.strip()


def _value(figures: dict, key: str) -> float | None:
    """A section's figure (``{"value": ...}``) from 0 to 1, else None."""
    figure = figures.get(key)
    return share(figure.get("value")) if isinstance(figure, dict) else None


def report_counts(report: dict) -> dict:
    """The site's films by label ({"normal": 60, "covid19": 60}), the labels and counts that are such."""
    counts = report.get("counts")
    return {k: v for k, v in counts.items() if isinstance(k, str) and is_whole(v)} if isinstance(counts, dict) else {}


def adaptation_lines(report: dict) -> list[tuple[str, str]]:
    """("Adapted" or "Not adapted", the report's line) for each thing validation adapted or left as it was."""
    return [(word, line) for word, key in (("Adapted", "adapted"), ("Not adapted", "skipped"))
            for line in (report.get(key) if isinstance(report.get(key), list) else []) if isinstance(line, str)]


def interval_text(f: dict | None) -> str:
    """{"value", "low", "high"} -> "91.0% (84-96%)"; "n/a" without a value."""
    value = share(f.get("value")) if isinstance(f, dict) else None
    if value is None:
        return "n/a"
    low, high = share(f.get("low")), share(f.get("high"))
    ci = f" ({100 * low:.0f}-{100 * high:.0f}%)" if low is not None and high is not None else ""
    return f"{100 * value:.1f}%{ci}"


def call_only(report: dict) -> bool:
    """Whether a site report validated only the call between normal and pneumonia (a model without a COVID-19
    class), not COVID-19 verdicts."""
    return report.get("validates") == CALL_ONLY


def comparison_rows(report: dict) -> list[dict]:
    """The shipped model and the adapted one on the site's films, one row each."""
    if call_only(report):
        return _call_comparison_rows(report)
    rows = []
    for when in ("before", "after"):
        f = section(report, when)
        auc = _value(f, "auc")
        ece = share(f.get("ece"))
        counts = f.get("counts") if isinstance(f.get("counts"), dict) else {}
        rows.append({"": "shipped model" if when == "before" else "after adaptation (cross-validated)",
                     "COVID-19 sensitivity (95% CI)": interval_text(f.get("sensitivity")),
                     "specificity (95% CI)": interval_text(f.get("specificity")),
                     "AUC": "n/a" if auc is None else f"{auc:.3f}",
                     "calibration error": "n/a" if ece is None else f"{ece:.3f}",
                     "counts (TP / FN / FP / TN)": " / ".join(str(counts.get(k, "-"))
                                                              for k in ("tp", "fn", "fp", "tn")),
                     "no verdict": _withheld_text(f.get("given"))})
    return rows


def _call_comparison_rows(report: dict) -> list[dict]:
    """:func:`comparison_rows` of a model without a COVID-19 class: how often its call was right, by label."""
    rows = []
    for when in ("before", "after"):
        f = section(report, when)
        ece = share(f.get("ece"))
        rows.append({"": "shipped model" if when == "before" else "after adaptation (cross-validated)",
                     **_call_rates(_calls(report, when)), "calibration error": "n/a" if ece is None else f"{ece:.3f}",
                     "no call": _withheld_text(f.get("given"))})
    return rows


def _call_rates(calls: dict | None) -> dict:
    """How often the call was right for each label, and their mean (balanced accuracy), as table cells."""
    row, rates = {}, []
    for (right, n), kind in zip(calls_right(calls) if calls else [(0, 0), (0, 0)], ("normal", "pneumonia")):
        row[f"{kind} films called {kind}"] = f"{right} of {n} ({100 * right / n:.0f}%)" if n else "n/a"
        rates += [right / n] if n else []
    row["balanced accuracy"] = f"{sum(rates) / 2:.3f}" if len(rates) == 2 else "n/a"
    return row


def _withheld_text(given: dict | None) -> str:
    if not isinstance(given, dict) or not (is_whole(given.get("films")) and is_whole(given.get("withheld"))):
        return "not counted"  # a site file made before withheld films were counted
    return f"{given['withheld']} of {given['films']}"


def _counts(figures) -> dict | None:
    """A figures section's {"tp", "fn", "fp", "tn"}, or None when it has none or they are not counts (a site file
    edited by hand is read on the Models page too)."""
    c = figures.get("counts") if isinstance(figures, dict) else None
    return c if are_verdict_counts(c) else None


def _given_section(report: dict) -> dict | None:
    """The "after" section on the films that get a verdict, when its counts of films are counts."""
    given = section(report, "after").get("given")
    ok = isinstance(given, dict) and is_whole(given.get("films")) and is_whole(given.get("withheld"))
    return given if ok else None


def _given(report: dict) -> dict | None:
    """The "after" figures counting only the films that get a verdict, when the report has them."""
    given = _given_section(report)
    return given if _counts(given) else None


def _none_given(report: dict) -> bool:
    """Whether every film of the site would get no verdict (after adaptation)."""
    given = _given_section(report)
    return given is not None and given["films"] > 0 and given["withheld"] == given["films"]


def given_rates_text(report: dict) -> str:
    """Sensitivity and specificity (after adaptation, cross-validated) counting only the films that get a verdict,
    in words; "" when every film gets one (the table's figures are then these) or the report has no such count."""
    from .formatting import pct

    if _none_given(report):
        everything = report["after"]["given"]
        return (f"None of these {everything['films']} films gets a verdict: every one looks unlike the training "
                "X-rays, or turned. The model cannot be used on films like these.")
    given = _given(report)
    if not given or not given["withheld"]:
        return ""
    c = given["counts"]
    parts = [f"{name} {pct(hit / (hit + miss))} ({hit} of {hit + miss})" if hit + miss else f"{name} n/a"
             for name, hit, miss in (("sensitivity", c["tp"], c["fn"]), ("specificity", c["tn"], c["fp"]))]
    return (f"{given['withheld']} of these {given['films']} films get no verdict (they look unlike the training "
            f"X-rays, or turned). Counting only the films that get one: COVID-19 " + ", ".join(parts) + ".")


def predictive_values_text(report: dict) -> str:
    """How often the site's verdicts (after adaptation, cross-validated) were right on its own films, in words,
    with the COVID-19 share those figures hold for; "" without counts or without both kinds of film. Only the
    films that get a verdict count, where the report says which."""
    from .verdict import predictive_values_sentence

    if _none_given(report):
        return ""  # no verdict is given, so none can be right or wrong
    given = _given(report)
    counts = _counts(given) or _counts(report.get("after")) or _counts(report.get("before")) or {}
    films = "On these films"
    if given and given["withheld"]:
        films = f"On the {given['films'] - given['withheld']} of these films that get a verdict"
    return predictive_values_sentence(counts, films)


def _calls(report: dict, when: str) -> dict | None:
    """A section's counts of the call in words (``site.call_counts``), when it has them and they are counts."""
    calls = section(report, when).get("calls")
    return calls if are_call_counts(calls) else None


def call_rows(report: dict) -> list[dict]:
    """How the call in words did on the site's films given a verdict, shipped and after adaptation: one row per
    labelled class, a column per call; [] for a report without such counts (a two-class model, an older file)."""
    from .verdict import CALL_WORDS, NO_COVID_CLASS_WORDS

    words = NO_COVID_CLASS_WORDS if call_only(report) else CALL_WORDS
    rows = []
    for when in ("before", "after"):
        calls = _calls(report, when)
        for label, called in (calls or {}).items():
            rows.append({"": "shipped model" if when == "before" else "after adaptation (cross-validated)",
                         "labelled": label, **{f'called "{words.get(c, c)}"': n for c, n in called.items()}})
    return rows


def call_text(report: dict) -> str:
    """Whether Diagnose will name the call between normal and pneumonia at this site, and why, in words; "" for a
    report without counts of the call."""
    calls = _calls(report, "after")
    if calls is None:
        return ""
    if call_only(report):
        return _call_only_text(calls)
    problem = call_problem(calls)
    if problem:
        return ("Under a negative verdict Diagnose will say \"Not COVID-19-like\" here, not whether the film is "
                f"normal or shows pneumonia of another cause: {problem}.")
    (right_n, normal), (right_p, pneumonia) = calls_right(calls)
    return ("Under a negative verdict Diagnose will name the call (\"No pneumonia seen\" or \"Pneumonia, not "
            f"COVID-19-like\") here: on your films given a negative verdict it was right for {right_n} of {normal} "
            f"normal films and {right_p} of {pneumonia} films of pneumonia of another cause.")


def films_to_review(films):
    """The per-film rows of a validation (:func:`~covid_core.site.validate_site_with_films`) a site should look at:
    after adaptation, a wrong verdict or call, or none given."""
    import pandas as pd

    def after(column: str):
        return films.get(f"{column} (after adaptation)", pd.Series("", index=films.index))

    return films[(after("right") == "no") | (after("verdict") == "withheld") | (after("call right") == "no")
                 | (after("call") == "no call")]


def _call_only_text(calls: dict) -> str:
    """:func:`call_text` of a model without a COVID-19 class, whose call is all it says."""
    problem = call_problem(calls, call_only=True)
    if problem:
        return f"Diagnose will mark this model's call as unconfirmed here: {problem}."
    (right_n, normal), (right_p, pneumonia) = calls_right(calls)
    return (f"Diagnose will give this model's call here as validated: on your films given a call it was right for "
            f"{right_n} of {normal} normal films and {right_p} of {pneumonia} films with {PNEUMONIA_ANY_CAUSE}.")


PLANNED_HALF_WIDTH = 0.05  # how closely a site may want to know its sensitivity and its specificity (95% interval)


def films_needed(share: float, half_width: float = PLANNED_HALF_WIDTH) -> int:
    """About how many films (of different patients) give a 95% Wilson interval at most ``2 * half_width`` wide
    around a measured ``share``, counting round(share * n) hits of n: the interval the report gives, which holds at a
    share of 0 or 1, where the normal approximation would say no film is needed. The width shrinks with n (up to the
    rounding of the hits), so the smallest such n is found by bisection."""
    from .metrics import proportion_interval

    def narrow_enough(n: int) -> bool:
        low, high = proportion_interval(round(share * n), n)
        return high - low <= 2 * half_width

    low, high = 1, 100_000
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if narrow_enough(middle) else (middle + 1, high)
    return low


def sample_size_text(report: dict) -> str:
    """How many labelled films would pin the site's sensitivity and specificity down to +/- 5 points, when its films
    are too few for that; "" when they are enough or without counts."""
    c = _counts(report.get("after"))
    if c is None:
        return ""
    needs = []
    for name, kind, hit, miss in (("sensitivity", "COVID-19", c["tp"], c["fn"]),
                                  ("specificity", "other", c["tn"], c["fp"])):
        n = hit + miss
        needed = films_needed(hit / n) if n else 0
        if needed > n:
            needs.append((name, f"about {needed} {kind} films ({name} {100 * hit / n:.0f}% on {n} here)"))
    if not needs:
        return ""
    return (f"To know the {' and '.join(name for name, _ in needs)} within +/-{100 * PLANNED_HALF_WIDTH:.0f} points "
            "(95% interval), label " + " and ".join(text for _, text in needs) + ", each from a different patient, "
            "and validate again.")


def site_history_rows(paths) -> list[dict]:
    """One row per earlier site file (its file name, site, when it was made, films, and the sensitivity and
    specificity after adaptation, counting the verdicts given where it says so); a file that cannot be read gets a
    row that says so."""
    import json

    from .formatting import counts_text
    from .site_file import clean_site_name

    rows = []
    for path in paths:
        try:
            report = json.loads(path.read_text())
            figures = _given(report) or report.get("after") or {}
            row = {"file": path.name, "site": clean_site_name(report.get("site", "site")),
                   "made": str(report.get("created", "")).replace("T", " "),
                   "films": counts_text(report_counts(report))}
            if call_only(report):  # a model without a COVID-19 class: how often its call was right
                row.update(_call_rates(_calls(report, "after")))
            else:
                row.update({"COVID-19 sensitivity": interval_text(figures.get("sensitivity")),
                            "specificity": interval_text(figures.get("specificity"))})
            rows.append(row)
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:  # a damaged file is listed too
            rows.append({"file": path.name, "site": f"unreadable ({type(exc).__name__})"})
    return rows
