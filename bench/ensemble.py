"""Would averaging the two shipped classifiers beat each alone? Their calibrated probabilities, averaged.

Scores VALIDATION (carved from TRAIN with each model's own split settings; both use seed 0 and 15%) and TEST
with each model and with the mean of the two, then prints, per model: TEST macro AUC, calibration error, the
within-source AUCs, and COVID-19 sensitivity / PPV at the threshold that keeps 90% VALIDATION sensitivity (the
shipped rule).

    python bench/ensemble.py --data DATA_DIR [--models weights/resnet18.pt weights/cnn.pt]
"""

from __future__ import annotations

import argparse

import numpy as np


def scores(checkpoint: str, table):
    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import calibrated_probabilities, logits_and_features

    clf = load_classifier(checkpoint)
    images = load_or_build(table["path"].tolist(), clf.preprocess, progress=False)
    logits, _ = logits_and_features(clf.model, images, clf.preprocess, device=clf.device)
    return calibrated_probabilities(logits, clf.temperature), list(clf.classes)


def val_threshold(table, probs: np.ndarray, classes: list[str]) -> float:
    """The COVID-19 threshold that keeps 90% VALIDATION sensitivity (the shipped rule) on these probabilities."""
    from covid_core.metrics import choose_threshold

    val, ci = (table["split"] == "val").to_numpy(), classes.index("covid19")
    return choose_threshold(table["label_idx"].to_numpy()[val] == ci, probs[val, ci], min_sensitivity=0.90)["value"]


def report(name: str, probs: np.ndarray, table, classes: list[str]) -> str:
    from covid_core.metrics import classification_metrics, rates_at_threshold
    from covid_core.shortcuts import within_source_aucs

    split, labels = table["split"].to_numpy(), table["label_idx"].to_numpy()
    test = split == "test"
    ci = classes.index("covid19")
    threshold = val_threshold(table, probs, classes)
    rates = rates_at_threshold(labels[test] == ci, probs[test, ci], threshold)
    m = classification_metrics(labels[test], probs[test], classes)
    within = within_source_aucs(table[test].reset_index(drop=True), probs[test], classes)
    w = " | ".join(f"{within[k]['auc']:.3f}" for k in ("nih_normal_vs_pneumonia", "kermany_normal_vs_pneumonia",
                                                         "cohen_covid_vs_other_pneumonia"))
    return (f"| {name} | {m['accuracy']:.3f} | {m['macro_auc']:.3f} | {m['ece']:.3f} | {w} | "
            f"{rates['sensitivity']:.3f} / {rates['ppv']:.3f} ({rates['fp']} FP) |")


def main() -> int:
    from covid_core.datasets import load_dataset, split_validation

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--models", nargs="+", default=["weights/resnet18.pt", "weights/cnn.pt"])
    args = p.parse_args()
    table = split_validation(load_dataset(args.data).for_target("3class"), 0.15, 0)
    table = table[table["split"] != "train"].reset_index(drop=True)
    probs, classes = {}, None
    for path in args.models:
        probs[path], own = scores(path, table)
        if classes is not None and own != classes:
            p.error(f"{path} predicts {own}, not {classes}")
        classes = own
    print("| model | TEST accuracy | macro AUC | ECE | NIH n/p | Kermany n/p | COVID vs other | COVID sens / PPV |")
    print("|---|---|---|---|---|---|---|---|")
    for path, pr in probs.items():
        print(report(path, pr, table, classes))
    print(report("mean of " + " + ".join(args.models), np.mean(list(probs.values()), axis=0), table, classes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
