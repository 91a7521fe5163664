"""Is the call between normal and pneumonia worth saying at a site? Validate on a draw, measure on the rest.

A three-class model's first line under a negative COVID-19 verdict names a normal film ("No pneumonia seen") or
pneumonia of another cause. Site validation counts how that call did on the site's films and may fit a head for it
(covid_core.site.pneumonia_step); Diagnose names the call only where the counts confirm it
(covid_core.site_file.call_problem). This checks both on films the validation never saw: the site and its halves
are bench/site_validation.py's (``--unseen SOURCE``: a source the model was trained without, and TEST's COVID-19
films), the draws from half A bench/site_size.py's (``--sizes COVID:OTHER``, whole patients). For each draw it prints
whether the report confirmed the call, and on half B, among the films labelled normal or pneumonia that get a
negative verdict: how often the call named each right (and their mean, the balanced accuracy), with the site file
and with the network's own call at the shipped threshold.

    python bench/site_call.py --data DATA_DIR --unseen nih --model WITHOUT_NIH.pt --sizes 10:20,10:40,20:80,all:all

A model without a COVID-19 class (``--target pneumonia``) makes only that call, on every film it does not withhold:
its site is SOURCE's films alone (they count COVID-19 as pneumonia; SOURCE has none), ``--sizes`` counts pneumonia
and normal films (PNEUMONIA:NORMAL), and every film that is not withheld counts.

The films are copied to a temporary folder (deleted at the end), never into the project.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from site_size import drawn_sites, parse_draw_arguments, size_text  # noqa: E402 (bench/ on the path)
from site_validation import build_halves, prepared  # noqa: E402


def call_rates(classifier, films) -> tuple[tuple[int, int], tuple[int, int]]:
    """((normal films called normal, normal films), (pneumonia films called pneumonia, pneumonia films)) among the
    films of ``films`` (``prepared``) labelled normal or pneumonia that get a negative verdict from ``classifier``
    (its site file applied, if any; without one, at the shipped threshold; a model without a COVID-19 class gives
    none, so every film counts) and are not withheld."""
    from covid_core.inference import call_indices, score_pixels
    from covid_core.targets import COVID_CLASS

    table, pixels = films
    s = score_pixels(classifier, pixels)
    site, classes, covid = classifier.site, classifier.classes, COVID_CLASS.get(classifier.target)
    positive = np.zeros(len(table), bool)
    if covid is not None:
        threshold = site.threshold if site is not None and site.threshold is not None else classifier.threshold["value"]
        positive = s.covid >= threshold
    withheld = (s.ood > classifier.ood["threshold"]) if s.ood is not None else np.zeros(len(table), bool)
    called = call_indices(s.call_scores(classes), positive, None if covid is None else classes.index(covid))
    label = np.array([classes.index(c) for c in table.label])
    out = []
    for name in ("normal", "pneumonia"):
        i = classes.index(name)
        rows = (label == i) & ~positive & ~withheld
        out.append((int((called[rows] == i).sum()), int(rows.sum())))
    return tuple(out)


def rates_text(rates) -> str:
    (kn, n), (kp, p) = rates
    if not n or not p:
        return "n/a"
    return f"{kn / n:.3f} ({kn} of {n}) / {kp / p:.3f} ({kp} of {p}) / {(kn / n + kp / p) / 2:.3f}"


def main() -> int:
    from covid_core.checkpoint import load_classifier
    from covid_core.site import validate_site
    from covid_core.site_file import call_problem, load_classifier_at_site, makes_call
    from covid_core.targets import COVID_CLASS

    ap, args, sizes = parse_draw_arguments(__doc__, "10:20,10:40,20:80,all:all", draws=3)
    classifier = load_classifier(args.model)
    if not makes_call(classifier.classes):
        ap.error(f"{args.model} makes no call between normal and pneumonia ({classifier.classes})")
    covid = COVID_CLASS.get(classifier.target)
    counted = ("normal", "pneumonia") + ((covid,) if covid else ())
    first = covid or "pneumonia"  # the films --sizes counts first
    work = Path(tempfile.mkdtemp(prefix="site_call_"))
    try:
        halves = build_halves(args.data, classifier.target, args.seed, work, args.unseen)
        a, films_b = halves["A"], prepared(classifier, work / "B")
        classifier.verdicts_unvalidated = True  # the network's own call, for comparison
        print(f"{Path(args.model).name}; half A {len(a)} films, half B {len(films_b[0])}; on half B the network's "
              f"own call (normal right / pneumonia right / mean): {rates_text(call_rates(classifier, films_b))}\n")
        print(f"| {'COVID-19 : other' if covid else 'pneumonia : normal'} films asked | draw | films used "
              f"({' / '.join(counted)}) | head fitted | call confirmed by the report | on half B with the site file: "
              "normal right / pneumonia right / mean |")
        print("|---|---|---|---|---|---|")
        for size, d, rows, folder in drawn_sites(a, first, sizes, args.draws, args.seed, work):
            report = validate_site(classifier, folder, name=folder.name, seed=d)
            site_file = work / f"{folder.name}.json"
            site_file.write_text(json.dumps(report))
            at_site = load_classifier_at_site(args.model, site=site_file)
            problem = call_problem(report["after"].get("calls"), call_only=covid is None)
            used = " / ".join(str(int((rows.label == c).sum())) for c in counted)
            asked = size_text(size)
            head = "yes" if "pneumonia_head" in report["parameters"] else "no"
            print(f"| {asked} | {d} | {used} | {head} | {'yes' if not problem else 'no: ' + problem} | "
                  f"{rates_text(call_rates(at_site, films_b))} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
