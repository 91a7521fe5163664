"""Explain a prediction with a heatmap (Grad-CAM family) and check it can be trusted.

Prints the prediction, the class explained, the faithfulness score (ROAD: probability drop
when the most highlighted pixels are removed) and the share of heatmap energy inside the
estimated thorax, with a warning when the model seems to look outside the chest. Writes
the overlay as a PNG with the original image's width and height.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..explain.cam import CAM_METHODS, DEFAULT_METHOD
from ..outputs import output_file
from . import add_site_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="classifier checkpoint (.pt)")
    add_site_arguments(p)
    p.add_argument("image", metavar="IMAGE", help="chest X-ray file (PNG, JPEG, BMP, TIFF, DICOM)")
    p.add_argument("--out", required=True, help="overlay PNG to write (original width and height)")
    p.add_argument("--method", default=DEFAULT_METHOD, help=f"one of: {', '.join(CAM_METHODS)}")
    p.add_argument("--target-class", default=None,
                   help="class to explain, e.g. covid19 (default: the class of the call: COVID-19 when the verdict is "
                        "positive, else the most probable other class)")
    p.add_argument("--opacity", type=float, default=0.4, help="heatmap opacity in the overlay, 0 to 1")
    p.add_argument("--colormap", default="jet", help="overlay colormap (jet, turbo, inferno, magma, viridis, ...)")


def main(args: argparse.Namespace) -> int:
    import cv2

    from ..site_file import load_classifier_at_site
    from .. import verdict
    from ..case import explain_case, open_case
    from ..explain import COLORMAPS, check_method, class_index, overlay

    method = check_method(args.method)  # fail on a typo before loading anything heavy
    if args.colormap not in COLORMAPS:
        raise ConfigError(f"unknown colormap {args.colormap!r}; choose one of: {', '.join(COLORMAPS)}")
    if not 0.0 <= args.opacity <= 1.0:
        raise ConfigError(f"opacity {args.opacity} is out of range; choose a number from 0 to 1")
    out = output_file(args.out, ".png")
    clf = load_classifier_at_site(args.model, site=args.site, verdicts_unvalidated=args.unvalidated)
    if args.target_class is not None:
        class_index(clf, args.target_class)  # unknown class: one-line error listing the choices
    case = open_case(args.image, Path(args.image).name, clf, max_side=None)  # the overlay at the film's own size
    image, prediction = case.image, case.prediction
    result = explain_case(clf, case, method, args.target_class or prediction.call)
    headline = verdict.headline(prediction)
    caveat = verdict.verdict_caveat(prediction, clf.site)
    print(headline.title + (f"; {headline.covid_line}" if headline.covid_line else "")
          + (f" - {caveat}" if caveat else ""))
    probs = ", ".join(f"{c} {p:.3f}" for c, p in prediction.probabilities.items())
    print(f"prediction: {prediction.label} ({probs})")
    if prediction.pneumonia_probability is not None:  # the call between normal and pneumonia follows the site's head
        print(f"{verdict.SITE_PNEUMONIA_SCORE}: {prediction.pneumonia_probability:.3f}")
    if prediction.covid_positive is not None:
        print(f"{prediction.verdict} (p={prediction.covid_probability:.3f}, threshold {prediction.threshold:.3f})")
    for w in prediction.warnings:
        print(f"warning: {w}")
    if prediction.not_validated:
        print(f"why no verdict: {verdict.withheld_reason(prediction)}")
    for sentence in verdict.verdict_limits(prediction, clf.metadata, verdict.operating_threshold(clf), site=clf.site):
        print(f"what the {'call' if prediction.covid_positive is None else 'verdict'} is worth: {sentence}")
    print(f"validation: {verdict.validation_statement(clf.site, prediction, clf.metadata)}")
    by = f", the score of {result.explained_by}" if result.explained_by else ""
    print(f"explained class: {result.target_class} ({method}{by})")
    faith = "n/a" if result.faithfulness is None else f"{result.faithfulness:+.3f}"
    print(f"faithfulness: {faith} ({result.faithfulness_name})")
    print(f"in-thorax share: {result.thorax_share:.2f} (thorax from {result.thorax_method}); "
          f"border share: {result.border_share:.2f}")
    if result.shortcut_warning:
        print(f"warning: {result.shortcut_warning}")
    rgb = overlay(image.pixels, result.heatmap, args.opacity, args.colormap)
    if not cv2.imwrite(str(out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ConfigError(f"could not write {out}; check the folder is writable")
    print(f"wrote {out} ({rgb.shape[1]}x{rgb.shape[0]})")
    return 0
