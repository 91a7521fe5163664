"""How many labelled films does site validation need? Validate on fewer of a site's films, measure on the rest.

The site and its halves are bench/site_validation.py's (``--unseen SOURCE``: every film of a source the model never
saw, and TEST's COVID-19 films; else TEST's films of the adult sources). From half A, whole patients are drawn at
random until each class has the films asked for (``--sizes COVID:OTHER,...``; "all" takes every film of that class),
``--draws`` times per size; ``validate-site`` runs on each draw, and half B, which no draw touches, is scored with
the site file it made. Printed per draw: what the report estimated (sensitivity and specificity counting the films
that get a verdict, cross-validated on the draw, with their counts and the low ends of their 95% intervals), whether
it warned that the model is poor there or the films too few to know, and what half B then found, with the share of
its films given a wrong verdict (withheld verdicts are not wrong). Without a site file the model gives no verdict,
so a draw that does worse than its estimate is what a clinician would be misled by.

    python bench/site_size.py --data DATA_DIR --unseen nih --model WITHOUT_NIH.pt --sizes 10:10,10:40,19:80,all:all

The films are copied to a temporary folder (deleted at the end), never into the project.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from site_validation import build_halves, copy_films, decisions, prepared, rates  # noqa: E402 (bench/ on the path)


def parse_sizes(text: str) -> list[tuple[int | None, int | None]]:
    """"10:40,all:all" -> [(10, 40), (None, None)]: COVID-19 and other films per draw, None for all of them."""
    sizes = []
    for part in text.split(","):
        covid, _, other = part.strip().partition(":")
        if not other:
            raise ValueError(f"size {part!r} is not COVID:OTHER (for example 10:40 or all:all)")
        sizes.append(tuple(None if v == "all" else int(v) for v in (covid, other)))
    return sizes


def size_text(size: tuple[int | None, int | None]) -> str:
    """A draw's size as ``--sizes`` writes it: (10, None) -> "10:all"."""
    return ":".join("all" if v is None else str(v) for v in size)


def parse_draw_arguments(doc: str, sizes: str, draws: int):
    """(the parser, its arguments, the sizes parsed) of a bench that validates on draws of a site's half A: --data,
    --model, --unseen, --sizes, --draws and --seed."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="weights/resnet18.pt")
    ap.add_argument("--unseen", default="", help="a source the model was trained without (its --holdout-source)")
    ap.add_argument("--sizes", default=sizes)
    ap.add_argument("--draws", type=int, default=draws)
    ap.add_argument("--seed", type=int, default=0, help="the halves' split, as bench/site_validation.py's")
    args = ap.parse_args()
    try:
        return ap, args, parse_sizes(args.sizes)
    except ValueError as exc:
        ap.error(str(exc))


def draw_patients(rows, covid_class: str, size: tuple[int | None, int | None], rng) -> set[str]:
    """Patients of ``rows`` drawn at random, whole, until the COVID-19 and the other films reach ``size``."""
    chosen = set()
    for is_covid, wanted in ((True, size[0]), (False, size[1])):
        part = rows[(rows.label == covid_class) == is_covid]
        patients = part.patient.astype(str).unique()
        if wanted is None:
            chosen |= set(patients)
            continue
        films = part.patient.astype(str).value_counts()
        got = 0
        for patient in rng.permutation(patients):
            if got >= wanted:
                break
            chosen.add(patient)
            got += int(films[patient])
    return chosen


def drawn_sites(a, covid_class: str, sizes, draws: int, seed: int, work: Path):
    """Each draw from half A's rows ``a``: (its size, its number, its rows, the folder under ``work`` its films
    were copied to); ``draws`` per size, one for "all:all"."""
    rng = np.random.default_rng(seed)
    for size in sizes:
        for d in range(1 if size == (None, None) else draws):
            folder = work / f"draw-{size[0]}-{size[1]}-{d}"
            rows = a[a.patient.astype(str).isin(draw_patients(a, covid_class, size, rng))]
            copy_films(rows, folder)
            yield size, d, rows, folder


def estimate(report: dict) -> list[tuple[int, int]]:
    """The report's [(COVID-19 films caught, COVID-19 films), (others cleared, others)] after adaptation, counting
    the films given a verdict."""
    after = report.get("after") or {}
    c = (after.get("given") or {}).get("counts") or after.get("counts") or {}
    tp, fn, tn, fp = (int(c.get(k, 0)) for k in ("tp", "fn", "tn", "fp"))
    return [(tp, tp + fn), (tn, tn + fp)]


def estimate_text(hits: int, n: int) -> str:
    """"0.875 (7 of 8; 95% interval from 0.53)": a rate, its count and the low end of its Wilson interval."""
    from covid_core.metrics import proportion_interval

    return f"{hits / n:.3f} ({hits} of {n}; from {proportion_interval(hits, n)[0]:.2f})" if n else "n/a"


def measured(y, positive, withheld) -> tuple[float, float, float]:
    """(sensitivity, specificity) among the films given a verdict, and the share of all films given a wrong one."""
    given = ~withheld
    return (*rates(y[given], positive[given]), float((given & (positive != y)).mean()))


def main() -> int:
    from covid_core.checkpoint import load_classifier
    from covid_core.site import validate_site
    from covid_core.site_file import load_classifier_at_site
    from covid_core.targets import COVID_CLASS

    ap, args, sizes = parse_draw_arguments(__doc__, "10:10,10:40,19:80,all:all", draws=4)
    classifier = load_classifier(args.model)
    covid = COVID_CLASS[classifier.target]
    work = Path(tempfile.mkdtemp(prefix="site_size_"))
    try:
        halves = build_halves(args.data, classifier.target, args.seed, work, args.unseen)
        a, films_b = halves["A"], prepared(classifier, work / "B")
        y, shipped, withheld, _ = decisions(classifier, work / "B", films_b)
        print(f"{Path(args.model).name}; half A {len(a)} films ({int((a.label == covid).sum())} COVID-19), half B "
              f"{len(y)} ({int(y.sum())} COVID-19); without a site file every verdict is withheld; with verdicts "
              f"forced (research), wrong on {100 * measured(y, shipped, withheld)[2]:.1f}% of B's films\n")
        print("| COVID-19 : other films asked | draw | films used (COVID-19 / other) | s | report's estimate (sens / "
              "spec; count; low end of the 95% interval) | warning before it is made active | on half B: sens / spec "
              "of the verdicts given | half B given a wrong verdict |")
        print("|---|---|---|---|---|---|---|---|")
        for size, d, rows, folder in drawn_sites(a, covid, sizes, args.draws, args.seed, work):
            started = time.perf_counter()
            report = validate_site(classifier, folder, name=folder.name, seed=d)
            seconds = time.perf_counter() - started
            site_file = work / f"{folder.name}.json"
            site_file.write_text(json.dumps(report))
            at_site = load_classifier_at_site(args.model, site=site_file)
            sens, spec, wrong = measured(*decisions(at_site, work / "B", films_b)[:3])
            est = " / ".join(estimate_text(*part) for part in estimate(report))
            n_covid = int((rows.label == covid).sum())
            asked = size_text(size)
            site = at_site.site
            warned = "poor" if site.poor else "too few films" if site.unsettled else "no"
            print(f"| {asked} | {d} | {n_covid} / {len(rows) - n_covid} | {seconds:.0f} | {est} | {warned} | "
                  f"{sens:.3f} / {spec:.3f} | "
                  f"{100 * wrong:.1f}% |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
