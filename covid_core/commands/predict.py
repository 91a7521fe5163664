"""Classify chest X-ray files (PNG, JPEG, BMP, TIFF, DICOM) with a checkpoint.

Writes one row per image: filename (its path in the folder given where file names repeat), label, p_<class>
for every class, covid_verdict (positive, negative, or withheld when the image is out of distribution or the
model is not validated at this hospital), ood_flagged, error, withheld_why (why a verdict is withheld, in a few
words: "the model is not validated at this hospital", "the image is unlike the training X-rays", "the image may be
turned or inverted", ...; empty where a verdict is given). A bad file gets its reason in `error`; the others
still get predictions. A COVID-19 model gives verdicts only with a --site file from validate-site, or with
--unvalidated (research use); without either every verdict is withheld and the reason goes to standard error
(label and probabilities stay the model's raw output). With --site four more columns before withheld_why: site
(its name), site_covid_score and site_threshold, the score and threshold the verdict was decided with there;
where validate-site fitted a head, that score is the head's, not p_covid19; and site_pneumonia_score, the
probability of pneumonia rather than a normal film by the head the site fitted for that call (empty without one),
which then decides the label between the two. Where the site's films do not confirm the call between normal and
pneumonia, standard error says so for the films with a negative verdict (for a model without a COVID-19 class, for
every film; also when no --site file validates such a model's call).
Exit code 0 unless every file failed. --format submission writes the data challenge's
filename,label with positive/negative (COVID-19 at the model's stored threshold).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from pathlib import Path

from ..decode import SUPPORTED_FORMATS
from ..formatting import printable
from ..outputs import output_file
from . import add_site_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="classifier checkpoint (.pt)")
    p.add_argument("paths", nargs="+", metavar="PATH", help=f"image files or folders ({SUPPORTED_FORMATS})")
    p.add_argument("--out", default=None, help="CSV file to write (default: print to standard output)")
    add_site_arguments(p)
    p.add_argument("--format", choices=("full", "submission"), default="full",
                   help="full: all probabilities; submission: filename,label with positive/negative")


def _expand(paths: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, name in the CSV) for every image: its file name, as the CSV has always had it; where two files
    share a file name (``covid/1.png`` and ``normal/1.png`` in one folder), their path inside the folder given.
    Also the files in the given folders that are not images (their paths inside the folder), to be named."""
    from collections import Counter

    from ..datasets import is_image_file

    files, others = [], []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(f for f in p.rglob("*") if f.is_file()):
                if is_image_file(f):
                    files.append((f, f.relative_to(p).as_posix()))
                elif not f.name.startswith("."):  # .DS_Store and the like go unmentioned
                    others.append(f.relative_to(p).as_posix())
        else:
            files.append((p, p.name))
    shared = {name for name, n in Counter(f.name for f, _ in files).items() if n > 1}
    return [(f, inside if f.name in shared else f.name) for f, inside in files], others


class _SafeWriter:
    """A csv writer whose text cells are spreadsheet-safe (file names and errors come from users), and, for a
    terminal (standard output), free of control characters."""

    def __init__(self, writer, terminal: bool):
        self._writer, self._terminal = writer, terminal

    def writerow(self, row):
        from ..csv_safe import safe_cell

        cells = [safe_cell(v) for v in row]
        self._writer.writerow([printable(c) for c in cells] if self._terminal else cells)


SITE_COLUMNS = ["site", "site_covid_score", "site_threshold", "site_pneumonia_score"]


def _site_cells(clf, p) -> list:
    """The site columns of a film: the site's name, the score and threshold its verdict was decided with, and the
    score of the site's head for the call between normal and pneumonia (each empty for a film that could not be
    scored, ``p`` None, or where the site has no such score)."""
    if clf.site is None:
        return []
    values = (None,) * 3 if p is None else (p.covid_probability, p.threshold, p.pneumonia_probability)
    return [clf.site.name] + ["" if v is None else f"{v:.6f}" for v in values]


def _withheld_why(p) -> str:
    """Why a verdict is withheld, in a few words (the results table's and the headline's reason, without "No
    verdict: "): "the model is not validated at this hospital", "the image is unlike the training X-rays", ...;
    "" when a verdict is given."""
    return p.verdict.removeprefix("No verdict: ") if p.covid_call == "withheld" else ""


def _write_rows(out, args: argparse.Namespace, clf, results) -> None:
    """The CSV: a header, then one row per film (``args.format``: full, or submission's filename,label)."""
    writer = _SafeWriter(csv.writer(out), terminal=not args.out)
    if args.format == "submission":
        writer.writerow(["filename", "label"])
    else:
        writer.writerow(["filename", "label", *[f"p_{c}" for c in clf.classes], "covid_verdict", "ood_flagged",
                         "error", *(SITE_COLUMNS if clf.site is not None else []), "withheld_why"])
    for r in results:
        p = r.prediction
        if args.format == "submission":
            writer.writerow([r.name, "" if p is None else ("positive" if p.covid_positive else "negative")])
            continue
        if p is None:
            writer.writerow([r.name, "", *[""] * len(clf.classes), "", "", r.error, *_site_cells(clf, p), ""])
        else:
            writer.writerow([r.name, p.call, *[f"{p.probabilities[c]:.6f}" for c in clf.classes], p.covid_call,
                             "" if p.ood_flagged is None else str(p.ood_flagged).lower(), "", *_site_cells(clf, p),
                             _withheld_why(p)])


def main(args: argparse.Namespace) -> int:
    from ..site_file import load_classifier_at_site
    from ..errors import ConfigError
    from ..case import open_cases
    from ..inference import verdict_needs_site

    out_path = output_file(args.out, flag="--out") if args.out else None  # before the work, not after it
    clf = load_classifier_at_site(args.model, site=args.site, verdicts_unvalidated=args.unvalidated)
    files, others = _expand(args.paths)
    if others:
        print(f"skipped {len(others)} file(s) in the given folders that are not images (PNG, JPEG, TIFF, BMP or "
              f"DICOM): {printable(', '.join(others[:5]))}{' ...' if len(others) > 5 else ''}", file=sys.stderr)
    if not files:
        raise ConfigError("no image files found in the given paths")
    if args.format == "submission" and clf.threshold.get("class") is None:
        raise ConfigError(f"--format submission needs a model with a COVID-19 class; this one predicts {clf.classes}")
    if args.format == "submission" and verdict_needs_site(clf):
        raise ConfigError("--format submission gives every film a positive/negative verdict, which this model gives "
                          "only where it is validated: add --site SITE_FILE (from validate-site), or --unvalidated "
                          "for research use")
    results = open_cases([str(f) for f, _ in files], [name for _, name in files], clf, keep_images=False)
    out = open(out_path, "w", newline="") if out_path else sys.stdout
    try:
        _write_rows(out, args, clf, results)
        out.flush()  # a full disk shows here, not in a close that could not say which file
    except OSError as exc:
        raise ConfigError(f"could not write {out_path or 'standard output'}: {exc.strerror or exc}; "
                          "what was written is incomplete") from exc
    finally:
        if out_path:
            with contextlib.suppress(OSError):  # already said above, if writing failed
                out.close()
    failed = sum(r.error is not None for r in results)
    if args.format == "full" and any(r.prediction is not None and r.prediction.not_validated for r in results):
        from ..verdict import NOT_VALIDATED_REASON

        print("covid_verdict withheld: no --site file validates this model at this hospital. "
              + NOT_VALIDATED_REASON, file=sys.stderr)
    if clf.site is not None and not clf.site.confirmed and any(
            r.prediction is not None and r.prediction.covid_call in ("positive", "negative") for r in results):
        from ..verdict import site_doubt_sentence

        print(f"covid_verdict at {clf.site.name}: " + site_doubt_sentence(clf.site, "the site's"), file=sys.stderr)
    unconfirmed_calls = [r.name for r in results if r.prediction is not None and r.prediction.call_unconfirmed
                         and r.prediction.covid_call == "negative"]
    if unconfirmed_calls:  # the label column names a call that Diagnose does not say there
        print(f"label at {clf.site.name}: for {len(unconfirmed_calls)} film(s) with a negative verdict the label's "
              f"call between normal and pneumonia is not confirmed there ({clf.site.call_problem}); the app reads "
              "them \"Not COVID-19-like\": read those films for pneumonia of another cause", file=sys.stderr)
    called = any(r.prediction is not None and not r.prediction.withheld for r in results)
    if called and clf.threshold.get("class") is None and clf.site is None:  # a model without a COVID-19 class
        print("label unconfirmed: no --site file validates this model's call between normal and pneumonia at this "
              "hospital (make one with validate-site); the app marks each call unconfirmed", file=sys.stderr)
    if called and clf.site is not None and clf.site.call_only and clf.site.call_problem:
        print(f"label at {clf.site.name}: this model's call between normal and pneumonia is not confirmed there "
              f"({clf.site.call_problem}); the app marks each call unconfirmed", file=sys.stderr)
    if any(r.prediction is not None and r.prediction.unconfirmed for r in results):
        print("covid_verdict unconfirmed: --unvalidated verdicts come from a model that no site file has validated "
              "at this hospital (research use); at hospitals it never saw, such models call many normal adults "
              "COVID-19", file=sys.stderr)
    for r in results:
        if r.error:
            print(f"{printable(r.name)}: {printable(r.error)}", file=sys.stderr)
        elif r.prediction.withheld_why:  # turned, another kind of film or a raw image (DICOM header)
            print(f"{printable(r.name)}: no verdict: {r.prediction.withheld_why}", file=sys.stderr)
    print(f"{len(results) - failed} of {len(results)} images classified"
          + (f", {failed} failed (see the error column)" if failed else "")
          + (f"; wrote {args.out}" if args.out else ""), file=sys.stderr)
    return 1 if failed == len(results) else 0
