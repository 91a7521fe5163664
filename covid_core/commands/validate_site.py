"""Validate a classifier on a hospital's own labelled films, adapt what it safely can, write a site file.

FOLDER holds the site's films in any layout `evaluate` reads (class folders such as normal/ and covid19/, with
or without a test/ level; the CoronaHack layout; a folder of images with a filename,label CSV). Any subset of
the classes may be present. Broken and duplicate files are reported and skipped. Prints the figures before and
after adaptation with 95% intervals and writes the site file (plain JSON: no images, no patient data), which
`predict`, `evaluate` and `explain` apply with --site. --films-out also writes one row per film for the site's
own review (its file names stay out of the site file). A normal/pneumonia model (no COVID-19 class) is validated on
its call between normal and pneumonia, the only one it makes (COVID-19 films count as pneumonia).
"""

from __future__ import annotations

import argparse
import json

from ..outputs import output_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets import LAYOUTS

    p.add_argument("--model", required=True, help="classifier checkpoint (.pt)")
    p.add_argument("--data", required=True, help="the site's labelled films")
    p.add_argument("--out", required=True, help="site file to write (JSON)")
    p.add_argument("--name", default="", help="the site's name (default: the folder's name)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help="data set layout")
    p.add_argument("--target-sensitivity", type=float, default=0.90,
                   help="COVID-19 sensitivity the site's operating point aims for (not used for a model without "
                        "a COVID-19 class)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds and the bootstrap")
    p.add_argument("--films-out", default=None,
                   help="also write one row per film (CSV: file, label, score, verdict, call in words and whether "
                        "each was right, shipped and after adaptation) for the site's own review; the site file "
                        "names no file")


def _ci(f: dict | None) -> str:
    if not f or f.get("value") is None:
        return "n/a"
    text = f"{f['value']:.3f}"
    if f.get("low") is not None:
        text += f" (95% CI {f['low']:.3f}-{f['high']:.3f})"
    return text


def main(args: argparse.Namespace) -> int:
    from ..checkpoint import load_classifier
    from ..formatting import counts_text, printable
    from ..site import validate_site_with_films
    from ..site_job import (call_only, call_rows, call_text, films_used_text, given_rates_text, poor_site_warning,
                            predictive_values_text, sample_size_text)

    out = output_file(args.out, ".json")
    films_out = output_file(args.films_out, ".csv", "--films-out") if args.films_out else None
    classifier = load_classifier(args.model)
    report, films = validate_site_with_films(classifier, args.data, name=args.name,
                                             target_sensitivity=args.target_sensitivity, layout=args.layout,
                                             seed=args.seed)
    print(f"site \"{report['site']}\": {films_used_text(report)} used ({counts_text(report['counts'])})")
    for p in report["problems"]:
        print(f"  skipped {printable(p['file'])}: {printable(p['problem'])}")
    for when in ("before", "after"):
        f = report[when]
        extra = ""
        if when == "before" and f.get("ood_flagged") is not None:
            extra = f", flagged as unfamiliar {100 * f['ood_flagged']:.0f}%"
        verdicts = "the call only (no COVID-19 class)" if call_only(report) else (
            f"COVID-19 sensitivity {_ci(f['sensitivity'])}, specificity {_ci(f['specificity'])}, AUC {_ci(f['auc'])}")
        print(f"{when}: {verdicts}" + (f", calibration error {f['ece']:.3f}" if f.get("ece") is not None else "")
              + extra + (f" [{f['estimated_by']}]" if f.get("estimated_by") else ""))
    for text in (given_rates_text(report), predictive_values_text(report), sample_size_text(report),
                 poor_site_warning(report)):
        if text:
            print(text)
    for row in call_rows(report):  # how the call in words did, by labelled class
        when, label = row.pop(""), row.pop("labelled")
        print(f"{when}, labelled {label}: " + ", ".join(f"{n} {called}" for called, n in row.items()))
    if call_text(report):
        print(call_text(report))
    for line in report["adapted"]:
        print(f"adapted: {line}")
    for line in report["skipped"]:
        print(f"not adapted: {line}")
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    if films_out:
        films.to_csv(films_out, index=False)
        print(f"wrote {films_out} ({len(films)} films)")
    return 0
