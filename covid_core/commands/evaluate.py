"""Evaluate a classifier checkpoint on a data split.

Prints a human summary, then as its LAST line one JSON object:
{"n", "accuracy", "macro_auc", "ece", "classes", "per_class": {class: {"sensitivity", "specificity",
"ppv", "auc", "support"}}, "confusion_matrix", "shortcuts"} (confusion rows true class, columns predicted, in
classes order; shortcuts: the within-source AUCs and the source probe of covid_core.shortcuts).
Metrics a missing class makes undefined are null.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..flags import MAX_BATCH
from ..formatting import printable
from . import add_site_arguments

SPLITS = ("test", "train", "val", "all")
SKIP_ADVICE = "Fix or remove them, or evaluate the rest with --skip-unreadable"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets import LAYOUTS

    p.add_argument("--model", required=True, help="classifier checkpoint (.pt)")
    p.add_argument("--data", required=True, help="data folder")
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help="data set layout")
    p.add_argument("--split", type=str.lower, choices=SPLITS, default="test",
                   help="which split (val = the checkpoint's validation split of TRAIN)")
    p.add_argument("--out", default=None, help="folder for roc.json, confusion_matrix.csv, predictions.csv, metrics.json")
    add_site_arguments(p, verdicts=False)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="evaluate the films that can be read and list the others (by default one unreadable film "
                        "stops the evaluation, so that no figure leaves films out unnoticed)")


def evaluate_checkpoint(model_path: str, data: str, layout: str = "auto", split: str = "test",
                        batch_size: int = 64, progress: bool = True, site: str | None = None,
                        skip_unreadable: bool = False, advice: str = SKIP_ADVICE):
    """(metrics dict, table of the evaluated rows, calibrated probabilities NxC). With ``skip_unreadable``, films that
    cannot be decoded are left out and named in the metrics' "skipped" list, instead of stopping the evaluation
    with an error that names them and ends with ``advice``."""
    from ..cache import readable_films
    from ..site_file import load_classifier_at_site
    from ..datasets import load_dataset, split_as_trained
    from ..errors import ConfigError, DatasetError
    from ..inference import score_pixels
    from ..metrics import classification_metrics, rates_at_threshold
    from ..shortcuts import shortcut_report
    from ..evaluation import macro_auc_interval, per_source_metrics

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"batch size must be a whole number from 1 to {MAX_BATCH}, not {batch_size!r}")
    clf = load_classifier_at_site(model_path, site=site)
    table = load_dataset(data, layout).for_target(clf.target)
    if split == "val":
        cfg = clf.metadata.get("train_config", {})
        table = split_as_trained(table, cfg)
    if split != "all":
        table = table[table["split"] == split].reset_index(drop=True)
    if table.empty:
        raise DatasetError(f"the {split} split of {data} has no images usable for target {clf.target!r}")
    table, images, skipped = readable_films(table, clf.preprocess, skip_unreadable, advice, progress=progress)
    batches = [score_pixels(clf, np.asarray(images[i:i + batch_size]), orientation=False)  # no flags needed here
               for i in range(0, len(images), batch_size)]
    probs = np.concatenate([b.probs for b in batches])
    features = np.concatenate([b.penultimate for b in batches])
    metrics = {**classification_metrics(table["label_idx"].to_numpy(), probs, clf.classes),
               **macro_auc_interval(table, probs)}
    positive, ci = np.zeros(len(table), bool), None  # without a COVID-19 class, every call is the model's own
    if clf.threshold.get("class") in clf.classes:
        ci = clf.classes.index(clf.threshold["class"])
        covid = np.concatenate([b.covid for b in batches])  # p(COVID-19), or the site head's probability
        value = clf.site.threshold if clf.site is not None and clf.site.threshold is not None else clf.threshold["value"]
        metrics["at_threshold"] = {"class": clf.threshold["class"], "threshold": value,
                                   **rates_at_threshold(table["label_idx"].to_numpy() == ci, covid, value)}
        positive = covid >= value
    if clf.site is not None:
        metrics["site"] = clf.site.name
        metrics["site_calls"] = _calls_at_site(clf, batches, positive, table["label_idx"].to_numpy(), ci)
    metrics["per_source"] = per_source_metrics(table, probs, clf.classes)
    metrics["shortcuts"] = shortcut_report(table, probs, clf.classes, features)
    if skipped:
        metrics["skipped"] = skipped
    return metrics, table, probs


def _calls_at_site(clf, batches, positive, labels, covid: int | None) -> dict | None:
    """How the call in words did at the site (``site.call_counts``: the site's pneumonia head decides it where it has
    one), over every film: evaluate withholds none; None for a model without a call between normal and pneumonia."""
    from ..site import call_counts
    from ..site_file import makes_call

    if not makes_call(clf.classes):
        return None
    scores = np.concatenate([b.call_scores(clf.classes) for b in batches])
    return call_counts(scores, positive, np.zeros(len(labels), bool), labels, clf.classes, covid)


def _interval(low, high) -> str:
    from ..goals import interval_text

    text = interval_text((low, high))
    return f" (95% interval {text})" if text else ""


def _fmt(v):
    return "n/a" if v is None else f"{v:.3f}"


def main(args: argparse.Namespace) -> int:
    from ..metrics import roc_points
    from ..outputs import output_folder

    out = output_folder(args.out) if args.out else None  # before the work, not after it
    metrics, table, probs = evaluate_checkpoint(args.model, args.data, args.layout, args.split, args.batch_size,
                                                site=args.site, skip_unreadable=args.skip_unreadable)
    classes = metrics["classes"]
    if metrics.get("skipped"):
        from ..cache import unreadable_list

        print(f"skipped {printable(unreadable_list(metrics['skipped']))}; they are in no figure below")
    print(f"{args.split.upper()}: {metrics['n']} images, accuracy {_fmt(metrics['accuracy'])}, "
          f"macro AUC {_fmt(metrics['macro_auc'])}"
          f"{_interval(metrics.get('macro_auc_low'), metrics.get('macro_auc_high'))}, "
          f"calibration error {_fmt(metrics['ece'])}")
    for c in classes:
        m = metrics["per_class"][c]
        print(f"  {c:>10}: n={m['support']:4d}  sensitivity {_fmt(m['sensitivity'])}  specificity "
              f"{_fmt(m['specificity'])}  PPV {_fmt(m['ppv'])}  AUC {_fmt(m['auc'])}")
    print("  confusion (rows true, columns predicted): " + ", ".join(classes))
    for c, row in zip(classes, metrics["confusion_matrix"]):
        print(f"  {c:>10}: {row}")
    for source, s in metrics["per_source"].items():
        print(f"  source {source}: n={s['n']} accuracy {_fmt(s['accuracy'])} predicted {s['predicted']}")
    for q in metrics["shortcuts"]["within_source"].values():
        print(f"  within source, {q['description']}: AUC {_fmt(q['auc'])}"
              f"{_interval(q.get('auc_low'), q.get('auc_high'))} "
              f"({q['n_negative']} vs {q['n_positive']} films)")
    if metrics.get("site_calls"):
        from ..site_file import call_problem, calls_right

        only = "at_threshold" not in metrics  # a model without a COVID-19 verdict: the call is all it says
        (right_n, normal), (right_p, pneumonia) = calls_right(metrics["site_calls"])
        problem = call_problem(metrics["site_calls"], call_only=only)
        print(f"  the call {'' if only else 'under a negative verdict '}at site {printable(metrics['site'])}: "
              f"{right_n} of {normal} normal films called normal, {right_p} of {pneumonia} pneumonia films called "
              "pneumonia"
              + (f" (not confirmed by these films: {problem})" if problem else ""))
    probe = metrics["shortcuts"]["source_probe"]
    if probe:
        print(f"  source probe (a linear probe on the penultimate features naming the source; lower is better): "
              f"accuracy {_fmt(probe['accuracy'])}, majority share {_fmt(probe['majority_share'])}")
    if out is not None:
        (out / "roc.json").write_text(json.dumps(roc_points(table["label_idx"].to_numpy(), probs, classes)))
        with open(out / "confusion_matrix.csv", "w") as f:
            f.write("true\\predicted," + ",".join(classes) + "\n")
            for c, row in zip(classes, metrics["confusion_matrix"]):
                f.write(c + "," + ",".join(map(str, row)) + "\n")
        from ..csv_safe import safe_cell

        pred = table[["filename", "split", "label"]].copy()
        pred["filename"] = pred["filename"].map(safe_cell)
        for i, c in enumerate(classes):
            pred[f"p_{c}"] = probs[:, i].round(6)
        pred["predicted"] = np.asarray(classes)[probs.argmax(1)]
        pred.to_csv(out / "predictions.csv", index=False)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"wrote roc.json, confusion_matrix.csv, predictions.csv, metrics.json to {out}")
    core = {k: metrics[k] for k in ("n", "accuracy", "macro_auc", "ece", "classes", "per_class", "confusion_matrix",
                                    "shortcuts", "at_threshold", "site", "site_calls", "skipped") if k in metrics}
    print(json.dumps(core))
    return 0
