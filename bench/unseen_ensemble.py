"""Would averaging models trained without a source help at that source? Their calibrated probabilities, averaged.

Every checkpoint must have been trained with ``--holdout-source SOURCE``. The source's TRAIN films, which none of
them saw, and TEST are scored with each model and with the mean of their probabilities; each row gives the
leave-one-source-out figures of bench/shortcut_ablation.py (normal vs pneumonia AUC, the unseen normals against
TEST's COVID-19 films, the normals most probably COVID-19, the films withheld and the wrong COVID-19 verdicts),
the wrong verdicts with nothing withheld (so that a row cannot look better only by withholding more), and TEST's
macro AUC and NIH normal vs pneumonia AUC.

The mean's COVID-19 threshold is the mean of its members' stored thresholds: each member chose its own on its own
VALIDATION films, which differ with the seed, so no VALIDATION film is unseen by all of them. The mean withholds a
film that any member's familiarity or orientation check withholds.

    python bench/unseen_ensemble.py --data DATA_DIR --source nih --checkpoints A.pt B.pt C.pt
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Scored:
    """One model's (or the mean's) view of the unseen films and of TEST."""

    probs: np.ndarray  # unseen films x classes
    withheld: np.ndarray  # unseen films
    threshold: float
    test_probs: np.ndarray  # TEST films x classes


def scored(checkpoint: str, data: str, source: str, test) -> tuple[Scored, np.ndarray, list[str]]:
    """(the model's scores, the unseen films' labels, its classes)."""
    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import score_pixels
    from shortcut_ablation import familiarity_withheld, not_held_out, unseen_films

    clf = load_classifier(checkpoint)
    why = not_held_out(clf, checkpoint, source)
    if why:
        raise SystemExit(why)
    images, labels = unseen_films(clf, data, source)
    own = score_pixels(clf, images)
    test_images = load_or_build(test["path"].tolist(), clf.preprocess, progress=False)
    return (Scored(own.probs, familiarity_withheld(clf, own), float(clf.threshold["value"]),
                   score_pixels(clf, test_images, orientation=False).probs), labels, list(clf.classes))


def mean_of(members: list[Scored]) -> Scored:
    return Scored(np.mean([m.probs for m in members], axis=0), np.any([m.withheld for m in members], axis=0),
                  float(np.mean([m.threshold for m in members])), np.mean([m.test_probs for m in members], axis=0))


def row(name: str, s: Scored, labels: np.ndarray, classes: list[str], test) -> str:
    from covid_core.metrics import classification_metrics
    from covid_core.shortcuts import within_source_aucs
    from shortcut_ablation import figures_from_probabilities

    covid = s.test_probs[(test["label"] == "covid19").to_numpy()]
    f = figures_from_probabilities(s.probs, classes, labels, s.withheld, s.threshold, covid)
    unwithheld = figures_from_probabilities(s.probs, classes, labels, np.zeros_like(s.withheld), s.threshold)
    macro = classification_metrics(test["label_idx"].to_numpy(), s.test_probs, classes)["macro_auc"]
    nih = (within_source_aucs(test, s.test_probs, classes).get("nih_normal_vs_pneumonia") or {}).get("auc")
    cells = [f["unseen_normal_vs_pneumonia"], f["unseen_normal_vs_covid"], f["unseen_normals_called_covid"],
             f["unseen_withheld"], f["unseen_wrong_positive"], unwithheld["unseen_wrong_positive"], macro, nih]
    return f"| {name} | {s.threshold:.4f} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |"


def main() -> int:
    from covid_core.datasets import load_dataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--source", default="nih", help="the source every checkpoint was trained without")
    p.add_argument("--checkpoints", nargs="+", required=True)
    args = p.parse_args()
    if len(args.checkpoints) < 2:
        p.error("give at least two checkpoints to average")
    test = load_dataset(args.data).for_target("3class")
    test = test[test["split"] == "test"].reset_index(drop=True)
    members, labels, classes = [], None, None
    for path in args.checkpoints:
        s, own_labels, own_classes = scored(path, args.data, args.source, test)
        if classes is not None and own_classes != classes:
            p.error(f"{path} predicts {own_classes}, not {classes}")
        members.append(s)
        labels, classes = own_labels, own_classes
    print(f"{args.source}'s {len(labels)} TRAIN films, unseen by every model; TEST {len(test)} films\n")
    print("| model | COVID-19 threshold | unseen normal vs pneumonia AUC | unseen normals vs TEST COVID-19 AUC | "
          "unseen normals most probably COVID-19 | unseen withheld | unseen given a wrong COVID-19 verdict | "
          "wrong, nothing withheld | TEST macro AUC | TEST NIH n/p |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path, s in zip(args.checkpoints, members):
        print(row(Path(path).name, s, labels, classes, test))
    print(row(f"mean of the {len(members)}", mean_of(members), labels, classes, test))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
